package naming

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/avnode/avnode/core/names"
)

// An owner's change reaches the peers that took the name's last put before
// its walk ends (counted as early), every live holder gets the new version
// (the last of them maybe just after the put returns), holders gone since
// do not hold a put up, and a value older than the one held here is refused
// before anything is sent.
func TestPutReachesLastHoldersFirst(t *testing.T) {
	nodes := newTestNetwork(t, 12, nil)
	owner := nodes[0]
	claimName(t, owner, "sticky.avtr", "owner")
	n, _ := names.Parse("sticky.avtr")
	key := names.ZoneKey(n)
	ctx := ctxFor(t, 2*time.Minute)
	early := owner.names.metrics.putPeers.WithLabelValues("early")

	heldSeq := func(tn *testNode) uint64 {
		z, err := names.DecodeZone(tn.names.owners.dhtValue(ctx, key))
		if err != nil {
			return 0
		}
		return z.Seq
	}
	// change makes a change and waits until every live peer holds it and
	// wantEarly of them are counted as having taken it early.
	change := func(value string, wantEarly float64) uint64 {
		t.Helper()
		before := testutil.ToFloat64(early)
		info, err := owner.names.ChangeRecord(ctx, RecordChange{Name: "sticky.avtr", Type: "TXT", Value: value})
		if err != nil {
			t.Fatalf("change %s: %v", value, err)
		}
		waitFor(t, 10*time.Second, "every live peer holds the change", func() error {
			live, holders := 0, 0
			for _, tn := range nodes[1:] {
				if !tn.dead {
					live++
					if heldSeq(tn) == info.Seq {
						holders++
					}
				}
			}
			if sentEarly := testutil.ToFloat64(early) - before; holders != live || sentEarly != wantEarly {
				return fmt.Errorf("%d of %d live peers hold seq %d; %v took it early, want %v", holders, live, info.Seq, sentEarly, wantEarly)
			}
			return nil
		})
		return info.Seq
	}

	// The claim put the zone to all 11 others (its walk may end after the
	// claim returns): this change reaches them before its walk ends.
	waitFor(t, 10*time.Second, "the claim's put remembered", func() error {
		if held, _ := owner.names.holders.Get(key); len(held) != 11 {
			return fmt.Errorf("%d peers remembered for the zone's next put, want 11", len(held))
		}
		return nil
	})
	change("first", 11)
	old := owner.names.cachedZone(n).Signed()
	for _, tn := range nodes[1:4] {
		tn.kill()
	}
	// The 8 of them still up.
	seq := change("second", 8)

	err := owner.names.putValue(ctx, key, old)
	if !errors.Is(err, errOlderValue) {
		t.Fatalf("put of an older zone: %v, want %v", err, errOlderValue)
	}
	// The value held, again (a re-put), is no older than itself.
	if err := owner.names.putValueAll(ctx, key, owner.names.cachedZone(n).Signed()); err != nil {
		t.Fatalf("put of the zone held: %v", err)
	}
	for i, tn := range nodes[4:] {
		if got := heldSeq(tn); got != seq {
			t.Fatalf("node %d holds seq %d after an older value was put, want %d", i+4, got, seq)
		}
	}
}

// Puts whose callers stop waiting at once still run to their end in the
// background, but no more than spreadsAtOnce at a time: the next caller
// waits for a slot, and gets its deadline's error if none comes.
func TestPutsInFlightAreBounded(t *testing.T) {
	nodes := newTestNetwork(t, 4, nil)
	owner := nodes[0]
	claimName(t, owner, "busy.avtr", "owner")
	for range spreadsAtOnce {
		owner.names.spreads <- struct{}{} // as if that many puts were still going on
	}
	ctx := ctxFor(t, 200*time.Millisecond)
	_, err := owner.names.ChangeRecord(ctx, RecordChange{Name: "busy.avtr", Type: "TXT", Value: "waits"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a put past the bound: %v, want the caller's deadline", err)
	}
	<-owner.names.spreads // one of them ends
	if _, err := owner.names.ChangeRecord(ctxFor(t, time.Minute), RecordChange{Name: "busy.avtr", Type: "TXT", Value: "goes"}); err != nil {
		t.Fatalf("a put with a free slot: %v", err)
	}
}
