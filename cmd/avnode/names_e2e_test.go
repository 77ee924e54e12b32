package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/avnode/avnode/core/api"
)

func recordValues(rs []api.RecordInfo, typ string) []string {
	var out []string
	for _, r := range rs {
		if r.Type == typ {
			out = append(out, r.Value)
		}
	}
	return out
}

// lowWork keeps proof of work fast in tests; every node of a network must agree on it.
var lowWork = []string{"--names.claim_difficulty=8"}

// startNetwork starts n daemons, the others bootstrapped from the first, and
// waits until each has at least want peers.
func startNetwork(t testing.TB, n int, extra ...string) []*proc {
	t.Helper()
	base := t.TempDir()
	args := append(append([]string{}, lowWork...), extra...)
	nodes := []*proc{startDaemon(t, filepath.Join(base, "n0"), args...)}
	for i := 1; i < n; i++ {
		nodes = append(nodes, startDaemon(t, filepath.Join(base, fmt.Sprintf("n%d", i)), append(args, "--bootstrap", nodes[0].addr)...))
	}
	for _, d := range nodes {
		eventually(t, 20*time.Second, "peers connected", func() error {
			var peers []struct{}
			cliJSON(t, d.repo, &peers, "peers")
			if len(peers) < 2 {
				return fmt.Errorf("%s has %d peers", d.repo, len(peers))
			}
			return nil
		})
	}
	return nodes
}

