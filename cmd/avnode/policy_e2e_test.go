package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/config"
	"github.com/avnode/avnode/core/repo"
)

// writeScript writes a Lua policy script into a fresh folder.
func writeScript(t testing.TB, name, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const denySpamZones = `
return {
  store_record = function(r)
    if r.type == "zone" and string.find(r.name, "^spam") then
      return {allow = false, reason = "no spam names here"}
    end
    return nil
  end,
}`

// Nodes that store records enforce their record policy: with the owner
// gone, a refused name cannot be resolved while an allowed one can.
func TestRecordPolicyEnforcedByStoringNodes(t *testing.T) {
	t.Parallel()
	script := writeScript(t, "deny-spam.lua", denySpamZones)
	nodes := startNetwork(t, 5, "--policy.scripts="+script, "--names.resolve_timeout=3s")
	owner, reader := nodes[2], nodes[4]
	mustCLI(t, owner.repo, "key", "gen", "k")
	mustCLI(t, owner.repo, "name", "claim", "spam-offer.avtr", "--key", "k")
	mustCLI(t, owner.repo, "name", "claim", "fine.avtr", "--key", "k")
	owner.stop()

	if r := cli(t, reader.repo, nil, "resolve", "fine.avtr"); r.code != 0 {
		t.Fatalf("an allowed name does not resolve with its owner gone: %s", r.stderr)
	}
	if r := cli(t, reader.repo, nil, "resolve", "spam-offer.avtr"); r.code == 0 {
		t.Fatalf("a name the storing nodes refuse resolved:\n%s", r.stdout)
	}
	refusals := 0
	for _, n := range nodes {
		if strings.Contains(n.log.String(), "record refused by store policy") {
			refusals++
		}
	}
	if refusals == 0 {
		t.Fatal("no node logged a refusal")
	}
}

// A routing policy that prefers a peer changes which source a fetch uses.
func TestRoutingPolicyChoosesFetchSource(t *testing.T) {
	t.Parallel()
	nodes := startNetwork(t, 4)
	owner, mirror := nodes[1], nodes[2]
	mustCLI(t, owner.repo, "key", "gen", "k")
	mustCLI(t, owner.repo, "name", "claim", "routed.avtr", "--key", "k")
	mustCLI(t, owner.repo, "publish", writeSite(t), "--name", "routed.avtr")
	mustCLI(t, mirror.repo, "get", "routed.avtr", "-o", filepath.Join(t.TempDir(), "copy"))

	// The script takes no side when it sees a peer twice (the owner is both
	// the zone's HOST and a DHT provider): each candidate must come once.
	prefer := writeScript(t, "prefer.lua", fmt.Sprintf(`
return {
  order_providers = function(c)
    local seen = {}
    for _, p in ipairs(c.candidates) do
      if seen[p.peer] then return nil end
      seen[p.peer] = true
    end
    return {order = {%q}, reason = "the mirror is closer"}
  end,
}`, mirror.peerID))
	common := append(lowWork, "--bootstrap", nodes[0].addr, "--content.fetch_sources=1")
	plain := startDaemon(t, filepath.Join(t.TempDir(), "plain"), common...)
	steered := startDaemon(t, filepath.Join(t.TempDir(), "steered"), append(common, "--policy.scripts="+prefer)...)

	// Without a policy the zone's host comes first; with it, the mirror.
	// The mirror must first be found as a provider: retry, dropping what
	// was fetched so the next get fetches again.
	sourceOf := func(d *proc) string {
		var got api.GetResult
		cliJSON(t, d.repo, &got, "get", "routed.avtr/index.html")
		mustCLI(t, d.repo, "repo", "gc")
		for s := range got.Stats.Sources {
			return s
		}
		return ""
	}
	if s := sourceOf(plain); s != owner.peerID {
		t.Fatalf("without a policy the fetch used %s, want the host %s", s, owner.peerID)
	}
	eventually(t, 30*time.Second, "the fetch uses the preferred mirror", func() error {
		if s := sourceOf(steered); s != mirror.peerID {
			return fmt.Errorf("fetched from %s, want the mirror %s", s, mirror.peerID)
		}
		return nil
	})
}

// Hostile scripts leave the node running and answering: a loop that never
// ends takes its fallback within the budget; a memory bomb kills only the
// policy process, which is restarted.
func TestHostileScriptsLeaveTheNodeRunning(t *testing.T) {
	t.Parallel()
	hostile := writeScript(t, "hostile.lua", `
return {
  store_record = function(r)
    if r.name == "loop.avtr" then while true do end end
    local t = {}
    t[67108863] = 1
    return {allow = true}
  end,
}`)
	nodes := startNetwork(t, 4, "--policy.scripts="+hostile)
	owner := nodes[1]
	mustCLI(t, owner.repo, "key", "gen", "k")
	// Every peer's store_record blows up on the claim and zone it is sent.
	mustCLI(t, owner.repo, "name", "claim", "bomb.avtr", "--key", "k")
	mustCLI(t, owner.repo, "name", "claim", "loop.avtr", "--key", "k")
	for _, n := range nodes {
		mustCLI(t, n.repo, "id")
		var scripts []api.ScriptInfo
		cliJSON(t, n.repo, &scripts, "policy", "ls")
		if len(scripts) != 1 {
			t.Fatalf("policy ls on %s: %+v", n.repo, scripts)
		}
	}
	if !strings.Contains(nodes[0].log.String()+nodes[2].log.String()+nodes[3].log.String(), "record refused by store policy") {
		t.Fatalf("the hooks did not fail closed:\n%s", nodes[0].log)
	}
}

// Reload swaps in a good script and keeps out a broken one, by command and
// by file change.
func TestPolicyReload(t *testing.T) {
	t.Parallel()
	path := writeScript(t, "p.lua", `return { mirror = function(n) return {allow = true, reason = "v1"} end }`)
	d := startDaemon(t, filepath.Join(t.TempDir(), "n"), "--policy.scripts="+path, "--policy.watch_interval=200ms")
	shaOf := func() string {
		var scripts []api.ScriptInfo
		cliJSON(t, d.repo, &scripts, "policy", "ls")
		if len(scripts) != 1 {
			t.Fatalf("policy ls: %+v", scripts)
		}
		return scripts[0].SHA256
	}
	first := shaOf()
	os.WriteFile(path, []byte(`return { mirror = function(n) return {allow = false, reason = "v2"} end }`), 0o644)
	eventually(t, 10*time.Second, "the edited script is loaded", func() error {
		if shaOf() == first {
			return fmt.Errorf("still the first script")
		}
		return nil
	})
	second := shaOf()
	os.WriteFile(path, []byte(`return { mirror = function(n) return {allow = ` /* broken */), 0o644)
	r := cli(t, d.repo, nil, "policy", "reload")
	if r.code == 0 || !strings.Contains(r.stderr, "p.lua") {
		t.Fatalf("reload of a broken script: code %d, %s", r.code, r.stderr)
	}
	time.Sleep(time.Second) // the watcher sees the broken file too, and must keep it out
	if shaOf() != second {
		t.Fatal("a broken script replaced the working one")
	}
}

// policy check and policy test work on a script without any node.
func TestPolicyCheckAndTestCommands(t *testing.T) {
	t.Parallel()
	script := writeScript(t, "deny.lua", denySpamZones)
	r := cli(t, t.TempDir(), nil, "policy", "check", script)
	if r.code != 0 || !strings.Contains(r.stdout, "store_record") {
		t.Fatalf("policy check: %d %s %s", r.code, r.stdout, r.stderr)
	}
	broken := writeScript(t, "broken.lua", "return {")
	if r := cli(t, t.TempDir(), nil, "policy", "check", broken); r.code != 1 || !strings.Contains(r.stderr, "broken.lua") {
		t.Fatalf("policy check of a broken script: %d %s", r.code, r.stderr)
	}
	typo := writeScript(t, "typo.lua", "x = = 1\n")
	if r := cli(t, t.TempDir(), nil, "policy", "check", typo); r.code != 1 || !strings.Contains(r.stderr, `typo.lua:1: syntax error: unexpected "="`) ||
		strings.Count(r.stderr, "syntax error") != 1 {
		t.Fatalf("policy check of a typo: %d %s", r.code, r.stderr)
	}
	fixtures := t.TempDir()
	os.WriteFile(filepath.Join(fixtures, "spam.json"), []byte(`{"hook":"store_record","input":{"type":"zone","name":"spam.avtr"},"expect":"deny"}`), 0o644)
	os.WriteFile(filepath.Join(fixtures, "fine.json"), []byte(`{"hook":"store_record","input":{"type":"zone","name":"fine.avtr"},"expect":"none"}`), 0o644)
	if r := cli(t, t.TempDir(), nil, "policy", "test", script, "--fixtures", fixtures); r.code != 0 || !strings.Contains(r.stdout, "spam.json") ||
		!strings.Contains(r.stdout, "2 passed, 0 failed, of 2 fixtures") {
		t.Fatalf("policy test: %d %s %s", r.code, r.stdout, r.stderr)
	}
	os.WriteFile(filepath.Join(fixtures, "wrong.json"), []byte(`{"hook":"store_record","input":{"type":"zone","name":"spam2.avtr"},"expect":"allow"}`), 0o644)
	if r := cli(t, t.TempDir(), nil, "policy", "test", script, "--fixtures", fixtures); r.code != 1 || !strings.Contains(r.stdout, "FAIL") ||
		!strings.Contains(r.stdout, "2 passed, 1 failed, of 3 fixtures") {
		t.Fatalf("policy test with a failing fixture: %d %s %s", r.code, r.stdout, r.stderr)
	}
}

// A script added to the repo's config.yaml while the node runs is loaded
// by `policy reload`; with none configured, reload says where to list them
// and fails, instead of printing "no policy scripts" and exiting 0.
func TestPolicyReloadReadsTheConfigAgain(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "n")
	startDaemon(t, dir)
	configFile := filepath.Join(dir, repo.ConfigFile)
	if r := cli(t, dir, nil, "policy", "reload"); r.code != exitFailure || !strings.Contains(r.stderr, "list them in policy.scripts ("+configFile+")") {
		t.Fatalf("reload with no scripts: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	script := writeScript(t, "deny.lua", denySpamZones)
	if err := config.SetInFile(configFile, map[string]any{"policy.scripts": []string{script}}); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, dir, "policy", "reload")
	var loaded []api.ScriptInfo
	cliJSON(t, dir, &loaded, "policy", "ls")
	if len(loaded) != 1 || loaded[0].Path != script || !slices.Contains(loaded[0].Hooks, "store_record") {
		t.Fatalf("policy ls after adding a script and reloading: %+v", loaded)
	}
}
