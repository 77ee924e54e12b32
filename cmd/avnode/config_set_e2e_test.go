package main

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/repo"
)

// config set writes the repo's config.yaml and the running node applies
// what it can at once (a policy script loads), says "at restart" for the
// rest, and a value the config refuses changes nothing.
func TestConfigSetAppliesOrSaysRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "n")
	startDaemon(t, dir)
	script := writeScript(t, "deny.lua", denySpamZones)
	if out := mustCLI(t, dir, "config", "set", "policy.scripts", script); !strings.Contains(out, "applied to the running node") {
		t.Fatalf("config set policy.scripts:\n%s", out)
	}
	var loaded []api.ScriptInfo
	cliJSON(t, dir, &loaded, "policy", "ls")
	if len(loaded) != 1 || loaded[0].Path != script {
		t.Fatalf("policy ls after config set: %+v", loaded)
	}
	if out := mustCLI(t, dir, "config", "set", "connmgr.high", "400"); !strings.Contains(out, "takes effect at restart") {
		t.Fatalf("config set connmgr.high:\n%s", out)
	}
	if got := strings.TrimSpace(mustCLI(t, dir, "config", "get", "connmgr.high")); got != "400" {
		t.Fatalf("config get connmgr.high: %q", got)
	}
	before, _ := os.ReadFile(filepath.Join(dir, repo.ConfigFile))
	r := cli(t, dir, nil, "config", "set", "dht.mode", "sideways")
	after, _ := os.ReadFile(filepath.Join(dir, repo.ConfigFile))
	if r.code != exitBadUsage || !strings.Contains(r.stderr, `"sideways" is not one of`) || string(before) != string(after) {
		t.Fatalf("a refused value: exit %d, %s; file changed: %v", r.code, r.stderr, string(before) != string(after))
	}
	if r := cli(t, dir, nil, "config", "set", "dht.mdoe", "client"); r.code != exitBadUsage || !strings.Contains(r.stderr, `did you mean "dht.mode"`) {
		t.Fatalf("a typo in the key: exit %d, %s", r.code, r.stderr)
	}

	// Roles added to the config start, and with their section as it says.
	if out := mustCLI(t, dir, "config", "set", "roles", "mirror,receiver"); !strings.Contains(out, "roles started: mirror, receiver") {
		t.Fatalf("config set roles:\n%s", out)
	}
	waitRoleNamed(t, dir, "mirror", "running", 30*time.Second)
	waitRoleNamed(t, dir, "receiver", "running", 30*time.Second)
	// A changed role_config restarts its role, which takes the new section.
	if out := mustCLI(t, dir, "config", "set", "role_config.mirror.names", "[einstein.avtr]"); !strings.Contains(out, "roles restarted with it: mirror") {
		t.Fatalf("config set role_config.mirror.names:\n%s", out)
	}
	waitRoleNamed(t, dir, "mirror", "running", 30*time.Second)
	eventually(t, 30*time.Second, "the restarted mirror follows the name", func() error {
		if out := cli(t, dir, nil, "mirror", "ls"); !strings.Contains(out.stdout, "einstein.avtr") {
			return fmt.Errorf("mirror ls: %s %s", out.stdout, out.stderr)
		}
		return nil
	})
	// A changed gateway.listen restarts the gateway's role there (port 0:
	// any), off the default 8080 the node started with.
	if out := mustCLI(t, dir, "config", "set", "gateway.listen", "127.0.0.1:0"); !strings.Contains(out, "roles restarted with it: receiver") {
		t.Fatalf("config set gateway.listen:\n%s", out)
	}
	eventually(t, 30*time.Second, "the receiver serves at its new address", func() error {
		var info api.Info
		cliJSON(t, dir, &info, "id")
		u, err := url.Parse(info.Gateway)
		if port, _ := strconv.Atoi(u.Port()); err != nil || port == 0 || port >= 8080 && port <= 8096 {
			return fmt.Errorf("the receiver serves at %q after config set gateway.listen 127.0.0.1:0", info.Gateway)
		}
		return nil
	})
	// A role taken out of the config stops.
	if out := mustCLI(t, dir, "config", "set", "roles", "mirror"); !strings.Contains(out, "roles stopped: receiver") {
		t.Fatalf("config set roles mirror:\n%s", out)
	}
	var roles []api.RoleStatus
	cliJSON(t, dir, &roles, "roles")
	for _, r := range roles {
		if r.Name == "receiver" && r.State != "disabled" {
			t.Fatalf("the receiver after it left roles: %+v", r)
		}
	}
}
