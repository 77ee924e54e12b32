// Package plugins is the node's side of role plugins: it finds plugin
// binaries (avnode-<role>) in the plugin folders, checks pinned checksums,
// starts the enabled roles through hashicorp/go-plugin, serves them the host
// API, and supervises them: a crashed plugin is restarted with backoff, one
// that cannot start is marked failed, and none can take the node down.
// It reaches the node only through Node (node.go), which core/daemon.RoleNode
// implements: plugins/ imports none of the core but its API types and leaves.
// Plugins are the control plane; blocks and DHT traffic stay in the core.
package plugins

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/fault"
	"github.com/avnode/avnode/sdk"
	"github.com/avnode/avnode/sdk/pluginpb"
)

// BinaryPrefix starts the file name of every role plugin.
const BinaryPrefix = "avnode-"

// Options configure a Manager.
type Options struct {
	Dirs                 []string          // searched in order
	Checksums            map[string]string // role -> sha256 hex
	MaxRestartsPerMinute int
	MaxStartFailures     int
	Node                 Node // what the host API serves every plugin
	// RoleConfig is a role's section of the node's role_config, as JSON,
	// for roles enabled through the control API.
	RoleConfig func(role string) json.RawMessage
	// Persist keeps a role enabled (or not) across restarts, when the
	// control API enables or disables it; it says where. nil: until the
	// node stops.
	Persist    func(role string, enabled bool) (where string, err error)
	Registerer prometheus.Registerer // for the plugins' own metrics
	DataDir    string                // each role gets DataDir/<role> for its state
	PeerID     string                // the node's, told to each role
	Logger     *slog.Logger
	// Grants are each role's host-API permissions from the config
	// (plugins.grants); GrantsFile keeps what `avnode plugins grant|revoke`
	// changed ("": in memory only).
	Grants     map[string][]string
	GrantsFile string
	Limits     Limits
	Sandbox    Sandbox
}

// Limits bound what one role's plugin may cost the node (plugins.limits).
// Zero fields take the defaults of DefaultLimits.
type Limits struct {
	CallTimeout       time.Duration // every call into a plugin
	LogLinesPerSecond int
	LogBurst          int
	LogLineBytes      int
	HostCalls         int // unary host calls of one role at once
	MessageBytes      int // one gRPC message, both ways
}

// DefaultLimits are the config's defaults.
var DefaultLimits = Limits{CallTimeout: 30 * time.Second, LogLinesPerSecond: 100, LogBurst: 1000,
	LogLineBytes: 16 << 10, HostCalls: 64, MessageBytes: 16 << 20}

func (l Limits) orDefaults() Limits {
	d := DefaultLimits
	if l.CallTimeout > 0 {
		d.CallTimeout = l.CallTimeout
	}
	if l.LogLinesPerSecond > 0 {
		d.LogLinesPerSecond = l.LogLinesPerSecond
	}
	if l.LogBurst > 0 {
		d.LogBurst = l.LogBurst
	}
	if l.LogLineBytes > 0 {
		d.LogLineBytes = l.LogLineBytes
	}
	if l.HostCalls > 0 {
		d.HostCalls = l.HostCalls
	}
	if l.MessageBytes > 0 {
		d.MessageBytes = l.MessageBytes
	}
	return d
}

// Manager runs the node's role plugins.
type Manager struct {
	opts     Options
	log      *slog.Logger
	metrics  *pluginMetrics
	streams  *streamRegistry
	services Services
	grants   *grantStore
	denied   *prometheus.CounterVec
	dropped  *prometheus.CounterVec // log lines over a role's limit
	sandbox  string                 // what confines each plugin, for RoleStatus

	mu    sync.Mutex
	roles map[string]*supervisor
}

// NewManager makes a manager; Enable starts roles. It fails on a grant
// that is not a permission, in the config or in the grants file.
func NewManager(opts Options) (*Manager, error) {
	opts.Limits = opts.Limits.orDefaults()
	grants, err := newGrantStore(opts.Grants, opts.GrantsFile)
	if err != nil {
		return nil, err
	}
	m := &Manager{opts: opts, log: opts.Logger, roles: map[string]*supervisor{},
		metrics: newPluginMetrics(opts.Registerer), streams: newStreamRegistry(), grants: grants,
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "avnode", Subsystem: "plugin", Name: "denied_total",
			Help: "Host-API calls refused to a role for a permission it was not granted."}, []string{"role", "permission"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "avnode", Subsystem: "plugin", Name: "log_dropped_total",
			Help: "Log lines of a role dropped over plugins.limits.log_lines_per_second."}, []string{"role"}),
	}
	m.sandbox = m.sandboxStatus()
	if opts.Registerer != nil {
		// Registered before any plugin's own metrics, whose names share
		// the avnode_plugin_ prefix: a role cannot take these names.
		for _, c := range []prometheus.Collector{m.denied, m.dropped} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("plugins: metrics: %w", err)
			}
		}
	}
	return m, nil
}

