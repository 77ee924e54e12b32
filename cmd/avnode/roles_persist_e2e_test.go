package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/config"
	"github.com/avnode/avnode/core/repo"
)

// `roles enable` lasts across a restart: it is saved in the repo's
// config.yaml, and says so; `roles disable` takes it out again.
func TestRolesEnableLastsAcrossRestarts(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "n")
	d := startDaemon(t, dir)
	out := mustCLI(t, dir, "roles", "enable", "mirror")
	if !strings.Contains(out, "saved in "+filepath.Join(dir, repo.ConfigFile)) {
		t.Fatalf("roles enable does not say where it saved the change:\n%s", out)
	}
	waitRoleNamed(t, dir, "mirror", "running", 30*time.Second)
	if roles := fileRoles(t, dir); !slices.Equal(roles, []string{"mirror"}) {
		t.Fatalf("config.yaml roles after enable: %v", roles)
	}
	d.stop()

	d = startDaemon(t, dir)
	waitRoleNamed(t, dir, "mirror", "running", 30*time.Second)
	var res api.RoleState
	cliJSON(t, dir, &res, "roles", "disable", "mirror")
	if res.SavedIn == "" {
		t.Fatalf("roles disable --json: %+v", res)
	}
	if roles := fileRoles(t, dir); len(roles) != 0 {
		t.Fatalf("config.yaml roles after disable: %v", roles)
	}
	d.stop()

	startDaemon(t, dir)
	var info api.Info
	cliJSON(t, dir, &info, "id")
	if slices.Contains(info.Roles, "mirror") {
		t.Fatalf("a disabled role came back at restart: %v", info.Roles)
	}
}

// fileRoles is the roles list of a repo's own config.yaml.
func fileRoles(t *testing.T, dir string) []string {
	t.Helper()
	c, err := config.Load(config.Sources{RepoFile: filepath.Join(dir, repo.ConfigFile)})
	if err != nil {
		t.Fatal(err)
	}
	return c.Roles
}
