package config

import (
	"fmt"
	"slices"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
)

// flagAliases are short flag names for the keys people set most.
var flagAliases = map[string]string{
	"log-level":  "log.level",
	"log-format": "log.format",
}

// flagHelp describes each config key for --help.
var flagHelp = map[string]string{
	"listen":                              "multiaddrs to listen on, comma-separated",
	"bootstrap":                           "peers to join through, comma-separated multiaddrs ending in /p2p/<peer id>",
	"roles":                               "roles to run, comma-separated (beacon, mirror, relay, receiver, satellite)",
	"dht.mode":                            "DHT mode: server, client or auto",
	"dht.protocol_prefix":                 "DHT protocol prefix (the network's name)",
	"dht.record_max_age":                  "how long stored DHT records are kept",
	"dht.refresh_interval":                "routing table refresh interval",
	"dht.max_peers_per_ip_group":          "routing table peers allowed per IP group (/16, or AS for IPv6); 0: no limit",
	"dht.max_peers_per_ip_group_per_cpl":  "of those, peers allowed per common-prefix length",
	"dht.diversity_exempt_local":          "do not limit peers reached over loopback or private addresses",
	"names.claim_difficulty":              "proof of work of a name claim, in bits (network-wide)",
	"names.claim_quorum":                  "fewest closest peers that must hold a new claim",
	"names.zone_lifetime":                 "how long a published zone stays valid",
	"names.zone_ttl":                      "how long resolvers may cache a zone",
	"names.republish_interval":            "how often the owner republishes its names",
	"names.reput_interval":                "how often held records are re-put to the closest peers",
	"names.resolve_timeout":               "when a resolve gives up",
	"names.resolve_quorum":                "holders whose answers a resolve waits for",
	"content.cache_max_mb":                "size of the block store above which unpinned blocks are collected",
	"content.fetch_sources":               "sources a fetch uses at once; 0: all",
	"content.serve":                       "serve held blocks to others and provide fetched content (false on a satellite)",
	"content.max_fetch_mb":                "most one get may fetch and write; 0: the repo disk's free space less 1 GiB",
	"content.serve_peer_requests":         "block requests one peer may make per second",
	"content.serve_peer_mb":               "MiB the block server reads for one peer per second",
	"gateway.listen":                      "the receiver role's HTTP gateway address (port 0: any free port)",
	"plugins.dirs":                        "folders searched for avnode-<role> plugin binaries",
	"plugins.max_restarts_per_minute":     "restarts of a crashed plugin allowed per minute",
	"plugins.max_start_failures":          "crashes in a row before start that mark a plugin failed",
	"plugins.limits.call_timeout":         "bound on every call into a plugin (describe, start, stop, roles call)",
	"plugins.limits.log_lines_per_second": "lines a plugin may log per second; more are dropped and counted",
	"plugins.limits.log_burst":            "lines a plugin may log in a burst above its rate",
	"plugins.limits.log_line_bytes":       "longest plugin log line kept; longer ones are cut",
	"plugins.limits.host_calls":           "host-API calls of one role run at once; more wait",
	"plugins.limits.message_mb":           "largest gRPC message between the node and a plugin, MiB",
	"plugins.sandbox.enabled":             "confine plugins: Landlock (Linux), no_new_privs, rlimits",
	"plugins.sandbox.memory_mb":           "address-space limit of each plugin, MiB (0: none)",
	"plugins.sandbox.open_files":          "open-file limit of each plugin",
	"plugins.sandbox.processes":           "process limit (Linux counts per user) seen by each plugin (0: none)",
	"policy.scripts":                      "Lua policy scripts, in order (see scripts/README.md)",
	"policy.budget":                       "time a policy hook call may take before its fallback",
	"policy.memory_mb":                    "address-space limit of the policy process, MiB",
	"policy.watch_interval":               "how often policy scripts are checked for changes; 0s: never",
	"connmgr.low":                         "connections kept when trimming",
	"connmgr.high":                        "connections that start a trim",
	"connmgr.grace":                       "age under which connections are never trimmed",
	"resources.max_memory_mb":             "resource manager memory limit in MiB (0: scale to the machine)",
	"resources.max_fds":                   "resource manager file-descriptor limit (0: scale to the machine)",
	"nat.autonat":                         "run AutoNAT to learn reachability",
	"nat.hole_punching":                   "upgrade relayed connections by hole punching (DCUtR)",
	"nat.relay_client":                    "dial peers through circuit relays",
	"nat.port_map":                        "ask the router for a port mapping (UPnP/NAT-PMP)",
	"nat.reachability":                    "auto (AutoNAT decides), public or private",
	"nat.relays":                          "circuit relays to reserve on when private (full multiaddrs), besides those the DHT announces",
	"metrics.listen":                      "Prometheus metrics address (empty: off)",
	"dashboard.listen":                    "the local dashboard's loopback address (empty: off)",
	"log.level":                           "log level: debug, info, warn, error",
	"log.format":                          "log format: text or json",
}

// RegisterFlags adds one flag per config key (its dotted name, e.g.
// --dht.mode) plus the short aliases, so every key can be set from the
// command line. Unset flags never override the file or environment.
func RegisterFlags(fs *pflag.FlagSet) {
	k := koanf.New(".")
	if err := k.Load(rawbytes.Provider(defaultYAML), yaml.Parser()); err != nil {
		panic(fmt.Sprintf("config: embedded defaults: %v", err)) // a build defect, caught by tests
	}
	keys := k.Keys()
	slices.Sort(keys)
	for _, key := range keys {
		if _, isMap := k.Get(key).(map[string]any); isMap || underOpenMap(key) {
			continue // open maps (checksums, grants, role_config) are set in the config file
		}
		addFlag(fs, key, k.Get(key), flagHelp[key])
	}
	for alias, key := range flagAliases {
		addFlag(fs, alias, k.Get(key), "same as --"+key)
	}
}

func addFlag(fs *pflag.FlagSet, name string, def any, help string) {
	switch v := def.(type) {
	case bool:
		fs.Bool(name, v, help)
	case int:
		fs.Int(name, v, help)
	case int64:
		fs.Int(name, int(v), help)
	case float64:
		fs.Int(name, int(v), help)
	case []any:
		var items []string
		for _, item := range v {
			items = append(items, fmt.Sprint(item))
		}
		fs.StringSlice(name, items, help)
	default:
		fs.String(name, fmt.Sprint(v), help)
	}
}

// flagToKey maps a flag to its config key; flags that are not config keys
// (like --repo or --json) map to "" and are skipped.
func flagToKey(fs *pflag.FlagSet, known map[string]any) func(f *pflag.Flag) (string, any) {
	return func(f *pflag.Flag) (string, any) {
		key := f.Name
		if alias, ok := flagAliases[key]; ok {
			key = alias
		}
		if _, ok := known[key]; !ok {
			return "", nil
		}
		if f.Value.Type() == "stringSlice" {
			v, _ := fs.GetStringSlice(f.Name)
			return key, v
		}
		return key, f.Value.String()
	}
}