// hostFor is the host API one role's plugin is served; its Log calls go
// to logs.
func (m *Manager) hostFor(role string, logs *roleLog) *HostAPI {
	return &HostAPI{node: m.opts.Node, roles: m, log: m.log.With("role", role), logs: logs,
		metrics: m.metrics, streams: m.streams, role: role}
}

// roleLogFor is where a role's log lines go, within plugins.limits.
func (m *Manager) roleLogFor(role string) *roleLog {
	return newRoleLog(m.log.With("role", role), m.opts.Limits, m.dropped.WithLabelValues(role))
}

// guardFor checks one role's host calls against its grants.
func (m *Manager) guardFor(role string) *guard {
	return newGuard(role, func() grants { return m.grants.of(role) }, m.opts.Limits.HostCalls, m.log,
		func(role, verb string) { m.denied.WithLabelValues(role, verb).Inc() })
}

// Grants lists a role's effective grants.
func (m *Manager) Grants(role string) []string { return m.grants.list(role) }

// Grant gives a role permissions, at once and for good (the grants file).
func (m *Manager) Grant(role string, perms []string) ([]string, error) {
	if err := checkRoleName(role); err != nil {
		return nil, err
	}
	return m.grants.grant(role, perms)
}

// Revoke takes permissions from a role, at once and for good.
func (m *Manager) Revoke(role string, perms []string) ([]string, error) {
	if err := checkRoleName(role); err != nil {
		return nil, err
	}
	return m.grants.revoke(role, perms)
}

// checkRoleName accepts what sdk.Description allows a role's name to be.
func checkRoleName(role string) error {
	if role == "" || len(role) > 64 || role[0] < 'a' || role[0] > 'z' || strings.Trim(role, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
		return fault.Errorf(fault.Invalid, "role %q: a role's name is lower-case letters, digits and '-', starting with a letter", role)
	}
	return nil
}

// Services are what the running roles serve users (the receiver's gateway
// URL), as `avnode id` shows them.
func (m *Manager) Services() map[string]string { return m.services.All() }

// ErrNotInstalled means no plugin binary exists for a role.
var ErrNotInstalled = errors.New("not installed")

// Find returns the path of the role's plugin binary.
func (m *Manager) Find(role string) (string, error) {
	if err := checkRoleName(role); err != nil {
		return "", err
	}
	for _, dir := range m.opts.Dirs {
		p := filepath.Join(dir, BinaryPrefix+role)
		if info, err := os.Stat(p); err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("role %s: %w: no executable %s%s in %v; build it (`make build`) or copy it there", role, ErrNotInstalled, BinaryPrefix, role, m.opts.Dirs)
}

// Installed lists the plugin binaries found, role -> path (first folder wins).
func (m *Manager) Installed() map[string]string {
	out := map[string]string{}
	for _, dir := range m.opts.Dirs {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			role, ok := strings.CutPrefix(e.Name(), BinaryPrefix)
			if !ok || role == "" || e.IsDir() {
				continue
			}
			if _, seen := out[role]; !seen {
				if p, err := m.Find(role); err == nil {
					out[role] = p
				}
			}
		}
	}
	return out
}

// ValidateConfig has the role's plugin check config without starting the
// role: the plugin runs as it would (its checksum checked, confined), is
// described and asked to validate, and is stopped.
func (m *Manager) ValidateConfig(role string, config json.RawMessage) error {
	s := newSupervisor(m, role, config)
	defer s.cancel()
	return s.validateOnly()
}

// Describe runs the plugin's describe command on the bytes that pass the
// checksum check, confined like the role itself.
func (m *Manager) Describe(ctx context.Context, role string) (*api.PluginDescription, error) {
	img, err := m.loadImage(role)
	if err != nil {
		return nil, err
	}
	defer img.close()
	cmd, done, err := m.pluginCommand(img, role, "", "describe")
	if err != nil {
		return nil, err
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, m.opts.Limits.CallTimeout)
	defer cancel()
	out, err := runOutput(ctx, cmd)
	if err != nil {
		return nil, m.callError(ctx, role, img.path+" describe", err)
	}
	var d api.PluginDescription
	if err := json.Unmarshal(out, &d); err != nil {
		return nil, fmt.Errorf("role %s: %s describe printed no valid JSON: %w", role, img.path, err)
	}
	d.Path = img.path
	d.Granted = m.Grants(role)
	d.MissingGrants = m.missingGrants(role, d.Permissions)
	return &d, nil
}

