// Package config loads the node's configuration: embedded defaults, then the
// repo's YAML file, an extra file, AVNODE_* environment variables and flags,
// each overriding the one before. It only reads and checks; it never writes
// the repo and never starts anything.
package config

import (
	"bytes"
	_ "embed"
	"fmt"
	"maps"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/v2"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/spf13/pflag"
	yamlv3 "go.yaml.in/yaml/v3"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the embedded, commented default configuration: what
// `avnode init` writes into a new repo.
func DefaultYAML() []byte { return slices.Clone(defaultYAML) }

// EnvPrefix starts every environment variable the node reads.
const EnvPrefix = "AVNODE_"

// envNotConfig are AVNODE_ variables that select things other than config keys.
var envNotConfig = map[string]bool{"AVNODE_REPO": true, "AVNODE_CONFIG": true}

// Config is the node's whole configuration after merging every source.
type Config struct {
	Listen    []string `koanf:"listen" json:"listen"`
	Bootstrap []string `koanf:"bootstrap" json:"bootstrap"`
	Roles     []string `koanf:"roles" json:"roles"`
	DHT       struct {
		Mode            string   `koanf:"mode" json:"mode"`
		ProtocolPrefix  string   `koanf:"protocol_prefix" json:"protocol_prefix"`
		RecordMaxAge    Duration `koanf:"record_max_age" json:"record_max_age"`
		RefreshInterval Duration `koanf:"refresh_interval" json:"refresh_interval"`
		// Routing-table peer diversity (core/node/diversity.go).
		MaxPeersPerIPGroup       int  `koanf:"max_peers_per_ip_group" json:"max_peers_per_ip_group"`
		MaxPeersPerIPGroupPerCpl int  `koanf:"max_peers_per_ip_group_per_cpl" json:"max_peers_per_ip_group_per_cpl"`
		DiversityExemptLocal     bool `koanf:"diversity_exempt_local" json:"diversity_exempt_local"`
	} `koanf:"dht" json:"dht"`
	Names struct {
		ClaimDifficulty   int      `koanf:"claim_difficulty" json:"claim_difficulty"`
		ClaimQuorum       int      `koanf:"claim_quorum" json:"claim_quorum"`
		ZoneLifetime      Duration `koanf:"zone_lifetime" json:"zone_lifetime"`
		ZoneTTL           Duration `koanf:"zone_ttl" json:"zone_ttl"`
		RepublishInterval Duration `koanf:"republish_interval" json:"republish_interval"`
		ReputInterval     Duration `koanf:"reput_interval" json:"reput_interval"`
		ResolveTimeout    Duration `koanf:"resolve_timeout" json:"resolve_timeout"`
		ResolveQuorum     int      `koanf:"resolve_quorum" json:"resolve_quorum"`
	} `koanf:"names" json:"names"`
	Content struct {
		CacheMaxMB   int  `koanf:"cache_max_mb" json:"cache_max_mb"`
		FetchSources int  `koanf:"fetch_sources" json:"fetch_sources"`
		Serve        bool `koanf:"serve" json:"serve"`
		// MaxFetchMB bounds what one get may fetch and write; 0: the free
		// space of the repo's disk less a margin.
		MaxFetchMB int `koanf:"max_fetch_mb" json:"max_fetch_mb"`
		// ServePeerRequests and ServePeerMB bound what one peer may ask of
		// the block server, per second.
		ServePeerRequests int `koanf:"serve_peer_requests" json:"serve_peer_requests"`
		ServePeerMB       int `koanf:"serve_peer_mb" json:"serve_peer_mb"`
	} `koanf:"content" json:"content"`
	Gateway struct {
		Listen string `koanf:"listen" json:"listen"`
	} `koanf:"gateway" json:"gateway"`
	Plugins struct {
		Dirs                 []string          `koanf:"dirs" json:"dirs"`
		Checksums            map[string]string `koanf:"checksums" json:"checksums"`
		MaxRestartsPerMinute int               `koanf:"max_restarts_per_minute" json:"max_restarts_per_minute"`
		MaxStartFailures     int               `koanf:"max_start_failures" json:"max_start_failures"`
		// Grants are the host-API permissions each role may use (sdk
		// README, "Permissions"); `avnode plugins grant|revoke` adds to and
		// takes from them in the repo's grants.json.
		Grants  map[string][]string `koanf:"grants" json:"grants"`
		Limits  PluginLimits        `koanf:"limits" json:"limits"`
		Sandbox PluginSandbox       `koanf:"sandbox" json:"sandbox"`
	} `koanf:"plugins" json:"plugins"`
	Policy struct {
		Scripts       []string          `koanf:"scripts" json:"scripts"`
		Budget        Duration          `koanf:"budget" json:"budget"`
		MemoryMB      int               `koanf:"memory_mb" json:"memory_mb"`
		WatchInterval Duration          `koanf:"watch_interval" json:"watch_interval"`
		Fallbacks     map[string]string `koanf:"fallbacks" json:"fallbacks"`
	} `koanf:"policy" json:"policy"`
	RoleConfig map[string]any `koanf:"role_config" json:"role_config"`
	ConnMgr    struct {
		Low   int      `koanf:"low" json:"low"`
		High  int      `koanf:"high" json:"high"`
		Grace Duration `koanf:"grace" json:"grace"`
	} `koanf:"connmgr" json:"connmgr"`
	Resources struct {
		MaxMemoryMB int `koanf:"max_memory_mb" json:"max_memory_mb"`
		MaxFDs      int `koanf:"max_fds" json:"max_fds"`
	} `koanf:"resources" json:"resources"`
	NAT struct {
		AutoNAT      bool `koanf:"autonat" json:"autonat"`
		HolePunching bool `koanf:"hole_punching" json:"hole_punching"`
		RelayClient  bool `koanf:"relay_client" json:"relay_client"`
		PortMap      bool `koanf:"port_map" json:"port_map"`
		// Reachability forces AutoNAT's answer: auto, public or private.
		Reachability string `koanf:"reachability" json:"reachability"`
		// Relays are circuit relays to reserve on when private, besides
		// those found in the DHT.
		Relays []string `koanf:"relays" json:"relays"`
	} `koanf:"nat" json:"nat"`
	Metrics struct {
		Listen string `koanf:"listen" json:"listen"`
	} `koanf:"metrics" json:"metrics"`
	// Dashboard is the node's local web page (core/dashboard): on a
	// loopback address only, opened with `avnode dashboard`.
	Dashboard struct {
		Listen string `koanf:"listen" json:"listen"`
	} `koanf:"dashboard" json:"dashboard"`
	Log struct {
		Level  string `koanf:"level" json:"level"`
		Format string `koanf:"format" json:"format"`
	} `koanf:"log" json:"log"`
}

// Duration is a time.Duration written as text ("24h") in YAML and JSON.
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalText writes the duration like "24h0m0s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a duration like "24h" or "90s".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration like 30s, 10m or 24h", b)
	}
	*d = Duration(v)
	return nil
}

