package daemon

import (
	"context"
	"fmt"
	"io"
	"runtime"
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

func (d *Daemon) handleID(context.Context, api.Request) (any, error) {
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
	}, nil
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

func (d *Daemon) handlePeers(context.Context, api.Request) (any, error) {
	peers := convert(d.Node.Peers(), peerOf)
	if peers == nil {
		peers = []api.PeerInfo{}
	}
	return peers, nil
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
// started with, applies the changes it can at once (liveKeys) and lists
// those that take a restart.
func (d *Daemon) handleConfigReload(context.Context, api.Request) (any, error) {
	cfg, err := d.ReadConfig()
	if err != nil {
		return nil, fault.Errorf(fault.Invalid, "%v; nothing was applied", err)
	}
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	res := api.ConfigReload{Applied: []string{}, AtRestart: []string{}}
	for _, key := range config.Changed(d.applied, cfg) {
		apply, live := liveKeys[key]
		switch {
		case !live:
			res.AtRestart = append(res.AtRestart, key)
		default:
			if err := apply(d, cfg); err != nil {
				return res, fault.Errorf(fault.Refused, "%s: %v; the rest was not applied", key, err)
			}
			res.Applied = append(res.Applied, key)
		}
	}
	d.Log.Info("config reloaded", "applied", res.Applied, "at_restart", res.AtRestart)
	return res, nil
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
