package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/avnode/avnode/core/config"
	"github.com/avnode/avnode/core/daemon"
	"github.com/avnode/avnode/core/repo"
	"github.com/avnode/avnode/plugins"
)

// This file is the composition root's one join between the core and the
// plugin host: the core never imports plugins/, and plugins/ sees the core
// only as the plugins.Node a daemon.RoleNode implements.

// startRoles enables the configured roles once the core runs; a role that
// is missing or broken shows in `avnode roles` and never stops the node.
func startRoles(d *daemon.Daemon) (daemon.Roles, error) {
	opts := managerOptions(d.Config, d.Repo.Dir, d.Log)
	opts.Node, opts.PeerID, opts.Registerer = d.RoleNode(), d.Node.Host.ID().String(), d.Registerer()
	// A role enabled at run time gets its role_config as the file says
	// now (`avnode config set role_config.ROLE.KEY VALUE`, then enable).
	opts.RoleConfig = func(role string) json.RawMessage {
		cfg, err := d.ReadConfig()
		if err != nil {
			d.Log.Warn("config does not load; the role gets role_config as the node started with it", "role", role, "err", err)
			cfg = d.Config
		}
		return roleConfig(cfg, role)
	}
	opts.Persist = func(role string, enabled bool) (string, error) {
		path := d.Repo.Path(repo.ConfigFile)
		return path, saveRole(path, role, enabled)
	}
	m, err := plugins.NewManager(opts)
	if err != nil {
		return nil, err
	}
	for _, role := range d.Config.Roles {
		m.Enable(role, roleConfig(d.Config, role))
	}
	return m, nil
}

// saveRole adds role to (or takes it out of) the roles list of the config
// file at path, so that `roles enable|disable` lasts across restarts.
func saveRole(path, role string, enabled bool) error {
	file, err := config.Load(config.Sources{RepoFile: path})
	if err != nil {
		return err
	}
	roles := slices.DeleteFunc(slices.Clone(file.Roles), func(r string) bool { return r == role })
	if enabled {
		roles = append(roles, role)
	}
	return config.SetInFile(path, map[string]any{"roles": roles})
}

// managerOptions are what the config says of plugins, for the repo in
// repoDir.
func managerOptions(cfg *config.Config, repoDir string, log *slog.Logger) plugins.Options {
	limits, sb := cfg.Plugins.Limits, cfg.Plugins.Sandbox
	return plugins.Options{
		Dirs: pluginDirs(cfg, repoDir), Checksums: cfg.Plugins.Checksums,
		MaxRestartsPerMinute: cfg.Plugins.MaxRestartsPerMinute, MaxStartFailures: cfg.Plugins.MaxStartFailures,
		DataDir: filepath.Join(repoDir, "roles"), Logger: log,
		Grants: cfg.Plugins.Grants, GrantsFile: filepath.Join(repoDir, "grants.json"),
		Limits: plugins.Limits{
			CallTimeout: time.Duration(limits.CallTimeout), LogLinesPerSecond: limits.LogLinesPerSecond, LogBurst: limits.LogBurst,
			LogLineBytes: limits.LogLineBytes, HostCalls: limits.HostCalls, MessageBytes: limits.MessageMB << 20,
		},
		Sandbox: plugins.Sandbox{Enabled: sb.Enabled, MemoryMB: sb.MemoryMB, OpenFiles: sb.OpenFiles, Processes: sb.Processes},
	}
}

// validateRoles has each configured role's plugin (the roles list, and
// every role with a role_config section) check its config, without
// starting it, as `avnode config validate` promises. A role whose plugin
// is not installed is reported, not failed: the node runs without it.
func validateRoles(cfg *config.Config, repoDir string) (checked []string, notInstalled []string, err error) {
	m, err := plugins.NewManager(managerOptions(cfg, repoDir, slog.New(slog.DiscardHandler)))
	if err != nil {
		return nil, nil, err
	}
	roles := slices.Clone(cfg.Roles)
	for role := range cfg.RoleConfig {
		roles = append(roles, role)
	}
	slices.Sort(roles)
	var problems []error
	for _, role := range slices.Compact(roles) {
		err := m.ValidateConfig(role, roleConfig(cfg, role))
		switch {
		case errors.Is(err, plugins.ErrNotInstalled):
			notInstalled = append(notInstalled, role)
		case err != nil:
			problems = append(problems, fmt.Errorf("role_config.%s: %w", role, err))
		default:
			checked = append(checked, role)
		}
	}
	return checked, notInstalled, errors.Join(problems...)
}

// pluginDirs are plugins.dirs, or else the folder of this binary (where
// `make build` puts the shipped roles) and the repo's plugins folder.
func pluginDirs(cfg *config.Config, repoDir string) []string {
	dirs := cfg.Plugins.Dirs
	if len(dirs) == 0 {
		if exe, err := os.Executable(); err == nil {
			dirs = append(dirs, filepath.Dir(exe))
		}
		dirs = append(dirs, filepath.Join(repoDir, "plugins"))
	}
	return dirs
}

// roleConfig is the role's section of role_config, as JSON.
func roleConfig(cfg *config.Config, role string) json.RawMessage {
	section, ok := cfg.RoleConfig[role]
	if !ok {
		return json.RawMessage("{}")
	}
	data, err := json.Marshal(section)
	if err != nil {
		return json.RawMessage("{}")
	}
	return data
}
