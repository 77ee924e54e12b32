package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"github.com/avnode/avnode/core/daemon"
	"github.com/avnode/avnode/plugins"
)

// This file is the composition root's one join between the core and the
// plugin host: the core never imports plugins/, and plugins/ sees the core
// only as the plugins.Node a daemon.RoleNode implements.

// startRoles enables the configured roles once the core runs; a role that
// is missing or broken shows in `avnode roles` and never stops the node.
func startRoles(d *daemon.Daemon) (daemon.Roles, error) {
	cfg := d.Config
	limits, sb := cfg.Plugins.Limits, cfg.Plugins.Sandbox
	m, err := plugins.NewManager(plugins.Options{
		Dirs: pluginDirs(d), Checksums: cfg.Plugins.Checksums,
		MaxRestartsPerMinute: cfg.Plugins.MaxRestartsPerMinute, MaxStartFailures: cfg.Plugins.MaxStartFailures,
		Node: d.RoleNode(), RoleConfig: func(role string) json.RawMessage { return roleConfig(d, role) },
		DataDir: d.Repo.Path("roles"), PeerID: d.Node.Host.ID().String(),
		Registerer: d.Registerer(), Logger: d.Log,
		Grants: cfg.Plugins.Grants, GrantsFile: d.Repo.Path("grants.json"),
		Limits: plugins.Limits{
			CallTimeout: time.Duration(limits.CallTimeout), LogLinesPerSecond: limits.LogLinesPerSecond, LogBurst: limits.LogBurst,
			LogLineBytes: limits.LogLineBytes, HostCalls: limits.HostCalls, MessageBytes: limits.MessageMB << 20,
		},
		Sandbox: plugins.Sandbox{Enabled: sb.Enabled, MemoryMB: sb.MemoryMB, OpenFiles: sb.OpenFiles, Processes: sb.Processes},
	})
	if err != nil {
		return nil, err
	}
	for _, role := range cfg.Roles {
		m.Enable(role, roleConfig(d, role))
	}
	return m, nil
}

// pluginDirs are plugins.dirs, or else the folder of this binary (where
// `make build` puts the shipped roles) and the repo's plugins folder.
func pluginDirs(d *daemon.Daemon) []string {
	dirs := d.Config.Plugins.Dirs
	if len(dirs) == 0 {
		if exe, err := os.Executable(); err == nil {
			dirs = append(dirs, filepath.Dir(exe))
		}
		dirs = append(dirs, d.Repo.Path("plugins"))
	}
	return dirs
}

// roleConfig is the role's section of role_config, as JSON.
func roleConfig(d *daemon.Daemon, role string) json.RawMessage {
	section, ok := d.Config.RoleConfig[role]
	if !ok {
		return json.RawMessage("{}")
	}
	data, err := json.Marshal(section)
	if err != nil {
		return json.RawMessage("{}")
	}
	return data
}
