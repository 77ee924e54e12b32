package daemon

import (
	"context"
	"slices"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/fault"
	"github.com/avnode/avnode/core/repo"
)

func (d *Daemon) registerPolicyHandlers(s *api.Server) {
	s.Handle("GET /v1/policy", d.handlePolicy)
	s.Handle("POST /v1/policy/reload", d.handlePolicyReload)
}

// handlePolicy lists the loaded scripts, their hooks and last reload error.
func (d *Daemon) handlePolicy(context.Context, api.Request) (any, error) {
	return convert(d.Policy.Scripts(), scriptOf), nil
}

// handlePolicyReload reads the config's policy.scripts again, from the
// sources the node started with (an edited config.yaml among them), and
// reloads the scripts; a script that does not load is refused and the
// ones in use stay.
func (d *Daemon) handlePolicyReload(context.Context, api.Request) (any, error) {
	cfg, err := d.ReadConfig()
	if err != nil {
		return nil, fault.Errorf(fault.Invalid, "%v; the scripts in use stay", err)
	}
	scripts := d.scriptPaths(cfg)
	inUse := d.Policy.Paths()
	switch {
	case len(scripts) == 0 && len(inUse) == 0:
		return nil, fault.Errorf(fault.NotFound, "no policy scripts to load: list them in policy.scripts (%s), then reload",
			d.Repo.Path(repo.ConfigFile))
	case !slices.Equal(scripts, inUse):
		err = d.Policy.SetScripts(scripts)
	default:
		err = d.Policy.Reload()
	}
	if err != nil {
		return nil, fault.Errorf(fault.Refused, "%v; the scripts in use stay", err)
	}
	return convert(d.Policy.Scripts(), scriptOf), nil
}
