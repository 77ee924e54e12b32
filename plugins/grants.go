package plugins

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/avnode/avnode/core/fault"
)

// grantStore holds each role's grants: the config's (plugins.grants), plus
// what `avnode plugins grant` added and less what `plugins revoke` took,
// kept in the repo's grants file so that they outlive the daemon.
type grantStore struct {
	configured map[string][]string
	path       string // the grants file; "" keeps changes in memory only

	mu      sync.Mutex
	changes grantChanges
	parsed  map[string]grants // effective grants, per role, parsed once per change
}

// grantChanges is the grants file: per role, permissions added and
// permissions of the config taken away.
type grantChanges struct {
	Granted map[string][]string `json:"granted"`
	Revoked map[string][]string `json:"revoked"`
}

// newGrantStore checks the configured grants and reads the grants file.
func newGrantStore(configured map[string][]string, path string) (*grantStore, error) {
	for role, list := range configured {
		if _, err := parseGrants(list); err != nil {
			return nil, fmt.Errorf("plugins.grants.%s: %w", role, err)
		}
	}
	s := &grantStore{configured: configured, path: path,
		changes: grantChanges{Granted: map[string][]string{}, Revoked: map[string][]string{}}}
	if path != "" {
		data, err := os.ReadFile(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("grants: %w", err)
		default:
			if err := json.Unmarshal(data, &s.changes); err != nil {
				return nil, fmt.Errorf("grants: %s is not valid JSON: %w; fix or remove it (the config's plugins.grants still apply)", path, err)
			}
			for role, list := range s.changes.Granted {
				if _, err := parseGrants(list); err != nil {
					return nil, fmt.Errorf("grants: %s: role %s: %w", path, role, err)
				}
			}
		}
	}
	if s.changes.Granted == nil {
		s.changes.Granted = map[string][]string{}
	}
	if s.changes.Revoked == nil {
		s.changes.Revoked = map[string][]string{}
	}
	s.parsed = map[string]grants{}
	return s, nil
}

// list is the role's effective grants, as written.
func (s *grantStore) list(role string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listLocked(role)
}

func (s *grantStore) listLocked(role string) []string {
	var out []string
	for _, p := range append(slices.Clone(s.configured[role]), s.changes.Granted[role]...) {
		if !slices.Contains(s.changes.Revoked[role], p) && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// of is the role's effective grants, parsed.
func (s *grantStore) of(role string) grants {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g, ok := s.parsed[role]; ok {
		return g
	}
	g, _ := parseGrants(s.listLocked(role)) // each was checked when added
	s.parsed[role] = g
	return g
}

// grant adds permissions to a role, and persists them.
func (s *grantStore) grant(role string, perms []string) ([]string, error) {
	if err := checkPermissions(perms); err != nil {
		return nil, err
	}
	return s.change(role, func(c *grantChanges, _ []string) error {
		for _, p := range perms {
			c.Revoked[role] = slices.DeleteFunc(c.Revoked[role], func(r string) bool { return r == p })
			if !slices.Contains(s.configured[role], p) && !slices.Contains(c.Granted[role], p) {
				c.Granted[role] = append(c.Granted[role], p)
			}
		}
		return nil
	})
}

// revoke takes permissions from a role, and persists that. Only a grant as
// written can be revoked: revoking zone.write:bob.avtr does not narrow a
// grant of zone.write:*.
func (s *grantStore) revoke(role string, perms []string) ([]string, error) {
	if err := checkPermissions(perms); err != nil {
		return nil, err
	}
	return s.change(role, func(c *grantChanges, held []string) error {
		for _, p := range perms {
			if !slices.Contains(held, p) {
				return fault.Errorf(fault.NotFound, "role %s holds no grant %q (it holds %v); revoke a grant as `avnode plugins describe %s` lists it", role, p, held, role)
			}
			c.Granted[role] = slices.DeleteFunc(c.Granted[role], func(g string) bool { return g == p })
			if slices.Contains(s.configured[role], p) && !slices.Contains(c.Revoked[role], p) {
				c.Revoked[role] = append(c.Revoked[role], p)
			}
		}
		return nil
	})
}

func checkPermissions(perms []string) error {
	if len(perms) == 0 {
		return fault.New(fault.Invalid, "name at least one permission")
	}
	for _, p := range perms {
		if _, err := parsePermission(p); err != nil {
			return fault.Wrap(fault.Invalid, err)
		}
	}
	return nil
}

// change applies f to a copy of the changes (given the role's grants
// before it), writes them, and only then makes them current: a failed
// write changes nothing.
func (s *grantStore) change(role string, f func(c *grantChanges, held []string) error) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := grantChanges{Granted: cloneLists(s.changes.Granted), Revoked: cloneLists(s.changes.Revoked)}
	if err := f(&next, s.listLocked(role)); err != nil {
		return nil, err
	}
	if err := s.write(next); err != nil {
		return nil, err
	}
	s.changes = next
	delete(s.parsed, role)
	return s.listLocked(role), nil
}

func cloneLists(m map[string][]string) map[string][]string {
	out := make(map[string][]string, len(m))
	for k, v := range m {
		if len(v) > 0 {
			out[k] = slices.Clone(v)
		}
	}
	return out
}

// write replaces the grants file atomically.
func (s *grantStore) write(c grantChanges) error {
	if s.path == "" {
		return nil
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".grants-*")
	if err != nil {
		return fmt.Errorf("grants: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("grants: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("grants: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("grants: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("grants: %w", err)
	}
	return nil
}
