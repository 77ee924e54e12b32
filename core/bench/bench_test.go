package bench

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestBenchSmallNetwork runs the whole bench on a small network and checks
// every row a user reads: each measured, each beside its baseline.
func TestBenchSmallNetwork(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Nodes: 12, FetchMiB: 2, RestartFor: 3 * time.Second, ReadyTrials: 1, Dir: t.TempDir(), Progress: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	PrintTable(os.Stderr, rep)
	if len(rep.Rows) != 10 {
		t.Fatalf("%d rows, want 10", len(rep.Rows))
	}
	for _, r := range rep.Rows {
		if r.Value.main() <= 0 || r.Base.main() <= 0 {
			t.Errorf("row %q: avnode %s, baseline %s: both must be measured", r.Name, r.Value, r.Base)
		}
	}
	for _, name := range []string{"resolve cold", "resolve warm", "publish"} {
		if d := rep.Row(name).Value.Dist; d.Failed > 0 || d.Count != 12 {
			t.Errorf("%s: %d ok, %d failed; want 12 ok", name, d.Count, d.Failed)
		}
	}
}
