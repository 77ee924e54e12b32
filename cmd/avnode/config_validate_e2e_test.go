package main

import (
	"strings"
	"testing"
)

// config validate has each configured role's plugin check its section,
// without starting the role: a typo in a role's settings is found before
// the node runs, a role with no plugin installed is named and passes.
func TestConfigValidateAsksTheRolesPlugins(t *testing.T) {
	repo := t.TempDir()
	typo := writeConfig(t, map[string]any{"roles": []string{"receiver"},
		"role_config": map[string]any{"receiver": map[string]any{"max_concurent_fetches": 3}}})
	r := cli(t, repo, nil, "config", "validate", "--config", typo)
	if r.code != exitFailure || !strings.Contains(r.stderr, `unknown field "max_concurent_fetches"`) || !strings.Contains(r.stderr, "role_config.receiver") {
		t.Fatalf("a typo in the receiver's config: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	fine := writeConfig(t, map[string]any{"roles": []string{"receiver"},
		"role_config": map[string]any{"receiver": map[string]any{"max_concurrent_fetches": 3}, "watcher": map[string]any{"nmae": "x"}}})
	r = cli(t, repo, nil, "config", "validate", "--config", fine)
	if r.code != 0 || !strings.Contains(r.stdout, "roles checked by their plugins: receiver") ||
		!strings.Contains(r.stderr, "role watcher: no plugin avnode-watcher installed") {
		t.Fatalf("a good receiver config, and a role not installed: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
