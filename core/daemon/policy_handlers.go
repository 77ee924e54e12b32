package daemon

import (
	"context"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/fault"
)

func (d *Daemon) registerPolicyHandlers(s *api.Server) {
	s.Handle("GET /v1/policy", d.handlePolicy)
	s.Handle("POST /v1/policy/reload", d.handlePolicyReload)
}

// handlePolicy lists the loaded scripts, their hooks and last reload error.
func (d *Daemon) handlePolicy(context.Context, api.Request) (any, error) {
	return convert(d.Policy.Scripts(), scriptOf), nil
}

// handlePolicyReload re-reads the scripts; a script that does not load is
// refused and the ones in use stay.
func (d *Daemon) handlePolicyReload(context.Context, api.Request) (any, error) {
	if err := d.Policy.Reload(); err != nil {
		return nil, fault.Errorf(fault.Refused, "%v; the scripts in use stay", err)
	}
	return convert(d.Policy.Scripts(), scriptOf), nil
}
