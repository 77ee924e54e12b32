package daemon

import (
	"context"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/config"
	"github.com/avnode/avnode/core/fault"
	"github.com/avnode/avnode/core/node"
)

func (d *Daemon) registerHandlers(s *api.Server) {
	s.Handle("GET /v1/id", d.handleID)
	s.Handle("GET /v1/version", d.handleVersion)
	s.Handle("GET /v1/peers", d.handlePeers)
	s.Handle("GET /v1/config", d.handleConfig)
	s.Handle("POST /v1/config/reload", d.handleConfigReload)
	s.Handle("POST /v1/dashboard/login", d.handleDashboardLogin)
	s.Handle("GET /v1/routing/findpeer", d.handleFindPeer)
	s.Handle("GET /v1/routing/get", d.handleRoutingGet)
	s.Handle("POST /v1/routing/put", d.handleRoutingPut)
	d.registerNameHandlers(s)
	d.registerContentHandlers(s)
	d.registerEstateHandlers(s)
	if d.Roles != nil {
		d.Roles.RegisterAPI(s)
	}
	d.registerPolicyHandlers(s)
}

func (d *Daemon) handleID(context.Context, api.Request) (any, error) { return d.info(), nil }

// info is who the node is now, as `avnode id` and the dashboard show it.
func (d *Daemon) info() api.Info {
	roles, states := []string{}, map[string]string{}
	services := map[string]string{}
	if d.Roles != nil {
		services = d.Roles.Services()
		for _, st := range d.Roles.Statuses() {
			roles = append(roles, st.Name)
			states[st.Name] = st.State
		}
	}
	dashboardURL := ""
	if d.dashboard != nil {
		dashboardURL = d.dashboard.URL()
	}
	return api.Info{
		Dashboard:    dashboardURL,
		Gateway:      services["gateway"],
		Services:     services,
		Metrics:      d.metricsURL,
		RoleStates:   states,
		PeerID:       d.Node.Host.ID().String(),
		Addrs:        d.Node.Addrs(),
		Agent:        node.Agent(),
		Roles:        roles,
		Reachability: strings.ToLower(d.Node.Reachability().String()),
		RelayAddrs:   nonNil(d.Node.RelayAddrs()),
		DHTMode:      d.Config.DHT.Mode,
		Uptime:       time.Since(d.started).Round(time.Second).String(),
	}
}

// Version describes this build.
func Version() api.VersionInfo {
	b := node.BuildStamp()
	return api.VersionInfo{Version: node.FullVersion(), Commit: b.Commit, CommitTime: b.Time, Modified: b.Modified,
		Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
}

func (d *Daemon) handleVersion(context.Context, api.Request) (any, error) {
	v := Version()
	v.DHTPrefix = d.Config.DHT.ProtocolPrefix
	return v, nil
}

func (d *Daemon) handlePeers(context.Context, api.Request) (any, error) { return d.peers(), nil }

// peers are the connected peers, an empty list when none.
func (d *Daemon) peers() []api.PeerInfo {
	peers := convert(d.Node.Peers(), peerOf)
	if peers == nil {
		peers = []api.PeerInfo{}
	}
	return peers
}

func (d *Daemon) handleConfig(context.Context, api.Request) (any, error) {
	return d.Config, nil
}

// liveKeys are the config keys a running node applies at a reload; every
// other change waits for a restart.
// Each applies its key of cfg and records it in d.applied.
var liveKeys = map[string]func(d *Daemon, cfg *config.Config) error{
	"log.level": func(d *Daemon, cfg *config.Config) error {
		if err := d.logLevel.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
			return err
		}
		d.applied.Log.Level = cfg.Log.Level
		return nil
	},
	"policy.scripts": func(d *Daemon, cfg *config.Config) error {
		if err := d.Policy.SetScripts(d.scriptPaths(cfg)); err != nil {
			return err
		}
		d.applied.Policy.Scripts = cfg.Policy.Scripts
		return nil
	},
}

// handleConfigReload reads the config again from the sources the node
// started with, applies the changes it can at once (liveKeys, and the
// roles' keys through applyRoles) and lists those that take a restart.
func (d *Daemon) handleConfigReload(context.Context, api.Request) (any, error) {
	cfg, err := d.ReadConfig()
	if err != nil {
		return nil, fault.Errorf(fault.Invalid, "%v; nothing was applied", err)
	}
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	res := api.ConfigReload{Applied: []string{}, AtRestart: []string{}}
	var roleKeys []string
	for _, key := range config.Changed(d.applied, cfg) {
		apply, live := liveKeys[key]
		switch {
		case live:
			if err := apply(d, cfg); err != nil {
				return res, fault.Errorf(fault.Refused, "%s: %v; the rest was not applied", key, err)
			}
			res.Applied = append(res.Applied, key)
		case d.Roles != nil && isRoleKey(key):
			roleKeys = append(roleKeys, key)
		default:
			res.AtRestart = append(res.AtRestart, key)
		}
	}
	if len(roleKeys) > 0 {
		d.applyRoles(cfg, roleKeys, &res)
		res.Applied = append(res.Applied, roleKeys...)
		slices.Sort(res.Applied)
	}
	d.Log.Info("config reloaded", "applied", res.Applied, "at_restart", res.AtRestart)
	return res, nil
}