// Sources names where configuration comes from, lowest precedence first
// after the embedded defaults. Empty fields are skipped.
type Sources struct {
	RepoFile  string         // the repo's config.yaml
	ExtraFile string         // --config FILE
	Environ   []string       // os.Environ()
	Flags     *pflag.FlagSet // flags registered by RegisterFlags
}

// Load merges defaults < repo file < extra file < environment < flags,
// refuses unknown keys, and validates the result.
func Load(src Sources) (*Config, error) {
	k := koanf.New(".")
	if err := k.Load(rawbytes.Provider(defaultYAML), yaml.Parser()); err != nil {
		return nil, fmt.Errorf("config: embedded defaults: %w", err)
	}
	known := knownKeys(k)
	for _, path := range []string{src.RepoFile, src.ExtraFile} {
		if path == "" {
			continue
		}
		if err := loadFile(k, path, known); err != nil {
			return nil, err
		}
	}
	if err := loadEnv(k, src.Environ, known); err != nil {
		return nil, err
	}
	if src.Flags != nil {
		if err := k.Load(posflag.ProviderWithFlag(src.Flags, ".", k, flagToKey(src.Flags, known)), nil); err != nil {
			return nil, fmt.Errorf("config: flags: %w", err)
		}
	}
	var c Config
	if err := k.Unmarshal("", &c); err != nil {
		return nil, fmt.Errorf("config: %s", oneLine(err))
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// oneLine turns mapstructure's multi-line report into one line.
func oneLine(err error) string {
	msg := strings.TrimPrefix(err.Error(), "decoding failed due to the following error(s):")
	return strings.Join(strings.Fields(msg), " ")
}

// knownKeys maps each leaf key of the defaults to an example of its value,
// which also tells its type.
func knownKeys(k *koanf.Koanf) map[string]any {
	return k.All()
}

func loadFile(k *koanf.Koanf, path string, known map[string]any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: read %s: %w", path, err)
	}
	fk := koanf.New(".")
	if err := fk.Load(rawbytes.Provider(checksumsAsText(data)), yaml.Parser()); err != nil {
		if line := tabIndentedLine(data); line > 0 && strings.Contains(err.Error(), "tab character") {
			// go-yaml names the line before the tab's.
			return fmt.Errorf("config: %s line %d: a tab in the indentation; YAML indents with spaces", path, line)
		}
		return fmt.Errorf("config: %s is not valid YAML: %s", path, yamlErrorText(err))
	}
	for _, key := range fk.Keys() {
		if _, ok := known[key]; !ok && !underOpenMap(key) {
			return fmt.Errorf("config: unknown key %q in %s%s", key, path, suggest(key, known))
		}
	}
	return k.Merge(fk)
}

// PluginLimits bound what one role's plugin may cost the node.
type PluginLimits struct {
	// CallTimeout bounds every call the node makes into a plugin (describe,
	// validate, start, stop, `roles call`).
	CallTimeout Duration `koanf:"call_timeout" json:"call_timeout"`
	// LogLinesPerSecond and LogBurst bound the lines a plugin logs (stderr
	// and the Log call together); excess lines are dropped and counted.
	LogLinesPerSecond int `koanf:"log_lines_per_second" json:"log_lines_per_second"`
	LogBurst          int `koanf:"log_burst" json:"log_burst"`
	// LogLineBytes cuts longer lines.
	LogLineBytes int `koanf:"log_line_bytes" json:"log_line_bytes"`
	// HostCalls is how many host-API calls of one role run at once; more wait.
	HostCalls int `koanf:"host_calls" json:"host_calls"`
	// MessageMB bounds one gRPC message, both ways.
	MessageMB int `koanf:"message_mb" json:"message_mb"`
}

// minPluginMemoryMB is the least address space a Go program starts in.
const minPluginMemoryMB = 1024

// PluginSandbox is how a plugin process is confined (plugins/README.md,
// "What a plugin can reach").
type PluginSandbox struct {
	// Enabled confines plugins (Landlock on Linux, no_new_privs, rlimits).
	Enabled bool `koanf:"enabled" json:"enabled"`
	// MemoryMB bounds a plugin's address space; 0: no bound.
	MemoryMB int `koanf:"memory_mb" json:"memory_mb"`
	// OpenFiles bounds a plugin's open files.
	OpenFiles int `koanf:"open_files" json:"open_files"`
	// Processes bounds the processes and threads of the node's user as the
	// plugin sees them (Linux counts them per user); 0: no bound.
	Processes int `koanf:"processes" json:"processes"`
}

// openMaps are config keys whose entries are the user's own: role names
// under plugins.checksums and plugins.grants, any role's settings under role_config, hook
// names under policy.fallbacks.
var openMaps = []string{"plugins.checksums.", "plugins.grants.", "role_config.", "policy.fallbacks."}

func underOpenMap(key string) bool {
	for _, prefix := range openMaps {
		if strings.HasPrefix(key, prefix) {
			return true
		}
	}
	return false
}

// loadEnv applies AVNODE_<KEY> variables. Keys are matched exactly against
// the known keys (dots and underscores both become underscores), so a
// misspelt variable is an error rather than silently ignored.
func loadEnv(k *koanf.Koanf, environ []string, known map[string]any) error {
	byEnvName := map[string]string{}
	for key := range known {
		byEnvName[EnvName(key)] = key
	}
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || envNotConfig[name] {
			continue
		}
		key, ok := byEnvName[name]
		if !ok {
			return fmt.Errorf("config: environment variable %s names no config key%s", name,
				suggest(strings.ToLower(strings.TrimPrefix(name, EnvPrefix)), known))
		}
		var v any = value
		if _, isList := known[key].([]any); isList {
			v = splitList(value)
		}
		if err := k.Set(key, v); err != nil {
			return fmt.Errorf("config: %s: %w", name, err)
		}
	}
	return nil
}