// runOutput runs cmd, killed when ctx ends, and returns its stdout.
func runOutput(ctx context.Context, cmd *exec.Cmd) ([]byte, error) {
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { cmd.Process.Kill() })
	defer stop()
	if err := cmd.Wait(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return nil, fmt.Errorf("%w: %s", err, lastLine(msg))
		}
		return nil, err
	}
	return []byte(stdout.String()), nil
}

func lastLine(s string) string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// missingGrants are the permissions in asked that the role's grants do not
// cover; one the node does not know is missing too (it cannot be granted).
func (m *Manager) missingGrants(role string, asked []string) []string {
	have := m.grants.of(role)
	missing := []string{}
	for _, a := range asked {
		if p, err := parsePermission(a); err != nil || !have.allows(p) {
			missing = append(missing, a)
		}
	}
	return missing
}

// Enable starts a role with its config (JSON) and supervises it. Enabling a
// running role is a no-op.
func (m *Manager) Enable(role string, config json.RawMessage) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.roles[role]; ok && s.active() {
		return
	}
	s := newSupervisor(m, role, config)
	m.roles[role] = s
	go s.run()
}

// StartRole enables a role with its role_config as the config says now
// (Options.RoleConfig), without saving anything: for a config change the
// file already holds.
func (m *Manager) StartRole(role string) { m.Enable(role, m.roleConfig(role)) }

// StopRole is Disable, for the same changes.
func (m *Manager) StopRole(role string) error { return m.Disable(role) }

// Disable stops a role.
func (m *Manager) Disable(role string) error {
	m.mu.Lock()
	s, ok := m.roles[role]
	delete(m.roles, role)
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("role %s is not enabled", role)
	}
	s.stop()
	return nil
}

// Statuses lists the enabled roles, sorted by name.
func (m *Manager) Statuses() []api.RoleStatus {
	m.mu.Lock()
	sups := make([]*supervisor, 0, len(m.roles))
	for _, s := range m.roles {
		sups = append(sups, s)
	}
	m.mu.Unlock()
	out := make([]api.RoleStatus, 0, len(sups))
	for _, s := range sups {
		out = append(out, s.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// WithCapability lists the running roles whose plugin declares capability,
// sorted by name.
func (m *Manager) WithCapability(capability string) []string {
	var out []string
	for _, st := range m.Statuses() {
		if st.State == "running" && slices.Contains(st.Capabilities, capability) {
			out = append(out, st.Name)
		}
	}
	return out
}

// Close stops every plugin (SIGTERM through the Stop call, then kill).
func (m *Manager) Close() {
	m.mu.Lock()
	sups := m.roles
	m.roles = map[string]*supervisor{}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range sups {
		wg.Add(1)
		go func() { defer wg.Done(); s.stop() }()
	}
	wg.Wait()
}

// callError names a call into a plugin that failed; one that ran out of
// time says so, and which limit to raise. The plugin's end may see the
// deadline first (gRPC sends it along) and reset the stream a moment
// before this context expires: that is the same timeout.
func (m *Manager) callError(ctx context.Context, role, call string, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded {
		return fault.Errorf(fault.Timeout, "role %s: %s did not answer within %s (plugins.limits.call_timeout)", role, call, m.opts.Limits.CallTimeout)
	}
	return fmt.Errorf("role %s: %s: %w", role, call, err)
}

// ErrNotRunning means a role is not running, so it cannot take a command.
var ErrNotRunning = errors.New("not running")

// Command runs one of a running role's commands and returns its JSON answer.
func (m *Manager) Command(ctx context.Context, role, name string, args []string) (json.RawMessage, error) {
	m.mu.Lock()
	s := m.roles[role]
	m.mu.Unlock()
	var client *sdk.RoleClient
	if s != nil {
		client = s.running()
	}
	if client == nil {
		return nil, fmt.Errorf("role %s: %w (see avnode roles)", role, ErrNotRunning)
	}
	ctx, cancel := context.WithTimeout(ctx, m.opts.Limits.CallTimeout)
	defer cancel()
	res, err := client.Command(ctx, &pluginpb.CommandRequest{Name: name, Args: args})
	if err != nil {
		return nil, m.callError(ctx, role, name, err)
	}
	if err := diagnosticsError(m.log, role, name, res.GetDiagnostics()); err != nil {
		return nil, err
	}
	if len(res.GetOutputJson()) == 0 {
		return json.RawMessage("null"), nil
	}
	return res.GetOutputJson(), nil
}