// isRoleKey: the keys a role reads when it starts, which a reload applies
// by starting, stopping or restarting roles.
func isRoleKey(key string) bool {
	return key == "roles" || key == "gateway.listen" || key == "role_config" || strings.HasPrefix(key, "role_config.")
}

// applyRoles starts the roles added to `roles`, stops those taken out, and
// restarts the running ones whose role_config changed, and the gateway's
// role when gateway.listen did. A role starts with its section as the file
// says now.
func (d *Daemon) applyRoles(cfg *config.Config, keys []string, res *api.ConfigReload) {
	restart := map[string]bool{}
	for _, key := range keys {
		switch {
		case key == "gateway.listen":
			for _, role := range d.Roles.WithCapability("gateway") {
				restart[role] = true
			}
		case strings.HasPrefix(key, "role_config."):
			restart[strings.SplitN(key, ".", 3)[1]] = true
		case key == "role_config": // a whole section added or taken out
			for role := range cfg.RoleConfig {
				restart[role] = true
			}
			for role := range d.applied.RoleConfig {
				restart[role] = true
			}
		}
	}
	enabled := map[string]bool{}
	for _, st := range d.Roles.Statuses() {
		enabled[st.Name] = true
	}
	for _, role := range d.applied.Roles {
		if !slices.Contains(cfg.Roles, role) && enabled[role] {
			d.Roles.StopRole(role)
			enabled[role] = false
			res.RolesStopped = append(res.RolesStopped, role)
			d.Log.Info("role stopped: no longer in roles", "role", role)
		}
	}
	for _, role := range slices.Sorted(maps.Keys(restart)) {
		if enabled[role] {
			d.Roles.StopRole(role)
			d.Roles.StartRole(role)
			res.RolesRestarted = append(res.RolesRestarted, role)
			d.Log.Info("role restarted for its changed config", "role", role)
		}
	}
	for _, role := range cfg.Roles {
		if !enabled[role] {
			d.Roles.StartRole(role)
			res.RolesStarted = append(res.RolesStarted, role)
			d.Log.Info("role started: added to roles", "role", role)
		}
	}
	d.applied.Roles, d.applied.RoleConfig, d.applied.Gateway.Listen = cfg.Roles, cfg.RoleConfig, cfg.Gateway.Listen
}

func (d *Daemon) handleFindPeer(ctx context.Context, req api.Request) (any, error) {
	id, err := peer.Decode(req.Query("peer"))
	if err != nil {
		return nil, fault.Errorf(fault.Invalid, "findpeer: %q is not a peer ID (%v)", req.Query("peer"), err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeoutParam(req, 30*time.Second))
	defer cancel()
	addrs, err := d.Node.FindPeer(ctx, id)
	if err != nil {
		if fault.KindOf(err) == fault.Timeout {
			return nil, err
		}
		return nil, fault.Wrap(fault.NotFound, err)
	}
	out := api.FindPeerResult{PeerID: id.String(), Addrs: []string{}}
	for _, a := range addrs {
		out.Addrs = append(out.Addrs, a.String())
	}
	return out, nil
}

// dhtKey turns a key as users type it into the DHT's key. Public-key records
// (/pk/<peer id>) are keyed by the peer ID's bytes, not its text.
func dhtKey(key string) (string, error) {
	if rest, ok := strings.CutPrefix(key, "/pk/"); ok {
		id, err := peer.Decode(rest)
		if err != nil {
			return "", fmt.Errorf("%q: /pk/ must be followed by a peer ID (%v)", key, err)
		}
		return "/pk/" + string(id), nil
	}
	if !strings.HasPrefix(key, "/") || strings.Count(key, "/") < 2 {
		return "", fmt.Errorf("%q is not a DHT key; write it as /<namespace>/<id>, like /pk/<peer id>", key)
	}
	return key, nil
}

func (d *Daemon) handleRoutingGet(ctx context.Context, req api.Request) (any, error) {
	key, err := dhtKey(req.Query("key"))
	if err != nil {
		return nil, fault.Errorf(fault.Invalid, "routing get: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeoutParam(req, 30*time.Second))
	defer cancel()
	value, err := d.Names.GetRecord(ctx, key)
	if err != nil {
		if fault.KindOf(err) == fault.NotFound {
			return nil, fault.Errorf(fault.NotFound, "routing get %s: not found", req.Query("key"))
		}
		return nil, fmt.Errorf("routing get %s: %w", req.Query("key"), err)
	}
	return api.RoutingValue{Key: req.Query("key"), Value: value}, nil
}

func (d *Daemon) handleRoutingPut(ctx context.Context, req api.Request) (any, error) {
	key, err := dhtKey(req.Query("key"))
	if err != nil {
		return nil, fault.Errorf(fault.Invalid, "routing put: %v", err)
	}
	value, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, fault.Errorf(fault.Invalid, "routing put %s: read value: %v", req.Query("key"), err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeoutParam(req, 60*time.Second))
	defer cancel()
	if err := d.Names.PutRecord(ctx, key, value); err != nil {
		return nil, fmt.Errorf("routing put %s: %w", req.Query("key"), err)
	}
	return api.RoutingValue{Key: req.Query("key"), Value: value}, nil
}

func timeoutParam(req api.Request, def time.Duration) time.Duration {
	if t, err := time.ParseDuration(req.Query("timeout")); err == nil && t > 0 {
		return t
	}
	return def
}

// nonNil makes an empty list print as [] rather than null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