// EnvName is the environment variable that sets a config key.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// suggest returns ` (did you mean "x"?)` for the closest known key, if any is close.
func suggest(key string, known map[string]any) string {
	best, bestDist := "", 4
	for candidate := range known {
		flat := strings.ReplaceAll(candidate, ".", "_")
		for _, c := range []string{candidate, flat} {
			if d := editDistance(key, c); d < bestDist || (d == bestDist && candidate < best) {
				best, bestDist = candidate, d
			}
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// Validate checks every value and names the first bad key and why.
func (c *Config) Validate() error {
	checks := []func() error{
		c.validateAddrs, c.validateDHT, c.validateNames, c.validatePlugins, c.validatePolicy, c.validateLimits, c.validateMetrics, c.validateLog, c.validateRoles,
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	return nil
}

func (c *Config) validateAddrs() error {
	if len(c.Listen) == 0 {
		return fmt.Errorf("listen: needs at least one multiaddr, like /ip4/0.0.0.0/tcp/4001")
	}
	for _, s := range c.Listen {
		if _, err := ma.NewMultiaddr(s); err != nil {
			return fmt.Errorf("listen: %q is not a multiaddr (%v); write it like /ip4/0.0.0.0/tcp/4001", s, err)
		}
	}
	for _, s := range c.Bootstrap {
		if _, err := ParsePeerAddr(s); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	for _, s := range c.NAT.Relays {
		if _, err := ParsePeerAddr(s); err != nil {
			return fmt.Errorf("nat.relays: %w", err)
		}
	}
	switch c.NAT.Reachability {
	case "auto", "public", "private":
	default:
		return fmt.Errorf("nat.reachability: %q is not auto, public or private", c.NAT.Reachability)
	}
	return nil
}

// ParsePeerAddr parses a full multiaddr that ends in /p2p/<peer id>.
func ParsePeerAddr(s string) (*peer.AddrInfo, error) {
	addr, err := ma.NewMultiaddr(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a multiaddr (%v)", s, err)
	}
	info, err := peer.AddrInfoFromP2pAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("%q does not end in /p2p/<peer id> (%v); `avnode id` on that node prints its full addresses", s, err)
	}
	return info, nil
}

func (c *Config) validateDHT() error {
	if !slices.Contains([]string{"server", "client", "auto"}, c.DHT.Mode) {
		return fmt.Errorf("dht.mode: %q is not one of server, client, auto", c.DHT.Mode)
	}
	if !strings.HasPrefix(c.DHT.ProtocolPrefix, "/") || strings.ContainsAny(c.DHT.ProtocolPrefix, " \t") {
		return fmt.Errorf("dht.protocol_prefix: %q must start with / and have no spaces, like /avtr", c.DHT.ProtocolPrefix)
	}
	if c.DHT.RecordMaxAge <= 0 {
		return fmt.Errorf("dht.record_max_age: must be a positive duration, like 24h")
	}
	if c.DHT.RefreshInterval <= 0 {
		return fmt.Errorf("dht.refresh_interval: must be a positive duration, like 10m")
	}
	if c.DHT.MaxPeersPerIPGroup < 0 || c.DHT.MaxPeersPerIPGroupPerCpl < 0 {
		return fmt.Errorf("dht.max_peers_per_ip_group and dht.max_peers_per_ip_group_per_cpl: must be 0 (off) or more, like 3 and 2")
	}
	if c.DHT.MaxPeersPerIPGroup > 0 && c.DHT.MaxPeersPerIPGroupPerCpl == 0 {
		return fmt.Errorf("dht.max_peers_per_ip_group_per_cpl: 0 would admit no peer of any group while dht.max_peers_per_ip_group is %d; set it (2 is the default) or set both to 0 to turn the filter off", c.DHT.MaxPeersPerIPGroup)
	}
	return nil
}

func (c *Config) validateNames() error {
	n := c.Names
	if n.ClaimDifficulty < 0 || n.ClaimDifficulty > 40 {
		return fmt.Errorf("names.claim_difficulty: %d is outside 0..40", n.ClaimDifficulty)
	}
	if n.ClaimQuorum < 1 || n.ClaimQuorum > 20 {
		return fmt.Errorf("names.claim_quorum: %d is outside 1..20", n.ClaimQuorum)
	}
	if n.ResolveQuorum < 1 || n.ResolveQuorum > 20 {
		return fmt.Errorf("names.resolve_quorum: %d is outside 1..20", n.ResolveQuorum)
	}
	durations := map[string]Duration{
		"zone_lifetime": n.ZoneLifetime, "zone_ttl": n.ZoneTTL, "republish_interval": n.RepublishInterval,
		"reput_interval": n.ReputInterval, "resolve_timeout": n.ResolveTimeout,
	}
	for key, d := range durations {
		if d <= 0 {
			return fmt.Errorf("names.%s: must be a positive duration", key)
		}
	}
	if n.RepublishInterval >= n.ZoneLifetime {
		return fmt.Errorf("names.republish_interval (%s) must be shorter than names.zone_lifetime (%s), or zones expire before they are republished",
			n.RepublishInterval.D(), n.ZoneLifetime.D())
	}
	return nil
}

func (c *Config) validatePlugins() error {
	for role, sum := range c.Plugins.Checksums {
		if len(sum) != 64 || strings.Trim(strings.ToLower(sum), "0123456789abcdef") != "" {
			return fmt.Errorf("plugins.checksums.%s: %q is not a sha256 in hex (64 characters); get it with `sha256sum avnode-%s`", role, sum, role)
		}
	}
	if c.Plugins.MaxRestartsPerMinute < 1 || c.Plugins.MaxStartFailures < 1 {
		return fmt.Errorf("plugins: max_restarts_per_minute and max_start_failures must be at least 1")
	}
	l := c.Plugins.Limits
	if l.CallTimeout <= 0 || l.LogLinesPerSecond < 1 || l.LogBurst < 1 || l.LogLineBytes < 256 || l.HostCalls < 1 || l.MessageMB < 1 {
		return fmt.Errorf("plugins.limits: call_timeout must be positive, log_lines_per_second, log_burst, host_calls and message_mb at least 1, log_line_bytes at least 256 (got %+v)", l)
	}
	if sb := c.Plugins.Sandbox; sb.MemoryMB < 0 || sb.OpenFiles < 0 || sb.Processes < 0 {
		return fmt.Errorf("plugins.sandbox: memory_mb, open_files and processes cannot be negative")
	}
	if mb := c.Plugins.Sandbox.MemoryMB; mb > 0 && mb < minPluginMemoryMB {
		return fmt.Errorf("plugins.sandbox.memory_mb: %d MiB of address space cannot start a Go plugin, which reserves about 1 GiB at start; give at least %d, or 0 for no bound", mb, minPluginMemoryMB)
	}
	return nil
}

func (c *Config) validatePolicy() error {
	for i, path := range c.Policy.Scripts {
		if path == "" {
			return fmt.Errorf("policy.scripts[%d]: empty path", i)
		}
	}
	if c.Policy.Budget <= 0 || c.Policy.Budget.D() > 10*time.Second {
		return fmt.Errorf("policy.budget: %s must be above 0 and at most 10s: hooks run inside the node's requests", c.Policy.Budget.D())
	}
	if c.Policy.MemoryMB < 128 { // what a policy worker process needs (core/policy)
		return fmt.Errorf("policy.memory_mb: %d is too small to run scripts; at least 128", c.Policy.MemoryMB)
	}
	for hook, fb := range c.Policy.Fallbacks {
		if !slices.Contains([]string{"allow", "deny", "default"}, fb) {
			return fmt.Errorf("policy.fallbacks.%s: %q is not one of allow, deny, default", hook, fb)
		}
	}
	return nil
}

func (c *Config) validateLimits() error {
	if c.ConnMgr.Low < 1 || c.ConnMgr.High < c.ConnMgr.Low {
		return fmt.Errorf("connmgr: low (%d) must be at least 1 and high (%d) at least low", c.ConnMgr.Low, c.ConnMgr.High)
	}
	if c.ConnMgr.Grace < 0 {
		return fmt.Errorf("connmgr.grace: must not be negative")
	}
	if c.Content.FetchSources < 0 {
		return fmt.Errorf("content.fetch_sources: must be 0 (all at once) or positive")
	}
	if c.Content.CacheMaxMB < 0 {
		return fmt.Errorf("content.cache_max_mb: must be 0 (no bound) or positive")
	}
	if c.Content.MaxFetchMB < 0 {
		return fmt.Errorf("content.max_fetch_mb: must be 0 (the repo disk's free space less a margin) or positive")
	}
	if c.Content.ServePeerRequests < 1 || c.Content.ServePeerMB < 1 {
		return fmt.Errorf("content.serve_peer_requests (%d) and content.serve_peer_mb (%d): must be at least 1", c.Content.ServePeerRequests, c.Content.ServePeerMB)
	}
	if c.Resources.MaxMemoryMB < 0 || c.Resources.MaxFDs < 0 {
		return fmt.Errorf("resources: limits must be 0 (scale to this machine) or positive")
	}
	return nil
}

func (c *Config) validateMetrics() error {
	if _, _, err := net.SplitHostPort(c.Gateway.Listen); err != nil {
		return fmt.Errorf("gateway.listen: %q is not host:port (%v); use 127.0.0.1:8080", c.Gateway.Listen, err)
	}
	if c.Metrics.Listen == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
		return fmt.Errorf("metrics.listen: %q is not host:port (%v); use 127.0.0.1:9464, or empty to turn metrics off", c.Metrics.Listen, err)
	}
	return c.validateDashboard()
}

// validateDashboard keeps the dashboard on this machine: it shows the
// node's peers, names and policy refusals, so it listens on a loopback
// address or not at all.
func (c *Config) validateDashboard() error {
	if c.Dashboard.Listen == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(c.Dashboard.Listen)
	if err != nil {
		return fmt.Errorf("dashboard.listen: %q is not host:port (%v); use 127.0.0.1:5180, or empty to turn the dashboard off", c.Dashboard.Listen, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("dashboard.listen: %q is not a loopback address; the dashboard is for this machine's user only: use 127.0.0.1:PORT or [::1]:PORT, or empty to turn it off", c.Dashboard.Listen)
	}
	return nil
}

func (c *Config) validateLog() error {
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		return fmt.Errorf("log.level: %q is not one of debug, info, warn, error", c.Log.Level)
	}
	if !slices.Contains([]string{"text", "json"}, c.Log.Format) {
		return fmt.Errorf("log.format: %q is not one of text, json", c.Log.Format)
	}
	return nil
}

func (c *Config) validateRoles() error {
	for _, r := range c.Roles {
		if r == "" || strings.Trim(r, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			return fmt.Errorf("roles: %q is not a role name (lower-case letters, digits, hyphens)", r)
		}
	}
	return nil
}

// checksumsAsText makes every value under plugins.checksums a string, as
// written: YAML reads an all-digit sha256 as a number, and a number that
// long comes out rounded (1234…34 as 1234…800…0), a checksum no binary
// has. Data that is not valid YAML is returned as it is, for the parser
// to say where it breaks.
func checksumsAsText(data []byte) []byte {
	var doc yamlv3.Node
	if yamlv3.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return data
	}
	checksums := mappingAt(doc.Content[0], "plugins", "checksums")
	if checksums == nil {
		return data
	}
	changed := false
	for i := 1; i < len(checksums.Content); i += 2 {
		if v := checksums.Content[i]; v.Kind == yamlv3.ScalarNode && v.Tag != "!!str" {
			v.Tag, v.Style, changed = "!!str", yamlv3.DoubleQuotedStyle, true
		}
	}
	if !changed {
		return data
	}
	out, err := yamlv3.Marshal(&doc)
	if err != nil {
		return data
	}
	return out
}

// mappingAt follows keys down from a mapping node to the mapping under
// them, or nil.
func mappingAt(n *yamlv3.Node, keys ...string) *yamlv3.Node {
	for _, key := range keys {
		if n.Kind != yamlv3.MappingNode {
			return nil
		}
		var next *yamlv3.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	if n.Kind != yamlv3.MappingNode {
		return nil
	}
	return n
}

// SetInFile sets keys (dotted: metrics.listen) in the YAML config file at
// path to values (strings or lists of strings), keeping everything else
// in it, comments included. What it writes must still load.
func SetInFile(path string, values map[string]any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: read %s: %w", path, err)
	}
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("config: %s is not valid YAML: %s", path, yamlErrorText(err))
	}
	if len(doc.Content) == 0 {
		doc = yamlv3.Node{Kind: yamlv3.DocumentNode, Content: []*yamlv3.Node{{Kind: yamlv3.MappingNode}}}
	}
	keys := slices.Sorted(maps.Keys(values))
	for _, key := range keys {
		var value yamlv3.Node
		if err := value.Encode(values[key]); err != nil {
			return fmt.Errorf("config: %s: %w", key, err)
		}
		if value.Kind == yamlv3.SequenceNode {
			value.Style = yamlv3.FlowStyle
		}
		setNode(doc.Content[0], strings.Split(key, "."), &value)
	}
	var out bytes.Buffer
	enc := yamlv3.NewEncoder(&out)
	enc.SetIndent(2) // as the file was written
	if err := enc.Encode(&doc); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, out.Bytes(), 0o600); err != nil {
		return err
	}
	if _, err := Load(Sources{RepoFile: tmp}); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// setNode puts value under the keys in a mapping node, making the
// mappings on the way that are missing.
func setNode(m *yamlv3.Node, keys []string, value *yamlv3.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != keys[0] {
			continue
		}
		if len(keys) == 1 {
			value.HeadComment, value.LineComment = m.Content[i+1].HeadComment, m.Content[i+1].LineComment
			m.Content[i+1] = value
			return
		}
		if m.Content[i+1].Kind != yamlv3.MappingNode {
			m.Content[i+1] = &yamlv3.Node{Kind: yamlv3.MappingNode}
		}
		setNode(m.Content[i+1], keys[1:], value)
		return
	}
	key := &yamlv3.Node{Kind: yamlv3.ScalarNode, Value: keys[0]}
	if len(keys) == 1 {
		m.Content = append(m.Content, key, value)
		return
	}
	child := &yamlv3.Node{Kind: yamlv3.MappingNode}
	m.Content = append(m.Content, key, child)
	setNode(child, keys[1:], value)
}

