package bench

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// longRun is set by `make test-long`: the reliability matrix at full size.
var longRun = os.Getenv("AVNODE_TEST_LONG") == "1"

// TestNamesSurviveThirtyPercentKilled is the churn line of the reliability
// matrix: with 30 % of the nodes stopped at once, no goodbye, every name
// still resolves from the nodes left, each time from a node that never
// resolved it before. Pass line: 99.9 % of the resolves. 30 nodes in
// `make test`, 100 in `make test-long`.
func TestNamesSurviveThirtyPercentKilled(t *testing.T) {
	nodes := 30
	if longRun {
		nodes = 100
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	opts := Options{Nodes: nodes, Dir: t.TempDir(), Progress: testWriter{t}}.withDefaults()
	res := newResults()
	net, target, err := startAvnode(ctx, opts, connLimitsFor(nodes), opts.Dir, res, nil)
	if net != nil {
		defer net.stopAll()
	}
	if err != nil {
		t.Fatal(err)
	}
	if d := res.publish.dist(); d.Failed > 0 {
		t.Fatalf("%d of %d publishes failed before any churn", d.Failed, opts.Names)
	}
	killed := net.kill(0.3, nil)
	t.Logf("killed %d of %d nodes", len(killed), nodes)
	ok, tried := 0, 0
	var failures []error
	for range 3 { // every name, three times over, from three different nodes
		n, errs := target.resolveEvery(ctx)
		ok, tried, failures = ok+n, tried+n+len(errs), append(failures, errs...)
	}
	rate := float64(ok) / float64(tried)
	t.Logf("%d of %d resolves ok (%.2f %%)", ok, tried, rate*100)
	if rate < 0.999 {
		for _, err := range failures[:min(len(failures), 10)] {
			t.Errorf("resolve failed: %v", err)
		}
		t.Fatalf("%.2f %% of resolves ok with 30 %% of the nodes killed; the pass line is 99.9 %%", rate*100)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