// Six daemons: claim and set a sub-label record on one, resolve it on
// another, see an update, refuse a second key, fail fast on an unknown name.
func TestNamesAcrossProcesses(t *testing.T) {
	t.Parallel()
	nodes := startNetwork(t, 6, "--names.resolve_timeout=3s")
	owner, reader, rival := nodes[2], nodes[5], nodes[4]

	mustCLI(t, owner.repo, "key", "gen", "alice")
	var claim api.ClaimResult
	claimed := cli(t, owner.repo, nil, "name", "claim", "coolblog.code", "--key", "alice", "--json")
	if err := json.Unmarshal([]byte(claimed.stdout), &claim); err != nil || !claim.Certified || claim.Holders < 3 {
		t.Fatalf("claim not certified: %+v, %v\n%s%s", claim, err, claimed.stdout, claimed.stderr)
	}
	// Under --json the proof of work reports on stderr, one JSON line per
	// event: hashes tried of those expected on average (2^8 here).
	var first struct{ Progress api.Progress }
	line, _, _ := strings.Cut(claimed.stderr, "\n")
	if err := json.Unmarshal([]byte(line), &first); err != nil || first.Progress.Phase != "work" || first.Progress.Expected != 1<<8 {
		t.Fatalf("claim --json progress: %v\n%s", err, claimed.stderr)
	}
	// A 1 s TTL lets readers see updates quickly; the default is 5 minutes.
	mustCLI(t, owner.repo, "record", "set", "coolblog.code", "A", "/ip4/192.0.2.1/tcp/4001", "--label", "api", "--ttl", "1s")
	mustCLI(t, owner.repo, "record", "set", "coolblog.code", "HOST", owner.peerID)

	var res api.Resolution
	cliJSON(t, reader.repo, &res, "resolve", "an://api.coolblog:code")
	if res.Name != "api.coolblog.code" || res.Key != claim.Key || len(res.Records) != 1 ||
		res.Records[0].Type != "A" || res.Records[0].Value != "/ip4/192.0.2.1/tcp/4001" {
		t.Fatalf("resolve api: %+v", res)
	}
	if len(res.Hosts) != 1 || res.Hosts[0].PeerID != owner.peerID || len(res.Hosts[0].Addrs) == 0 {
		t.Fatalf("resolve must give the host's addresses: %+v", res.Hosts)
	}
	firstSeq := res.Seq

	// An update is seen with the new sequence once the reader's cache lapses.
	// A label is case-folded as names are: API is api.
	mustCLI(t, owner.repo, "record", "set", "coolblog.code", "A", "/ip4/192.0.2.2/tcp/4001", "--label", "API")
	eventually(t, 15*time.Second, "update seen", func() error {
		var upd api.Resolution
		cliJSON(t, reader.repo, &upd, "resolve", "api.coolblog.code")
		if upd.Seq <= firstSeq || upd.Records[0].Value != "/ip4/192.0.2.2/tcp/4001" {
			return fmt.Errorf("still seq %d value %v", upd.Seq, upd.Records)
		}
		return nil
	})

	// A second key's claim fails, on any node.
	mustCLI(t, rival.repo, "key", "gen", "mallory")
	r := cli(t, rival.repo, nil, "name", "claim", "coolblog.code", "--key", "mallory")
	if r.code == 0 || !strings.Contains(r.stderr, "already held by key "+claim.Key) {
		t.Fatalf("rival claim: exit %d, %s", r.code, r.stderr)
	}
	// Publishing to it then says who holds it, not "claim it first".
	if r := cli(t, rival.repo, nil, "record", "set", "coolblog.code", "TXT", "mine"); r.code != exitFailure ||
		!strings.Contains(r.stderr, "held by key "+claim.Key) {
		t.Fatalf("rival record set: exit %d, %s", r.code, r.stderr)
	}
	for _, d := range nodes {
		var again api.Resolution
		cliJSON(t, d.repo, &again, "resolve", "coolblog.code")
		if again.Key != claim.Key {
			t.Fatalf("%s resolves coolblog.code to %s, want the first owner %s", d.repo, again.Key, claim.Key)
		}
	}

	// record ls shows the zone; record rm takes a record out and republishes.
	var zone api.ZoneInfo
	cliJSON(t, owner.repo, &zone, "record", "ls", "coolblog.code")
	if len(zone.Records) != 2 || zone.Key != claim.Key {
		t.Fatalf("record ls: %+v", zone)
	}
	mustCLI(t, owner.repo, "record", "rm", "coolblog.code", "A", "--label", "api")
	eventually(t, 15*time.Second, "removal seen", func() error {
		r := cli(t, reader.repo, nil, "resolve", "api.coolblog.code")
		if r.code != exitFailure || !strings.Contains(r.stderr, "not found") {
			return fmt.Errorf("exit %d: %s%s", r.code, r.stdout, r.stderr)
		}
		return nil
	})
	if r := cli(t, owner.repo, nil, "record", "rm", "coolblog.code", "A", "--label", "api"); r.code == 0 || !strings.Contains(r.stderr, "has no A record") {
		t.Fatalf("removing a missing record: exit %d %s", r.code, r.stderr)
	}
	// Under --json a failure is JSON on stderr, and it names what was typed.
	deep := cli(t, reader.repo, nil, "resolve", "a.b.nobody.avtr", "--json")
	var failure struct {
		Error    string `json:"error"`
		Kind     string `json:"kind"`
		ExitCode int    `json:"exit_code"`
	}
	if err := json.Unmarshal([]byte(deep.stderr), &failure); err != nil || deep.code != exitFailure ||
		failure.Kind != "not_found" || failure.ExitCode != exitFailure || !strings.Contains(failure.Error, "a.b.nobody.avtr") {
		t.Fatalf("resolve a.b.nobody.avtr --json: exit %d, %v\nstdout %q\nstderr %s", deep.code, err, deep.stdout, deep.stderr)
	}
	bad := cli(t, reader.repo, nil, "record", "set", "coolblog.code", "TXT", "x", "--label", "under_score", "--json")
	if err := json.Unmarshal([]byte(bad.stderr), &failure); err != nil || bad.code != exitBadUsage || failure.ExitCode != exitBadUsage {
		t.Fatalf("a bad label under --json: exit %d, %v\n%s", bad.code, err, bad.stderr)
	}
	// With a value, rm takes out that one record of a set and keeps the rest.
	mustCLI(t, owner.repo, "record", "set", "coolblog.code", "TXT", "copies=3")
	mustCLI(t, owner.repo, "record", "set", "coolblog.code", "TXT", "hello")
	mustCLI(t, owner.repo, "record", "rm", "coolblog.code", "TXT", "copies=3")
	cliJSON(t, owner.repo, &zone, "record", "ls", "coolblog.code")
	if txt := recordValues(zone.Records, "TXT"); !slices.Equal(txt, []string{"hello"}) {
		t.Fatalf("after rm of one TXT: %v", txt)
	}

	// A record value that can never be right exits 2 saying what the type
	// takes, before anything is signed: the zone keeps its sequence.
	for _, bad := range []struct{ typ, value, want string }{
		{"ROOT", "notacid", "must be a content CID"},
		{"HOST", "notapeer", "must be a peer ID"},
		{"A", "somewhere", "neither a peer ID nor a multiaddr"},
		{"CNAME", "Not A Name", "name"},
	} {
		r := cli(t, owner.repo, nil, "record", "set", "coolblog.code", bad.typ, bad.value)
		if r.code != exitBadUsage || !strings.Contains(r.stderr, bad.want) {
			t.Errorf("record set %s %q: exit %d, %q; want exit 2 saying %q", bad.typ, bad.value, r.code, r.stderr, bad.want)
		}
	}
	var after api.ZoneInfo
	cliJSON(t, owner.repo, &after, "record", "ls", "coolblog.code")
	if after.Seq != zone.Seq || len(after.Records) != len(zone.Records) {
		t.Fatalf("bad record values changed the zone: seq %d → %d, %d → %d records", zone.Seq, after.Seq, len(zone.Records), len(after.Records))
	}

	// An unknown name fails with exit code 1 and "not found", fast.
	start := time.Now()
	r = cli(t, reader.repo, nil, "resolve", "nobody.avtr")
	if r.code != exitFailure || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("unknown name: exit %d, %s", r.code, r.stderr)
	}
	// Bounded by resolve_timeout (3s here); the slack only absorbs a loaded machine.
	if took := time.Since(start); took > 15*time.Second {
		t.Fatalf("unknown name took %s; resolve_timeout is 3s", took)
	}
}