// yamlParserProblems are the errors go-yaml's parser (not its scanner)
// reports. It numbers their lines from 0, the scanner's from 1
// (go.yaml.in/yaml/v3 decode.go, parser.fail), so those read one line
// early, and on the first line carry no number at all.
var yamlParserProblems = []string{
	"did not find expected node content", "did not find expected '-' indicator", "did not find expected key",
	"did not find expected ',' or ']'", "did not find expected ',' or '}'", "found undefined tag handle",
	"did not find expected <document start>",
}

var yamlLineRE = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// yamlErrorText is a go-yaml error with its line counted from 1.
func yamlErrorText(err error) string {
	m := yamlLineRE.FindStringSubmatch(err.Error())
	if m == nil || !slices.Contains(yamlParserProblems, m[2]) {
		return err.Error()
	}
	line, _ := strconv.Atoi(m[1]) // 0 when go-yaml gave no number: its first line
	return fmt.Sprintf("yaml: line %d: %s", line+1, m[2])
}

// tabIndentedLine is the number of the first line indented with a tab, or 0.
func tabIndentedLine(data []byte) int {
	for i, line := range strings.Split(string(data), "\n") {
		indent := line[:len(line)-len(strings.TrimLeft(line, " \t"))]
		if strings.Contains(indent, "\t") {
			return i + 1
		}
	}
	return 0
}
