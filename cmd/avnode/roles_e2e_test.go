package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/sdk"
)

type mirrorLine struct {
	Name     string
	Seq      uint64
	Root     string
	Bytes    int64
	LastSync string `json:"last_sync"`
	Sources  []string
	Refused  int
	Error    string
	Added    bool
}

func mirrorOf(t testing.TB, d *proc, name string) mirrorLine {
	t.Helper()
	var list []mirrorLine
	if r := cli(t, d.repo, nil, "mirror", "ls", "--json"); r.code == 0 {
		json.Unmarshal([]byte(r.stdout), &list)
	}
	for _, l := range list {
		if l.Name == name {
			return l
		}
	}
	return mirrorLine{}
}

func waitMirrored(t testing.TB, d *proc, name string, seq uint64, root string, within time.Duration) {
	t.Helper()
	eventually(t, within, "mirror "+d.repo+" has seq "+fmt.Sprint(seq), func() error {
		if l := mirrorOf(t, d, name); l.Seq != seq || l.Root != root {
			return fmt.Errorf("mirror has %+v", l)
		}
		return nil
	})
}

// Beacon A hosts a name; mirrors B and C follow it. C learns a new version
// through pub/sub alone (its re-resolve interval is an hour), B catches up
// when it comes back, forged and rolled-back zones are refused; A stops and
// says so, the mirrors republish at once, and with the DHT's record lifetime
// (20 s here) past, the name still resolves, from the mirrors' puts, and its
// content comes from the mirrors.
func TestBeaconAndMirrorsKeepANameAlive(t *testing.T) {
	t.Parallel()
	const name = "alive.avtr"
	// Resolvers cache zones for 1 s only, so resolves see what the DHT holds.
	common := append(append([]string{}, lowWork...), "--names.zone_ttl=1s", "--dht.record_max_age=20s")
	nodes := startNetwork(t, 4, common...)
	join := append(common, "--bootstrap", nodes[0].addr)

	beaconCfg := writeConfig(t, map[string]any{"role_config": map[string]any{
		"beacon": map[string]any{"names": []map[string]any{{"name": name, "key": "k", "copies": 2}}, "interval": "2s"}}})
	aMetrics := metricsAddr(t)
	a := startDaemon(t, filepath.Join(t.TempDir(), "a"), append(join, "--roles", "beacon", "--config", beaconCfg, "--metrics.listen", aMetrics)...)
	// The beacon reports its status first, then its gauge.
	underReplicated := func(want float64) {
		eventually(t, 10*time.Second, "the beacon's under-replicated gauge", func() error {
			if v := metricSum(scrapeMetrics(t, aMetrics), "avnode_plugin_under_replicated_names", `role="beacon"`); v != want {
				return fmt.Errorf("avnode_plugin_under_replicated_names is %v, want %v", v, want)
			}
			return nil
		})
	}
	mustCLI(t, a.repo, "key", "gen", "k")
	eventually(t, 30*time.Second, "the beacon claims the name and lists itself as HOST", func() error {
		var res struct {
			Hosts []struct {
				PeerID string `json:"peer_id"`
			}
		}
		if r := cli(t, a.repo, nil, "resolve", name, "--json"); r.code != 0 {
			return fmt.Errorf("%s", r.stderr)
		} else if json.Unmarshal([]byte(r.stdout), &res); len(res.Hosts) == 0 || res.Hosts[0].PeerID != a.peerID {
			return fmt.Errorf("hosts %+v", res.Hosts)
		}
		return nil
	})
	waitBeaconStatus(t, a, "no mirror yet: under-replicated", func(s beaconStatus) bool {
		return s.Wanted == 2 && s.Copies == 0 && s.UnderReplicated
	})
	underReplicated(1)
	checkDelegation(t, a, nodes[3], name, nodes[2].peerID)
	var v1 api.PublishResult
	cliJSON(t, a.repo, &v1, "publish", writeSite(t), "--name", name)

	mirrorCfg := writeConfig(t, map[string]any{"roles": []string{"mirror"}, "role_config": map[string]any{
		"mirror": map[string]any{"names": []string{name}, "resolve_interval": "1h", "republish_interval": "3s",
			"follow_updates": false}}}) // new versions come by pub/sub only
	b := startDaemon(t, filepath.Join(t.TempDir(), "b"), append(join, "--config", mirrorCfg)...)
	c := startDaemon(t, filepath.Join(t.TempDir(), "c"), append(join, "--config", mirrorCfg)...)
	seq1 := resolvedSeq(t, a, name)
	waitMirrored(t, b, name, seq1, v1.Root, 60*time.Second)
	waitMirrored(t, c, name, seq1, v1.Root, 60*time.Second)
	eventually(t, 30*time.Second, "resolve shows the attested copies and the owner's target", func() error {
		var res struct {
			Copies       []string
			CopiesWanted int `json:"copies_wanted"`
		}
		cliJSON(t, nodes[3].repo, &res, "resolve", name, "--copies")
		if !slices.Contains(res.Copies, b.peerID) || !slices.Contains(res.Copies, c.peerID) || res.CopiesWanted != 2 {
			return fmt.Errorf("copies %v of %d\n%s", res.Copies, res.CopiesWanted, grepLog(b.log.String(), "attest", "mirror"))
		}
		return nil
	})
	var plain map[string]any
	cliJSON(t, nodes[3].repo, &plain, "resolve", name)
	if _, ok := plain["copies"]; ok || plain["copies_wanted"] != float64(2) {
		t.Fatalf("a resolve without --copies searched for copies or lost the target: %v", plain)
	}
	waitBeaconStatus(t, a, "two mirrors: the target is met", func(s beaconStatus) bool {
		return s.Wanted == 2 && s.Copies == 2 && !s.UnderReplicated
	})
	underReplicated(0)
	var oldZone api.RoutingValue
	cliJSON(t, a.repo, &oldZone, "routing", "get", "/avtr-zone/"+name)

	// A new version while B is down: C has it through pub/sub, B on return.
	b.stop()
	site2 := writeSite(t)
	var v2 api.PublishResult
	cliJSON(t, a.repo, &v2, "publish", site2, "--name", name)
	seq2 := resolvedSeq(t, a, name)
	waitMirrored(t, c, name, seq2, v2.Root, 30*time.Second)
	b = startDaemon(t, b.repo, append(join, "--config", mirrorCfg)...)
	waitMirrored(t, b, name, seq2, v2.Root, 60*time.Second)

	// Rolled-back and forged zones on the topic are stopped by the first
	// node's validator they meet, before any role; C keeps seq2. The evil
	// nodes join through C too, so they meet a subscriber at once rather
	// than after the DHT's topic discovery.
	forged := append([]byte{}, oldZone.Value...)
	forged[len(forged)-10] ^= 0xff
	evilJoin := append(append([]string{}, common...), "--bootstrap", nodes[0].addr+","+c.addr)
	for _, zone := range [][]byte{oldZone.Value, forged} {
		msg, _ := json.Marshal(sdk.NameMessage{Kind: sdk.KindZone, Zone: zone})
		cfg := roleConfigFile(t, map[string]any{"topic": sdk.NameTopic(name), "publish": string(msg)}, "")
		startDaemon(t, filepath.Join(t.TempDir(), "evil"), append(evilJoin, "--plugins.dirs", pluginDir(t), "--roles", "testrole", "--config", cfg)...)
	}
	eventually(t, 60*time.Second, "a node refuses the forged zone", func() error {
		for _, d := range append([]*proc{a, b, c}, nodes...) {
			if strings.Contains(d.log.String(), "result=rejected") {
				return nil
			}
		}
		return fmt.Errorf("no refusal logged")
	})
	if l := mirrorOf(t, c, name); l.Refused != 0 || l.Seq != seq2 {
		t.Fatalf("mirror C: %+v", l)
	}

	// The owner goes, saying so: the mirrors take over at once. Then the name
	// still resolves and its content comes from the mirrors.
	a.stop()
	eventually(t, 15*time.Second, "the mirrors hear the beacon leave", func() error {
		for _, m := range []*proc{b, c} {
			if !strings.Contains(m.log.String(), "a host of the name is leaving") {
				return fmt.Errorf("%s did not:\n%s", m.repo, grepLog(m.log.String(), "leaving", "republish"))
			}
		}
		return nil
	})
	reader := nodes[3]
	// Past the DHT's record lifetime, only the mirrors' puts keep the name.
	time.Sleep(25 * time.Second)
	var res struct {
		Seq  uint64
		Root string
	}
	if r := cli(t, reader.repo, nil, "resolve", name); r.code != 0 {
		rb := cli(t, b.repo, nil, "routing", "get", "/avtr-zone/"+name)
		rr := cli(t, reader.repo, nil, "routing", "get", "/avtr-zone/"+name)
		t.Fatalf("resolve after the owner left: %s\nB get: %s %s\nreader get: %s %s\nmirror B:\n%s", r.stderr, rb.stdout[:min(len(rb.stdout), 80)], rb.stderr, rr.stdout[:min(80, len(rr.stdout))], rr.stderr, grepLog(b.log.String(), "republish", "mirrored", "ERROR"))
	}
	cliJSON(t, reader.repo, &res, "resolve", name)
	if res.Seq != seq2 || res.Root != v2.Root {
		t.Fatalf("after the owner left: %+v, want seq %d root %s", res, seq2, v2.Root)
	}
	var got api.GetResult
	cliJSON(t, reader.repo, &got, "get", name, "-o", filepath.Join(t.TempDir(), "out"))
	for src := range got.Stats.Sources {
		if src != b.peerID && src != c.peerID {
			t.Fatalf("content came from %s, not a mirror", src)
		}
	}
	if len(got.Stats.Sources) == 0 {
		t.Fatalf("nothing fetched: %+v", got.Stats)
	}
}

