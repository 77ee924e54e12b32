package main

import (
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
	if out := mustCLI(t, dir, "config", "set", "gateway.listen", "127.0.0.1:0"); !strings.Contains(out, "takes effect at restart") {
		t.Fatalf("config set gateway.listen:\n%s", out)
	}
	if got := strings.TrimSpace(mustCLI(t, dir, "config", "get", "gateway.listen")); got != "127.0.0.1:0" {
		t.Fatalf("config get gateway.listen: %q", got)
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

	// A role enabled at run time takes its role_config as the file says now.
	if out := mustCLI(t, dir, "config", "set", "role_config.mirror.names", "[einstein.avtr]"); !strings.Contains(out, "avnode roles enable mirror") {
		t.Fatalf("config set role_config.mirror.names:\n%s", out)
	}
	mustCLI(t, dir, "roles", "enable", "mirror")
	waitRoleNamed(t, dir, "mirror", "running", 30*time.Second)
	if out := mustCLI(t, dir, "mirror", "ls"); !strings.Contains(out, "einstein.avtr") {
		t.Fatalf("mirror ls after enabling with role_config set at run time:\n%s", out)
	}
	// A role that starts reads the node's config as the file says now: the
	// receiver listens where gateway.listen was set above (port 0: any),
	// not on the default 8080 the node started with.
	mustCLI(t, dir, "roles", "enable", "receiver")
	waitRoleNamed(t, dir, "receiver", "running", 30*time.Second)
	var info api.Info
	cliJSON(t, dir, &info, "id")
	u, err := url.Parse(info.Gateway)
	if port, _ := strconv.Atoi(u.Port()); err != nil || port >= 8080 && port <= 8096 {
		t.Fatalf("the receiver enabled after config set gateway.listen 127.0.0.1:0 serves at %q", info.Gateway)
	}
}
