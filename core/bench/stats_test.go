package bench

import (
	"errors"
	"testing"
	"time"
)

func TestPercentilesByNearestRank(t *testing.T) {
	l := &latencies{}
	for i := 100; i >= 1; i-- { // out of order on purpose
		l.add(time.Duration(i)*time.Millisecond, nil)
	}
	l.add(time.Second, errors.New("timed out"))
	d := l.dist()
	if d.P50 != 50 || d.P90 != 90 || d.P99 != 99 || d.Count != 100 || d.Failed != 1 {
		t.Fatalf("got p50 %v p90 %v p99 %v count %d failed %d; want 50 90 99 100 1", d.P50, d.P90, d.P99, d.Count, d.Failed)
	}
	if one := (&latencies{ok: []time.Duration{7 * time.Millisecond}}).dist(); one.P50 != 7 || one.P99 != 7 {
		t.Fatalf("one sample: %+v", one)
	}
}

func TestRatioIsAvnodeOverBaseline(t *testing.T) {
	fast, slow := &latencies{}, &latencies{}
	fast.add(2*time.Millisecond, nil)
	slow.add(6*time.Millisecond, nil)
	if r := row("x", "ms", dist(slow), "b", dist(fast), ""); r.Ratio != 3 {
		t.Fatalf("ratio %v, want 3", r.Ratio)
	}
	if r := row("x", "s", number(1), "b", number(0), ""); r.Ratio != 0 {
		t.Fatalf("ratio against a zero baseline is %v, want 0 (shown as -)", r.Ratio)
	}
}
