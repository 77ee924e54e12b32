package backoff

import (
	"testing"
	"time"
)

func TestDoublingGrowsToItsCapAndResets(t *testing.T) {
	d := New(250*time.Millisecond, time.Second)
	if got := d.Current(); got != 250*time.Millisecond {
		t.Fatalf("Current at start = %v, want 250ms", got)
	}
	for _, want := range []time.Duration{500 * time.Millisecond, time.Second, time.Second} {
		if got := d.Grow(); got != want {
			t.Fatalf("Grow = %v, want %v", got, want)
		}
	}
	if got := d.Reset(); got != 250*time.Millisecond || d.Current() != got {
		t.Fatalf("Reset = %v (Current %v), want 250ms", got, d.Current())
	}
}
