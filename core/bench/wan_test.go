package bench

import (
	"os"
	"strconv"
	"testing"
	"testing/synctest"
	"time"
)

// TestWAN runs the whole bench, both networks, on the simulated wide-area
// network inside a synctest bubble, where every clock is virtual: what it
// measures is round trips and bandwidth, not this machine's load. CI runs
// it small; a bigger run, as for the README's WAN table:
//
//	AVNODE_WAN_NODES=1000 AVNODE_WAN_NAMES=200 AVNODE_WAN_OUT=/tmp/wan \
//	  go test ./core/bench -run TestWAN -timeout 0 -v
//
// which writes bench.json and the plots into AVNODE_WAN_OUT. The
// defaults keep CI's run short: 24 nodes, enough that a few hold none of a
// given record (20 holders each) to resolve it cold, and 12 names.
func TestWAN(t *testing.T) {
	nodes, names := wanSize(t, "AVNODE_WAN_NODES", 24, 24), wanSize(t, "AVNODE_WAN_NAMES", 12, 3)
	synctest.Test(t, func(t *testing.T) {
		rep, err := Run(t.Context(), Options{Nodes: nodes, Names: names, WAN: true, FetchMiB: 2, RestartFor: 5 * time.Second,
			ReadyTrials: 1, Dir: t.TempDir(), Progress: testWriter{t}})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rep.Rows {
			t.Logf("%s: %s vs %s, ratio %.2f", r.Name, r.Value, r.Base, r.Ratio)
		}
		for _, p := range rep.Problems() {
			t.Error(p)
		}
		for name := range machineOnly {
			if rep.Row(name) != nil {
				t.Errorf("row %q times one machine's work, which the virtual clock does not see; it should be left out", name)
			}
		}
		// The latency model holds: a cold resolve, by a node that does not
		// hold the record, waits at least one round trip (20 ms at the
		// least) on either side. Virtual time, not a wall-clock threshold.
		for _, name := range []string{"resolve cold", "resolve cold through an estate"} {
			r := rep.Row(name)
			if r == nil {
				t.Fatalf("no row %q", name)
			}
			for side, v := range map[string]Value{"avnode": r.Value, r.Baseline: r.Base} {
				if v.Dist == nil || v.Dist.P50 < 20 {
					t.Errorf("%s, %s: p50 %s; a cold resolve across the simulated WAN takes a round trip, 20 ms or more", name, side, v)
				}
			}
		}
		if out := os.Getenv("AVNODE_WAN_OUT"); out != "" {
			if err := WriteFiles(rep, out); err != nil {
				t.Error(err)
			}
		}
		// goleveldb's pool drainer ticks once a second after its DB closes;
		// the bubble ends only when every goroutine in it has.
		time.Sleep(2 * time.Second)
	})
}

// wanSize reads a size from the environment, least or more; def when unset.
func wanSize(t *testing.T, env string, def, least int) int {
	v := os.Getenv(env)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < least {
		t.Fatalf("%s=%q: want a number, %d or more", env, v, least)
	}
	return n
}
