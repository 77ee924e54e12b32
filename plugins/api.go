package plugins

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/fault"
)

// RegisterAPI adds the roles' calls to the node's control API: `avnode
// roles`, `roles enable|disable|call` and `plugins ls|describe`.
func (m *Manager) RegisterAPI(s *api.Server) {
	s.Handle("GET /v1/roles", m.handleRoles)
	s.Handle("POST /v1/roles/enable", m.handleRoleEnable)
	s.Handle("POST /v1/roles/disable", m.handleRoleDisable)
	s.Handle("GET /v1/plugins", m.handlePlugins)
	s.Handle("GET /v1/plugins/describe", m.handlePluginDescribe)
	s.Handle("POST /v1/roles/call", m.handleRoleCall)
	s.Handle("POST /v1/plugins/grant", m.handleGrant)
	s.Handle("POST /v1/plugins/revoke", m.handleRevoke)
}

// handleGrant gives a role permissions: ?name=ROLE&perm=P&perm=Q.
func (m *Manager) handleGrant(_ context.Context, req api.Request) (any, error) {
	role := req.Query("name")
	granted, err := m.Grant(role, req.QueryAll("perm"))
	if err != nil {
		return nil, err
	}
	return api.Grants{Role: role, Granted: granted}, nil
}

func (m *Manager) handleRevoke(_ context.Context, req api.Request) (any, error) {
	role := req.Query("name")
	granted, err := m.Revoke(role, req.QueryAll("perm"))
	if err != nil {
		return nil, err
	}
	return api.Grants{Role: role, Granted: granted}, nil
}

// handleRoleCall runs a command of a running role: ?role=R&name=N&arg=A&arg=B.
func (m *Manager) handleRoleCall(ctx context.Context, req api.Request) (any, error) {
	out, err := m.Command(ctx, req.Query("role"), req.Query("name"), req.QueryAll("arg"))
	if errors.Is(err, ErrNotRunning) {
		return nil, fault.Wrap(fault.NotFound, err)
	}
	if err != nil && fault.KindOf(err) == fault.Timeout {
		return nil, err
	}
	if err != nil {
		return nil, fault.Wrap(fault.Refused, err) // the role's answer to its command
	}
	return out, nil
}

// handleRoles lists the enabled roles, plus installed ones that are not enabled.
func (m *Manager) handleRoles(context.Context, api.Request) (any, error) {
	statuses := m.Statuses()
	seen := map[string]bool{}
	for _, st := range statuses {
		seen[st.Name] = true
	}
	for role, path := range m.Installed() {
		if !seen[role] {
			statuses = append(statuses, api.RoleStatus{Name: role, State: "disabled", Path: path})
		}
	}
	sort.Slice(statuses, func(i, j int) bool { return statuses[i].Name < statuses[j].Name })
	return statuses, nil
}

// handleRoleEnable starts a role and says which of the permissions its
// plugin asks for are not granted: the role runs, and those calls are
// refused until `avnode plugins grant`.
func (m *Manager) handleRoleEnable(ctx context.Context, req api.Request) (any, error) {
	role := req.Query("name")
	desc, err := m.Describe(ctx, role)
	if errors.Is(err, ErrNotInstalled) {
		return nil, fault.Wrap(fault.NotFound, err)
	}
	if err != nil {
		return nil, err
	}
	where, err := m.persist(role, true)
	if err != nil {
		return nil, err
	}
	m.Enable(role, m.roleConfig(role))
	return api.RoleState{Role: role, State: "starting", MissingGrants: desc.MissingGrants, SavedIn: where}, nil
}

// persist records an enable or a disable where Options.Persist keeps it,
// before the change runs: a change that cannot be kept is not made.
func (m *Manager) persist(role string, enabled bool) (string, error) {
	if m.opts.Persist == nil {
		return "", nil
	}
	where, err := m.opts.Persist(role, enabled)
	if err != nil {
		return "", fmt.Errorf("role %s: could not save the change, so it was not made: %w", role, err)
	}
	return where, nil
}

func (m *Manager) roleConfig(role string) []byte {
	if m.opts.RoleConfig == nil {
		return []byte("{}")
	}
	return m.opts.RoleConfig(role)
}

func (m *Manager) handleRoleDisable(_ context.Context, req api.Request) (any, error) {
	role := req.Query("name")
	if err := m.Disable(role); err != nil {
		return nil, fault.Wrap(fault.Refused, err)
	}
	where, err := m.persist(role, false)
	if err != nil {
		return nil, err
	}
	return api.RoleState{Role: role, State: "stopped", SavedIn: where}, nil
}

func (m *Manager) handlePlugins(context.Context, api.Request) (any, error) {
	out := []api.PluginInfo{}
	for role, path := range m.Installed() {
		out = append(out, api.PluginInfo{Role: role, Path: path})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Role < out[j].Role })
	return out, nil
}

func (m *Manager) handlePluginDescribe(ctx context.Context, req api.Request) (any, error) {
	desc, err := m.Describe(ctx, req.Query("name"))
	if errors.Is(err, ErrNotInstalled) {
		return nil, fault.Wrap(fault.NotFound, err)
	}
	if err != nil {
		return nil, err
	}
	return desc, nil
}
