package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	llsyscall "github.com/landlock-lsm/go-landlock/landlock/syscall"

	"github.com/avnode/avnode/core/api"
)

var (
	evilOnce sync.Once
	evilBin  string
	evilErr  error
)

// evilPluginDir returns a fresh plugin folder holding avnode-evil, a role
// that asks for nothing and tries everything (plugins/testdata/avnode-evil).
func evilPluginDir(t testing.TB) string {
	t.Helper()
	evilOnce.Do(func() {
		dir, err := os.MkdirTemp("", "avnode-evil-")
		if err != nil {
			evilErr = err
			return
		}
		evilBin = filepath.Join(dir, "avnode-evil")
		out, err := exec.Command("go", append(append([]string{"build"}, buildFlags...), "-o", evilBin, "../../plugins/testdata/avnode-evil")...).CombinedOutput()
		if err != nil {
			evilErr = fmt.Errorf("build the hostile role: %v\n%s", err, out)
		}
	})
	if evilErr != nil {
		t.Fatal(evilErr)
	}
	dir := t.TempDir()
	data, _ := os.ReadFile(evilBin)
	if err := os.WriteFile(filepath.Join(dir, "avnode-evil"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// evilOutcome is what the node answered the hostile role's try.
type evilOutcome struct {
	OK    bool
	Code  string
	Error string
}

func evilTry(t testing.TB, repo string, args ...string) evilOutcome {
	t.Helper()
	var out evilOutcome
	cliJSON(t, repo, &out, append([]string{"roles", "call", "evil", "try"}, args...)...)
	return out
}

// A role that asked for nothing and was granted nothing, installed next to
// the node and enabled, tries what a hostile third party would. Every try is
// refused with PermissionDenied naming the grant; the zones, names and pins
// it aimed at are unchanged; the refusals are counted. Granted
// zone.write:alice.avtr, it may change alice.avtr and still not bob.avtr.
func TestHostilePluginGetsOnlyWhatIsGranted(t *testing.T) {
	t.Parallel()
	nodes := startNetwork(t, 3)
	metrics := metricsAddr(t)
	owner := startDaemonWithEnv(t, filepath.Join(t.TempDir(), "owner"), []string{"OPERATOR_SECRET_TOKEN=hunter2"}, append(lowWork, "--bootstrap", nodes[0].addr,
		"--plugins.dirs", evilPluginDir(t), "--roles", "evil", "--metrics.listen", metrics)...)
	mustCLI(t, owner.repo, "key", "gen", "alice")
	mustCLI(t, owner.repo, "key", "gen", "bob")
	mustCLI(t, owner.repo, "name", "claim", "alice.avtr", "--key", "alice")
	mustCLI(t, owner.repo, "name", "claim", "bob.avtr", "--key", "bob")
	var pub api.PublishResult
	cliJSON(t, owner.repo, &pub, "publish", writeSite(t), "--name", "alice.avtr")
	var before api.Resolution
	cliJSON(t, owner.repo, &before, "resolve", "alice.avtr")
	st := waitRoleNamed(t, owner.repo, "evil", "running", 30*time.Second)
	if len(st.MissingGrants) != 0 {
		t.Fatalf("evil asked for nothing, yet roles says it misses %v", st.MissingGrants)
	}

	attacks := [][]string{
		{"resolve", "alice.avtr"},
		{"set-txt", "alice.avtr", "evil=1"},
		{"set-txt", "an://alice:avtr", "evil=1"},
		{"add-sat", "alice.avtr", nodes[2].peerID},
		{"claim", "stolen.avtr", "bob"},
		{"unpin", pub.Root},
		{"pin", pub.Root},
		{"fetch", "/cid/" + pub.Root},
		{"config", "identity"},
		{"put-record", "/avtr-zone/alice.avtr", "junk"},
		{"publish", "avtr/name/alice.avtr"},
		{"subscribe"},
		{"call-role", "evil", "hang"},
		{"decide", "mirror"},
		{"relay"},
		{"service"},
	}
	for _, a := range attacks {
		out := evilTry(t, owner.repo, a...)
		if out.OK || out.Code != "PermissionDenied" || !strings.Contains(out.Error, "avnode plugins grant evil") {
			t.Errorf("evil %v: %+v; want PermissionDenied naming the grant to give", a, out)
		}
	}

	checkConfined(t, owner.repo, st)

	var after api.Resolution
	cliJSON(t, owner.repo, &after, "resolve", "alice.avtr")
	if after.Seq != before.Seq || len(after.Records) != len(before.Records) || after.Root != pub.Root {
		t.Errorf("alice.avtr changed under attack: seq %d→%d, %d→%d records", before.Seq, after.Seq, len(before.Records), len(after.Records))
	}
	if r := cli(t, owner.repo, nil, "resolve", "stolen.avtr"); r.code == 0 {
		t.Errorf("stolen.avtr resolves after the denied claim:\n%s", r.stdout)
	}
	var gc api.GCResult
	cliJSON(t, owner.repo, &gc, "repo", "gc")
	if gc.Removed != 0 {
		t.Errorf("gc after the denied unpin removed %d blocks; the published site should stay pinned", gc.Removed)
	}
	if denied := metricSum(scrapeMetrics(t, metrics), "avnode_plugin_denied_total", `role="evil"`); denied < float64(len(attacks)) {
		t.Errorf("avnode_plugin_denied_total{role=evil} = %v; want at least %d", denied, len(attacks))
	}

	// Granted one name, it writes that zone, under any spelling, and no other.
	var g api.Grants
	cliJSON(t, owner.repo, &g, "plugins", "grant", "evil", "zone.write:alice.avtr")
	if out := evilTry(t, owner.repo, "set-txt", "an://alice:avtr", "granted=1"); !out.OK {
		t.Fatalf("with zone.write:alice.avtr granted, set-txt alice.avtr: %+v", out)
	}
	if out := evilTry(t, owner.repo, "set-txt", "bob.avtr", "evil=1"); out.Code != "PermissionDenied" {
		t.Errorf("with only alice.avtr granted, set-txt bob.avtr: %+v", out)
	}
	var changed api.Resolution
	cliJSON(t, owner.repo, &changed, "resolve", "alice.avtr")
	if !hasRecord(changed, "TXT", "granted=1") {
		t.Errorf("the granted change is not in alice.avtr's zone: %+v", changed.Records)
	}

	// A revoke applies at once, and the grants outlive the daemon.
	cliJSON(t, owner.repo, &g, "plugins", "revoke", "evil", "zone.write:alice.avtr")
	if out := evilTry(t, owner.repo, "set-txt", "alice.avtr", "again=1"); out.Code != "PermissionDenied" {
		t.Errorf("after revoke, set-txt alice.avtr: %+v", out)
	}
	cliJSON(t, owner.repo, &g, "plugins", "grant", "evil", "content.fetch")
	owner.stop()
	owner = startDaemon(t, owner.repo, append(lowWork, "--bootstrap", nodes[0].addr, "--plugins.dirs", evilPluginDir(t), "--roles", "evil")...)
	waitRoleNamed(t, owner.repo, "evil", "running", 30*time.Second)
	var d api.PluginDescription
	cliJSON(t, owner.repo, &d, "plugins", "describe", "evil")
	if strings.Join(d.Granted, ",") != "content.fetch" {
		t.Errorf("after a restart, evil holds %v; want the grant made before it, content.fetch", d.Granted)
	}
}

// checkConfined has the running hostile role go for the repo's secrets,
// other roles' data and the control API: in its sandbox it reaches only
// its own data folder, and it cannot signal the node.
func checkConfined(t *testing.T, repo string, st api.RoleStatus) {
	t.Helper()
	other := filepath.Join(repo, "roles", "other")
	if err := os.MkdirAll(other, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "secret"), []byte("another role's"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := evilTry(t, repo, "api", "/v1/id"); out.OK || !strings.Contains(out.Error, "403") {
		t.Errorf("evil called the control API: %+v; want 403 for a call without the token", out)
	}
	if out := evilTry(t, repo, "env", "OPERATOR_SECRET_TOKEN"); !out.OK {
		t.Errorf("the node's environment reached the plugin: %+v", out)
	}
	if out := evilTry(t, repo, "write", "roles/evil/state"); !out.OK {
		t.Fatalf("evil cannot write its own data folder: %+v", out)
	}
	if abi, err := llsyscall.LandlockGetABIVersion(); err != nil || abi < 1 {
		// Nothing confines files here: the node must say so.
		if !strings.Contains(st.Sandbox, "no Landlock") {
			t.Errorf("this kernel has no Landlock, yet roles says the sandbox is %q", st.Sandbox)
		}
		return
	}
	if !strings.HasPrefix(st.Sandbox, "landlock v") {
		t.Errorf("roles shows sandbox %q; want landlock", st.Sandbox)
	}
	for _, try := range [][]string{
		{"read", "node.key"}, {"read", "keystore/alice.key"}, {"read", "datastore/CURRENT"},
		{"read", "config.yaml"}, {"read", api.TokenFile}, {"read", "roles/other/secret"},
		{"write", "roles/other/planted"}, {"write", "planted"}, {"kill-node"},
	} {
		out := evilTry(t, repo, try...)
		if out.OK || !(strings.Contains(out.Error, "permission denied") || strings.Contains(out.Error, "not permitted")) {
			t.Errorf("evil %v: %+v; want it refused by the sandbox", try, out)
		}
	}
	for _, planted := range []string{"roles/other/planted", "planted"} {
		if _, err := os.Stat(filepath.Join(repo, planted)); err == nil {
			t.Errorf("evil left %s in the repo", planted)
		}
	}
	mustCLI(t, repo, "id") // the node lives on
	var limits struct {
		OpenFiles uint64 `json:"open_files"`
	}
	cliJSON(t, repo, &limits, "roles", "call", "evil", "limits")
	if limits.OpenFiles != 1024 {
		t.Errorf("evil may open %d files; want plugins.sandbox.open_files, 1024", limits.OpenFiles)
	}
}

func hasRecord(res api.Resolution, typ, value string) bool {
	for _, r := range res.Records {
		if r.Type == typ && r.Value == value {
			return true
		}
	}
	return false
}

// waitRoleNamed waits until `avnode roles` shows role in state.
func waitRoleNamed(t testing.TB, repo, role, state string, within time.Duration) api.RoleStatus {
	t.Helper()
	var st api.RoleStatus
	eventually(t, within, "role "+role+" "+state, func() error {
		var roles []api.RoleStatus
		cliJSON(t, repo, &roles, "roles")
		for _, r := range roles {
			if r.Name == role {
				st = r
				if r.State == state {
					return nil
				}
			}
		}
		return fmt.Errorf("roles: %+v", roles)
	})
	return st
}

// A role flooding its stderr costs the node at most its log budget: the
// lines past it are dropped and counted, and the node keeps answering. A
// command that never returns ends, for the operator, with a timeout error
// at plugins.limits.call_timeout, while the node answers meanwhile.
func TestHostilePluginFloodAndHang(t *testing.T) {
	metrics := metricsAddr(t)
	d := startDaemon(t, filepath.Join(t.TempDir(), "n"), "--plugins.dirs", evilPluginDir(t), "--roles", "evil",
		"--metrics.listen", metrics, "--plugins.limits.call_timeout", "3s",
		"--plugins.limits.log_lines_per_second", "50", "--plugins.limits.log_burst", "500")
	waitRoleNamed(t, d.repo, "evil", "running", 30*time.Second)

	const lines = 20000
	start := time.Now()
	mustCLI(t, d.repo, "roles", "call", "evil", "spam", fmt.Sprint(lines))
	var dropped float64
	var kept int
	eventually(t, 60*time.Second, "the whole flood logged or counted", func() error {
		dropped = metricSum(scrapeMetrics(t, metrics), "avnode_plugin_log_dropped_total", `role="evil"`)
		kept = strings.Count(d.log.String(), "spam-line")
		if int(dropped)+kept < lines {
			return fmt.Errorf("kept %d, dropped %v of %d", kept, dropped, lines)
		}
		return nil
	})
	mustCLI(t, d.repo, "id")
	// The budget: the burst, plus the rate over the time the flood took.
	budget := 500 + int(50*time.Since(start).Seconds()) + 50
	if kept > budget || kept == 0 {
		t.Errorf("the node logged %d of %d flooded lines; want some, at most %d (burst 500 + 50/s)", kept, lines, budget)
	}

	hung := make(chan result, 1)
	go func() { hung <- cli(t, d.repo, nil, "roles", "call", "evil", "hang") }()
	mustCLI(t, d.repo, "id") // the node answers while the call hangs
	// The CLI harness kills a command at 30 s; this one ends before, with
	// the node's own error.
	if r := <-hung; r.code == 0 || !strings.Contains(r.stderr, "did not answer within 3s") || !strings.Contains(r.stderr, "plugins.limits.call_timeout") {
		t.Fatalf("roles call evil hang: exit %d\n%s", r.code, r.stderr)
	}
}
