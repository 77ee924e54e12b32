package daemon

import (
	"context"
	"errors"
	"sort"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/fault"
	"github.com/avnode/avnode/plugins"
)

func (d *Daemon) registerPluginHandlers(s *api.Server) {
	s.Handle("GET /v1/roles", d.handleRoles)
	s.Handle("POST /v1/roles/enable", d.handleRoleEnable)
	s.Handle("POST /v1/roles/disable", d.handleRoleDisable)
	s.Handle("GET /v1/plugins", d.handlePlugins)
	s.Handle("GET /v1/plugins/describe", d.handlePluginDescribe)
	s.Handle("POST /v1/roles/call", d.handleRoleCall)
}

// handleRoleCall runs a command of a running role: ?role=R&name=N&arg=A&arg=B.
func (d *Daemon) handleRoleCall(ctx context.Context, req api.Request) (any, error) {
	out, err := d.Plugins.Command(ctx, req.Query("role"), req.Query("name"), req.QueryAll("arg"))
	if errors.Is(err, plugins.ErrNotRunning) {
		return nil, fault.Wrap(fault.NotFound, err)
	}
	if err != nil {
		return nil, fault.Wrap(fault.Refused, err) // the role's answer to its command
	}
	return out, nil
}

// handleRoles lists the enabled roles, plus installed ones that are not enabled.
func (d *Daemon) handleRoles(context.Context, api.Request) (any, error) {
	statuses := convert(d.Plugins.Statuses(), roleStatusOf)
	seen := map[string]bool{}
	for _, st := range statuses {
		seen[st.Name] = true
	}
	for role, path := range d.Plugins.Installed() {
		if !seen[role] {
			statuses = append(statuses, api.RoleStatus{Name: role, State: "disabled", Path: path})
		}
	}
	sort.Slice(statuses, func(i, j int) bool { return statuses[i].Name < statuses[j].Name })
	return statuses, nil
}

func (d *Daemon) handleRoleEnable(_ context.Context, req api.Request) (any, error) {
	role := req.Query("name")
	if _, err := d.Plugins.Find(role); err != nil {
		return nil, fault.Wrap(fault.NotFound, err)
	}
	d.Plugins.Enable(role, d.roleConfig(role))
	return api.RoleState{Role: role, State: "starting"}, nil
}

func (d *Daemon) handleRoleDisable(_ context.Context, req api.Request) (any, error) {
	role := req.Query("name")
	if err := d.Plugins.Disable(role); err != nil {
		return nil, fault.Wrap(fault.Refused, err)
	}
	return api.RoleState{Role: role, State: "stopped"}, nil
}

func (d *Daemon) handlePlugins(context.Context, api.Request) (any, error) {
	out := []api.PluginInfo{}
	for role, path := range d.Plugins.Installed() {
		out = append(out, api.PluginInfo{Role: role, Path: path})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Role < out[j].Role })
	return out, nil
}

func (d *Daemon) handlePluginDescribe(ctx context.Context, req api.Request) (any, error) {
	desc, err := d.Plugins.Describe(ctx, req.Query("name"))
	if errors.Is(err, plugins.ErrNotInstalled) {
		return nil, fault.Wrap(fault.NotFound, err)
	}
	if err != nil {
		return nil, err
	}
	return descriptionOf(desc), nil
}