// checkDelegation has the beacon authorize a satellite, a SAT record in
// the zone the owner's key signs, which another node sees; then revoke it.
// Bad delegations are refused with a reason.
func checkDelegation(t testing.TB, beacon, reader *proc, name, satellite string) {
	t.Helper()
	satellites := func() []string {
		var res api.Resolution
		cliJSON(t, reader.repo, &res, "resolve", name)
		return recordValues(res.Records, "SAT")
	}
	mustCLI(t, beacon.repo, "roles", "call", "beacon", "delegate", name, satellite)
	eventually(t, 15*time.Second, "another node sees the delegation", func() error {
		if got := satellites(); !slices.Equal(got, []string{satellite}) {
			return fmt.Errorf("SAT records %v", got)
		}
		return nil
	})
	for _, bad := range []struct {
		args []string
		why  string
	}{
		{[]string{name, "my-phone"}, "must be a peer ID"},
		{[]string{"other.avtr", satellite}, "does not host other.avtr"},
	} {
		r := cli(t, beacon.repo, nil, append([]string{"roles", "call", "beacon", "delegate"}, bad.args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, bad.why) {
			t.Fatalf("delegate %v: exit %d, %s; want %q", bad.args, r.code, r.stderr, bad.why)
		}
	}
	mustCLI(t, beacon.repo, "roles", "call", "beacon", "revoke", name, satellite)
	eventually(t, 15*time.Second, "another node sees the revocation", func() error {
		if got := satellites(); len(got) != 0 {
			return fmt.Errorf("SAT records %v", got)
		}
		return nil
	})
}

type beaconStatus struct {
	Name            string
	Copies, Wanted  int
	UnderReplicated bool `json:"under_replicated"`
}

func waitBeaconStatus(t testing.TB, d *proc, what string, ok func(beaconStatus) bool) {
	t.Helper()
	eventually(t, 30*time.Second, what, func() error {
		var list []beaconStatus
		cliJSON(t, d.repo, &list, "roles", "call", "beacon", "status")
		if len(list) != 1 || !ok(list[0]) {
			return fmt.Errorf("beacon status %+v", list)
		}
		return nil
	})
}

func resolvedSeq(t testing.TB, d *proc, name string) uint64 {
	t.Helper()
	var res struct{ Seq uint64 }
	cliJSON(t, d.repo, &res, "resolve", name)
	return res.Seq
}

// writeConfig writes a node config file (JSON is YAML).
func writeConfig(t testing.TB, doc map[string]any) string {
	t.Helper()
	body, _ := json.Marshal(doc)
	path := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// grepLog keeps the log lines holding any of words, for failure messages.
func grepLog(log string, words ...string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// A mirror with `discover: true` and scripts/mirror-public.lua mirrors the
// public name it stores as a DHT holder, unlisted, and leaves the private one.
func TestMirrorDiscoversWhatItsPolicyAllows(t *testing.T) {
	t.Parallel()
	nodes := startNetwork(t, 3)
	join := append(append([]string{}, lowWork...), "--bootstrap", nodes[0].addr)
	script, err := filepath.Abs("../../scripts/mirror-public.lua")
	if err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, map[string]any{"roles": []string{"mirror"}, "role_config": map[string]any{
		// Re-resolving every 30 s backs up the update events, as it does for users.
		"mirror": map[string]any{"discover": true, "resolve_interval": "30s"}}})
	m := startDaemon(t, filepath.Join(t.TempDir(), "m"), append(join, "--config", cfg, "--policy.scripts", script)...)

	owner := nodes[1]
	mustCLI(t, owner.repo, "key", "gen", "k")
	var private, public api.PublishResult
	mustCLI(t, owner.repo, "name", "claim", "private.avtr", "--key", "k")
	cliJSON(t, owner.repo, &private, "publish", writeSite(t), "--name", "private.avtr")
	mustCLI(t, owner.repo, "name", "claim", "public.avtr", "--key", "k")
	mustCLI(t, owner.repo, "record", "set", "public.avtr", "TXT", "public=yes")
	cliJSON(t, owner.repo, &public, "publish", writeSite(t), "--name", "public.avtr")

	eventually(t, 60*time.Second, "the mirror takes the public name", func() error {
		if l := mirrorOf(t, m, "public.avtr"); l.Root != public.Root {
			return fmt.Errorf("mirror has %+v\n%s", l, grepLog(m.log.String(), "mirror"))
		}
		return nil
	})
	eventually(t, 30*time.Second, "the policy's no to the private name", func() error {
		if !strings.Contains(m.log.String(), "private.avtr is not public") {
			return fmt.Errorf("no refusal logged:\n%s", grepLog(m.log.String(), "mirror"))
		}
		return nil
	})
	if l := mirrorOf(t, m, "private.avtr"); l.Name != "" {
		t.Fatalf("the private name is mirrored: %+v", l)
	}

	// A mirror whose quota (1 MiB) is smaller than the site (5 MB) says so
	// and pins nothing: the fetched blocks all go at the next gc.
	small := writeConfig(t, map[string]any{"roles": []string{"mirror"}, "role_config": map[string]any{
		"mirror": map[string]any{"names": []string{"public.avtr"}, "quota_mb": 1}}})
	q := startDaemon(t, filepath.Join(t.TempDir(), "q"), append(join, "--config", small)...)
	eventually(t, 60*time.Second, "the quota refuses the version", func() error {
		if l := mirrorOf(t, q, "public.avtr"); !strings.Contains(l.Error, "over the quota of 1 MiB") || l.Root != "" {
			return fmt.Errorf("mirror has %+v", l)
		}
		return nil
	})
	var gc api.GCResult
	cliJSON(t, q.repo, &gc, "repo", "gc")
	if gc.Kept != 0 || gc.Freed < 5_000_000 {
		t.Fatalf("over the quota, yet kept: %+v", gc)
	}
}

// `avnode mirror add|rm|ls` as an operator uses them: a name added by
// command is mirrored with its status (version, bytes, last sync, sources);
// with its owner killed it resolves and fetches from the mirror past the
// DHT's record lifetime; it is kept across a restart of the mirror, and on
// rm unpinned so gc frees it. Wrong names and a name the config lists are
// refused with what to do instead.
func TestMirrorAddAndRemove(t *testing.T) {
	t.Parallel()
	const name = "added.avtr"
	// Resolvers cache zones for 1 s, and DHT records live 20 s unless put again.
	short := []string{"--names.zone_ttl=1s", "--dht.record_max_age=20s"}
	nodes := startNetwork(t, 4, short...)
	owner := nodes[1]
	mustCLI(t, owner.repo, "key", "gen", "k")
	mustCLI(t, owner.repo, "name", "claim", name, "--key", "k")
	var pub api.PublishResult
	cliJSON(t, owner.repo, &pub, "publish", writeSite(t), "--name", name)

	cfg := writeConfig(t, map[string]any{"roles": []string{"mirror"}, "role_config": map[string]any{
		"mirror": map[string]any{"names": []string{"listed.avtr"}, "republish_interval": "3s"}}})
	join := append(append(append([]string{}, lowWork...), short...), "--bootstrap", nodes[0].addr, "--config", cfg)
	m := startDaemon(t, filepath.Join(t.TempDir(), "m"), join...)
	waitRoleNamed(t, m.repo, "mirror", "running", 30*time.Second) // a role starts after the node is ready

	for _, bad := range []struct {
		args []string
		code int
		why  string
	}{
		{[]string{"add", "Bad Name!"}, 2, "name"},
		{[]string{"add", "api." + name}, 2, "avnode mirror add " + name},
		{[]string{"rm", "listed.avtr"}, 1, "role_config.mirror.names"},
		{[]string{"rm", "nothere.avtr"}, 1, "not mirrored here"},
	} {
		r := cli(t, m.repo, nil, append([]string{"mirror"}, bad.args...)...)
		if r.code != bad.code || !strings.Contains(r.stderr, bad.why) {
			t.Fatalf("mirror %v: exit %d, %q; want exit %d saying %q", bad.args, r.code, r.stderr, bad.code, bad.why)
		}
	}

	mustCLI(t, m.repo, "mirror", "add", "ADDED.avtr") // names fold to lower case
	waitMirrored(t, m, name, resolvedSeq(t, owner, name), pub.Root, 60*time.Second)
	l := mirrorOf(t, m, name)
	if !l.Added || l.Bytes < 5_000_000 || l.LastSync == "" || !slices.Contains(l.Sources, owner.peerID) {
		t.Fatalf("mirror ls: %+v; want added, the site's 5 MB, a last sync and the owner among the sources", l)
	}

	// The owner dies with no goodbye. Past the DHT's record lifetime the
	// name lives on the mirror's puts of the owner's records, and its
	// content comes from the mirror. (A put stalls while the DHT still
	// counts the dead owner among the closest peers, until its connections
	// time out: with 24 h lifetimes that is nothing, with 20 s the name may
	// be gone for a moment; hence eventually.)
	owner.kill()
	killed := time.Now()
	time.Sleep(25 * time.Second)
	reader := nodes[3]
	eventually(t, 60*time.Second, "the name resolves with its owner killed", func() error {
		var res api.Resolution
		if err := tryJSON(t, reader.repo, &res, "resolve", name); err != nil {
			return err
		}
		if res.Root != pub.Root {
			return fmt.Errorf("%s resolves to %+v, want root %s", name, res, pub.Root)
		}
		return nil
	})
	t.Logf("resolved %s after its owner was killed: %s", time.Since(killed).Round(time.Second), grepLog(m.log.String(), "republished"))
	var got api.GetResult
	cliJSON(t, reader.repo, &got, "get", name, "-o", filepath.Join(t.TempDir(), "out"))
	if got.Stats.Sources[m.peerID] == 0 || len(got.Stats.Sources) != 1 {
		t.Fatalf("with the owner killed, the content came from %v, want the mirror %s alone", got.Stats.Sources, m.peerID)
	}

	m.stop()
	m = startDaemon(t, m.repo, join...)
	eventually(t, 30*time.Second, "the mirror keeps the added name across a restart", func() error {
		if again := mirrorOf(t, m, name); again.Root != pub.Root || !again.Added {
			return fmt.Errorf("after a restart the mirror has %+v", again)
		}
		return nil
	})
	var gc api.GCResult
	cliJSON(t, m.repo, &gc, "repo", "gc")
	if gc.Freed >= 5_000_000 {
		t.Fatalf("gc freed the mirrored site: %+v", gc)
	}

	mustCLI(t, m.repo, "mirror", "rm", name)
	if gone := mirrorOf(t, m, name); gone.Name != "" {
		t.Fatalf("still mirrored after rm: %+v", gone)
	}
	cliJSON(t, m.repo, &gc, "repo", "gc")
	if gc.Freed < 5_000_000 {
		t.Fatalf("after rm, gc freed only %d bytes: %+v", gc.Freed, gc)
	}
}
