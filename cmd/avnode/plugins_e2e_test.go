package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/avnode/avnode/core/api"
)

var (
	testRoleOnce sync.Once
	testRoleBin  string
	testRoleErr  error
)

// pluginDir returns a fresh plugin folder holding the test role plugin,
// built once per test binary from plugins/testdata/avnode-testrole.
func pluginDir(t testing.TB) string {
	t.Helper()
	testRoleOnce.Do(func() {
		dir, err := os.MkdirTemp("", "avnode-testrole-")
		if err != nil {
			testRoleErr = err
			return
		}
		testRoleBin = filepath.Join(dir, "avnode-testrole")
		out, err := exec.Command("go", append(append([]string{"build"}, buildFlags...), "-o", testRoleBin, "../../plugins/testdata/avnode-testrole")...).CombinedOutput()
		if err != nil {
			testRoleErr = fmt.Errorf("build test role: %v\n%s", err, out)
		}
	})
	if testRoleErr != nil {
		t.Fatal(testRoleErr)
	}
	dir := t.TempDir()
	data, _ := os.ReadFile(testRoleBin)
	if err := os.WriteFile(filepath.Join(dir, "avnode-testrole"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// testRoleAsks is what avnode-testrole's describe asks for.
var testRoleAsks = []string{"names.resolve", "content.fetch", "content.pin", "streams:*", "pubsub:*", "events:*", "policy.decide:*"}

// roleConfigFile writes a node config (JSON, which is YAML) holding the test
// role's settings and, merged in, the top-level keys of extra.
func roleConfigFile(t testing.TB, role map[string]any, extra string) string {
	t.Helper()
	doc := map[string]any{}
	if extra != "" {
		if err := json.Unmarshal([]byte(extra), &doc); err != nil {
			t.Fatal(err)
		}
	}
	doc["role_config"] = map[string]any{"testrole": role}
	// The test role is a third party's: it holds what the test grants it,
	// by default what it asks for.
	plugins, _ := doc["plugins"].(map[string]any)
	if plugins == nil {
		plugins = map[string]any{}
		doc["plugins"] = plugins
	}
	if _, set := plugins["grants"]; !set {
		plugins["grants"] = map[string]any{"testrole": testRoleAsks}
	}
	body, _ := json.Marshal(doc)
	path := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// testRoleReport is where the test role writes its report: in its own data
// folder, the only one its sandbox lets it write.
func testRoleReport(repo string) string {
	return filepath.Join(repo, "roles", "testrole", "report.json")
}

func roleStatus(t testing.TB, repo string) api.RoleStatus {
	t.Helper()
	var roles []api.RoleStatus
	cliJSON(t, repo, &roles, "roles")
	for _, r := range roles {
		if r.Name == "testrole" {
			return r
		}
	}
	return api.RoleStatus{}
}

func waitRole(t testing.TB, repo, state string, within time.Duration) api.RoleStatus {
	t.Helper()
	var st api.RoleStatus
	eventually(t, within, "role "+state, func() error {
		st = roleStatus(t, repo)
		if st.State != state {
			return fmt.Errorf("role is %+v", st)
		}
		return nil
	})
	return st
}

// A plugin started by the node calls back through the host API: it resolves
// a name and fetches and pins content, across real processes.
func TestPluginUsesHostAPI(t *testing.T) {
	t.Parallel()
	nodes := startNetwork(t, 4)
	owner := nodes[1]
	mustCLI(t, owner.repo, "key", "gen", "k")
	mustCLI(t, owner.repo, "name", "claim", "plugged.avtr", "--key", "k")
	var pub api.PublishResult
	cliJSON(t, owner.repo, &pub, "publish", writeSite(t), "--name", "plugged.avtr")

	repo := filepath.Join(t.TempDir(), "p")
	report := testRoleReport(repo)
	cfg := roleConfigFile(t, map[string]any{"report": report, "resolve": "plugged.avtr", "fetch": pub.Root}, "")
	d := startDaemon(t, repo, append(lowWork, "--bootstrap", nodes[0].addr,
		"--plugins.dirs", pluginDir(t), "--roles", "testrole", "--config", cfg)...)
	st := waitRole(t, d.repo, "running", 30*time.Second)
	if st.PID == 0 || st.Version != "0.0.1" {
		t.Fatalf("roles: %+v", st)
	}
	var rep struct {
		PID                int
		Key, Pinned, Error string
	}
	eventually(t, 30*time.Second, "plugin report", func() error {
		data, err := os.ReadFile(report)
		if err != nil {
			return err
		}
		return json.Unmarshal(data, &rep)
	})
	var res struct{ Key string }
	cliJSON(t, owner.repo, &res, "resolve", "plugged.avtr")
	if rep.Error != "" || rep.Key != res.Key || rep.Pinned != pub.Root || rep.PID != st.PID {
		t.Fatalf("plugin saw %+v; want key %s, pinned %s, pid %d", rep, res.Key, pub.Root, st.PID)
	}
	// The pin made through the host API protects the content from gc.
	var gc struct{ Removed, Kept int }
	cliJSON(t, d.repo, &gc, "repo", "gc")
	if gc.Removed != 0 || gc.Kept == 0 {
		t.Fatalf("gc after the plugin pinned: %+v", gc)
	}
	if !strings.Contains(d.log.String(), "testrole started") {
		t.Fatalf("the plugin's log did not reach the node's log:\n%s", d.log)
	}
}

// kill -9 of the plugin, 20 times: each time it is restarted, and the node
// answers meanwhile.
func TestPluginRestartedAfterKill(t *testing.T) {
	t.Parallel()
	cfg := roleConfigFile(t, map[string]any{}, `{"plugins": {"max_restarts_per_minute": 100}}`)
	d := startDaemon(t, filepath.Join(t.TempDir(), "n"), "--plugins.dirs", pluginDir(t), "--roles", "testrole", "--config", cfg)
	st := waitRole(t, d.repo, "running", 30*time.Second)
	for i := 0; i < 20; i++ {
		if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v", st.PID, err)
		}
		mustCLI(t, d.repo, "id") // the node keeps answering
		old := st.PID
		eventually(t, 20*time.Second, "restarted", func() error {
			st = roleStatus(t, d.repo)
			if st.State != "running" || st.PID == old || st.PID == 0 {
				return fmt.Errorf("role %+v", st)
			}
			return nil
		})
	}
	if st.Restarts < 20 {
		t.Fatalf("restarts counted: %d", st.Restarts)
	}
}

// A binary whose checksum differs from the pinned one is refused and never runs.
func TestPluginChecksumPinRefusesChangedBinary(t *testing.T) {
	dir := pluginDir(t)
	bin := filepath.Join(dir, "avnode-testrole")
	data, _ := os.ReadFile(bin)
	sum := sha256.Sum256(data)
	data[len(data)-1] ^= 1 // one byte changed after the checksum was pinned
	os.WriteFile(bin, data, 0o755)
	repo := filepath.Join(t.TempDir(), "n")
	report := testRoleReport(repo)
	cfg := roleConfigFile(t, map[string]any{"report": report},
		fmt.Sprintf(`{"plugins": {"checksums": {"testrole": %q}}}`, hex.EncodeToString(sum[:])))
	d := startDaemon(t, repo, "--plugins.dirs", dir, "--roles", "testrole", "--config", cfg)
	st := waitRole(t, d.repo, "failed", 20*time.Second)
	if !strings.Contains(st.LastError, "sha256") || st.Restarts != 0 {
		t.Fatalf("failed role: %+v", st)
	}
	if _, err := os.Stat(report); err == nil {
		t.Fatal("the refused plugin ran")
	}
	mustCLI(t, d.repo, "id")
}

// kill -9 of the node leaves no plugin process behind.
func TestNoPluginOutlivesTheNode(t *testing.T) {
	cfg := roleConfigFile(t, map[string]any{}, "")
	d := startDaemon(t, filepath.Join(t.TempDir(), "n"), "--plugins.dirs", pluginDir(t), "--roles", "testrole", "--config", cfg)
	st := waitRole(t, d.repo, "running", 30*time.Second)
	d.kill()
	eventually(t, 5*time.Second, "plugin gone", func() error {
		if err := syscall.Kill(st.PID, 0); err == nil {
			if state, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", st.PID)); strings.Contains(string(state), ") Z ") {
				return nil // a zombie has exited; only its parent's wait is missing
			}
			return fmt.Errorf("plugin %d still running", st.PID)
		}
		return nil
	})
}

// A plugin that crashes at start backs off and ends failed; one speaking
// another protocol version is refused with a clear message.
func TestPluginThatCannotStart(t *testing.T) {
	t.Parallel()
	t.Run("crashes at start", func(t *testing.T) {
		cfg := roleConfigFile(t, map[string]any{"crash_at_start": true}, "")
		d := startDaemon(t, filepath.Join(t.TempDir(), "n"), "--plugins.dirs", pluginDir(t), "--roles", "testrole", "--config", cfg)
		st := waitRole(t, d.repo, "failed", 60*time.Second)
		if st.Restarts < 4 || !strings.Contains(st.LastError, "in a row") {
			t.Fatalf("failed role: %+v", st)
		}
		mustCLI(t, d.repo, "id")
	})
	t.Run("wrong protocol version", func(t *testing.T) {
		cfg := roleConfigFile(t, map[string]any{}, "")
		d := startDaemonWithEnv(t, filepath.Join(t.TempDir(), "n"), []string{"TESTROLE_PROTOCOL_VERSION=99"},
			"--plugins.dirs", pluginDir(t), "--roles", "testrole", "--config", cfg)
		st := waitRole(t, d.repo, "failed", 30*time.Second)
		if !strings.Contains(st.LastError, "protocol version") || st.Restarts != 0 {
			t.Fatalf("failed role: %+v", st)
		}
	})
}

// A role that is enabled but not installed shows so; the node runs on.
func TestRoleNotInstalled(t *testing.T) {
	d := startDaemon(t, filepath.Join(t.TempDir(), "n"), "--plugins.dirs", t.TempDir(), "--roles", "mirror")
	var roles []api.RoleStatus
	eventually(t, 10*time.Second, "not installed", func() error {
		cliJSON(t, d.repo, &roles, "roles")
		if len(roles) != 1 || roles[0].State != "not installed" {
			return fmt.Errorf("roles %+v", roles)
		}
		return nil
	})
}

// Two plugins on two nodes talk over a libp2p protocol they handle, over a
// pub/sub topic, and one sees the records its node stores.
func TestPluginStreamsTopicsAndEvents(t *testing.T) {
	t.Parallel()
	nodes := startNetwork(t, 3)
	const proto, topic = "/avtr/x/echo/1.0.0", "testrole-chat"
	repoA, repoB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	repA, repB := testRoleReport(repoA), testRoleReport(repoB)
	cfgA := roleConfigFile(t, map[string]any{"report": repA, "echo_protocol": proto,
		"topic": topic, "publish": "from-a", "events": "record.stored"}, "")
	a := startDaemon(t, repoA, append(lowWork, "--bootstrap", nodes[0].addr,
		"--plugins.dirs", pluginDir(t), "--roles", "testrole", "--config", cfgA)...)
	cfgB := roleConfigFile(t, map[string]any{"report": repB, "echo_protocol": proto,
		"dial_peer": a.peerID, "dial_message": "hi", "topic": topic, "publish": "from-b"}, "")
	b := startDaemon(t, repoB, append(lowWork, "--bootstrap", nodes[0].addr,
		"--plugins.dirs", pluginDir(t), "--roles", "testrole", "--config", cfgB)...)

	type report struct {
		Echoed, Error            string
		Served, Messages, Events []string
	}
	read := func(path string) report {
		var r report
		data, _ := os.ReadFile(path)
		json.Unmarshal(data, &r)
		return r
	}
	eventually(t, 60*time.Second, "echo over the plugins' protocol and messages both ways", func() error {
		ra, rb := read(repA), read(repB)
		switch {
		case ra.Error != "" || rb.Error != "":
			t.Fatalf("plugin errors: a: %s b: %s", ra.Error, rb.Error)
		case rb.Echoed != "echo:hi":
			return fmt.Errorf("b's dial got %q", rb.Echoed)
		case !slices.Contains(ra.Served, b.peerID):
			return fmt.Errorf("a served %v, not b %s", ra.Served, b.peerID)
		case !slices.Contains(ra.Messages, b.peerID+" from-b"):
			return fmt.Errorf("a got messages %v", ra.Messages)
		case !slices.Contains(rb.Messages, a.peerID+" from-a"):
			return fmt.Errorf("b got messages %v", rb.Messages)
		}
		return nil
	})

	// A zone published anywhere is stored on every node of a small network.
	mustCLI(t, b.repo, "key", "gen", "k")
	mustCLI(t, b.repo, "name", "claim", "evented.avtr", "--key", "k")
	eventually(t, 30*time.Second, "record.stored event for the zone", func() error {
		if ev := read(repA).Events; !slices.Contains(ev, "/avtr-zone/evented.avtr") {
			return fmt.Errorf("events: %v", ev)
		}
		return nil
	})
}
