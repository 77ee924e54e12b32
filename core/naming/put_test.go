package naming

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dhtpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/avnode/avnode/core/config"
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
	// change makes a change and waits until the live peers hold it and
	// those of them its last put reached are counted as having taken it
	// early: all of them, or all but one (a put to one peer failing under
	// load, as kad-dht's can).
	change := func(value string) uint64 {
		t.Helper()
		remembered, _ := owner.names.holders.Get(key)
		wantEarly := 0
		for _, tn := range nodes[1:] {
			if !tn.dead && slices.Contains(remembered, tn.id()) {
				wantEarly++
			}
		}
		before := testutil.ToFloat64(early)
		info, err := owner.names.ChangeRecord(ctx, RecordChange{Name: "sticky.avtr", Type: "TXT", Value: value})
		if err != nil {
			t.Fatalf("change %s: %v", value, err)
		}
		waitFor(t, 10*time.Second, "the live peers hold the change", func() error {
			live, holders := 0, 0
			for _, tn := range nodes[1:] {
				if !tn.dead {
					live++
					if heldSeq(tn) == info.Seq {
						holders++
					}
				}
			}
			sentEarly := int(testutil.ToFloat64(early) - before)
			if holders < live-1 || sentEarly < max(1, wantEarly-1) {
				return fmt.Errorf("%d of %d live peers hold seq %d; %d took it early, want %d of the %d live ones its last put reached",
					holders, live, info.Seq, sentEarly, wantEarly, wantEarly)
			}
			return nil
		})
		return info.Seq
	}

	// The claim put the zone to all 11 others (its walk may end after the
	// claim returns): this change reaches them before its walk ends.
	waitFor(t, 10*time.Second, "the claim's put remembered", func() error {
		if held, _ := owner.names.holders.Get(key); len(held) < 10 {
			return fmt.Errorf("%d peers remembered for the zone's next put, want 11 (10 if one put failed)", len(held))
		}
		return nil
	})
	change("first")
	old := owner.names.cachedZone(n).Signed()
	for _, tn := range nodes[1:4] {
		tn.kill()
	}
	// The 8 (or 7) of them still up.
	seq := change("second")
	var current []*testNode
	for _, tn := range nodes[4:] {
		if heldSeq(tn) == seq {
			current = append(current, tn)
		}
	}

	err := owner.names.putValue(ctx, key, old)
	if !errors.Is(err, errOlderValue) {
		t.Fatalf("put of an older zone: %v, want %v", err, errOlderValue)
	}
	// The value held, again (a re-put), is no older than itself.
	if err := owner.names.put(ctx, key, owner.names.cachedZone(n).Signed(), putHow{waitAll: true}); err != nil {
		t.Fatalf("put of the zone held: %v", err)
	}
	for _, tn := range current {
		if got := heldSeq(tn); got != seq {
			t.Fatalf("a holder of seq %d holds seq %d after an older value was put", seq, got)
		}
	}
}

// The puts roles and tools ask for (PutRecord) whose callers stop waiting
// at once still run to their end in the background, but no more than
// spreadsAtOnce at a time: the next one waits for a slot, and gets its
// deadline's error if none comes. The owner's own changes do not wait on
// them.
func TestPutsInFlightAreBounded(t *testing.T) {
	nodes := newTestNetwork(t, 4, nil)
	owner := nodes[0]
	claimName(t, owner, "busy.avtr", "owner")
	n, _ := names.Parse("busy.avtr")
	for range spreadsAtOnce {
		owner.names.spreads <- struct{}{} // as if that many puts were still going on
	}
	held := owner.names.cachedZone(n).Signed()
	ctx := ctxFor(t, 200*time.Millisecond)
	if err := owner.names.PutRecord(ctx, names.ZoneKey(n), held); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a put past the bound: %v, want the caller's deadline", err)
	}
	if _, err := owner.names.ChangeRecord(ctxFor(t, time.Minute), RecordChange{Name: "busy.avtr", Type: "TXT", Value: "owner"}); err != nil {
		t.Fatalf("the owner's change while the slots are taken: %v", err)
	}
	<-owner.names.spreads // one of them ends
	if err := owner.names.PutRecord(ctxFor(t, time.Minute), names.ZoneKey(n), owner.names.cachedZone(n).Signed()); err != nil {
		t.Fatalf("a put with a free slot: %v", err)
	}
}

// A put that reaches nobody fails, as kad-dht's does, instead of reporting
// success; so does a put on a closed service.
func TestPutWithNoPeersFails(t *testing.T) {
	alone := newTestNode(t, testConfig(t, nil))
	pub, err := crypto.MarshalPublicKey(alone.node.Host.Peerstore().PubKey(alone.id()))
	if err != nil {
		t.Fatal(err)
	}
	key := routing.KeyForPublicKey(alone.id())
	if err := alone.names.putValue(ctxFor(t, time.Minute), key, pub); err == nil {
		t.Fatal("a put with no peer to reach succeeded")
	}
	alone.names.Close()
	if err := alone.names.putValue(ctxFor(t, time.Minute), key, pub); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("a put on a closed service: %v, want it refused", err)
	}
}

// Sybils next to a name, bare hosts speaking kad-dht's protocol by hand:
// one acknowledges every PUT and keeps nothing, three take the PUT and
// never answer (on connections that stay open, until the putter gives up).
// The owner's change returns while the three still hold it, without
// waiting on them; every honest holder gets the new version and a fresh
// resolver resolves it. The three, which never stored anything, are not
// among the peers remembered for the next put; the one that acknowledged
// is (its lie costs its own copy only, as it would with kad-dht's put).
func TestSybilsThatStallOrDropPutsHoldUpOnlyThemselves(t *testing.T) {
	nodes := newTestNetwork(t, 10, nil)
	owner := nodes[0]
	const name = "stalled.avtr"
	n, _ := names.Parse(name)
	key := names.ZoneKey(n)
	ctx := ctxFor(t, 2*time.Minute)

	dropper := handKad(t, key, 10, func(req *dhtpb.Message) *dhtpb.Message {
		resp := &dhtpb.Message{Type: req.Type, Key: req.Key}
		if req.Type == dhtpb.Message_PUT_VALUE {
			resp.Record = req.Record // "stored"
		}
		return resp
	})
	linkInRoutingTable(t, ctx, owner, dropper, "the dropper")
	claimName(t, owner, name, "owner")
	waitFor(t, 10*time.Second, "the claim's put remembered", func() error {
		if held, _ := owner.names.holders.Get(key); len(held) < 9 {
			return fmt.Errorf("%d peers remembered for the zone's next put, want 10 (9 if one put failed)", len(held))
		}
		return nil
	})

	var sent, given sync.Map // the stallers sent the zone's PUT; those the putter gave up on
	var stallers []host.Host
	for range 3 {
		s := stallingHolder(t, key, &sent, &given)
		linkInRoutingTable(t, ctx, owner, s, "a staller")
		stallers = append(stallers, s)
	}
	info, err := owner.names.ChangeRecord(ctx, RecordChange{Name: name, Type: "TXT", Value: "while stalled"})
	if err != nil {
		t.Fatal(err)
	}
	if ended := mapLen(&given); ended > 0 {
		t.Fatalf("the change returned after the owner gave up on %d stalling peers: it waited on them", ended)
	}
	waitFor(t, 30*time.Second, "every staller sent the change", func() error {
		if got := mapLen(&sent); got < len(stallers) {
			return fmt.Errorf("%d of %d stallers were sent the change", got, len(stallers))
		}
		return nil
	})
	waitFor(t, 10*time.Second, "the honest peers hold the change", func() error {
		for i, tn := range nodes[1:] {
			z, err := names.DecodeZone(tn.names.owners.dhtValue(ctx, key))
			if err != nil || z.Seq != info.Seq {
				return fmt.Errorf("node %d does not hold seq %d", i+1, info.Seq)
			}
		}
		return nil
	})
	client := newTestNode(t, testConfig(t, func(c *config.Config) { c.DHT.Mode = "client" }))
	for _, other := range nodes[1:4] {
		if err := client.node.Host.Connect(ctx, peer.AddrInfo{ID: other.id(), Addrs: other.node.Host.Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := client.names.Resolve(ctx, name)
	if err != nil || res.Seq != info.Seq {
		t.Fatalf("a fresh resolver: %+v, %v; want seq %d", res, err, info.Seq)
	}
	// Once the owner gives up on the stallers, the put ends and remembers
	// who stored it.
	waitFor(t, 30*time.Second, "the put ended", func() error {
		if got := mapLen(&given); got < len(stallers) {
			return fmt.Errorf("the owner gave up on %d of %d stallers", got, len(stallers))
		}
		return nil
	})
	waitFor(t, 10*time.Second, "the peers remembered for the next put", func() error {
		held, _ := owner.names.holders.Get(key)
		for _, s := range stallers {
			if slices.Contains(held, s.ID()) {
				return fmt.Errorf("staller %s remembered as having stored the zone", s.ID())
			}
		}
		if !slices.Contains(held, dropper.ID()) {
			return fmt.Errorf("the dropper, which acknowledged, is not remembered (%d remembered)", len(held))
		}
		return nil
	})
}

// stallingHolder is a bare host next to key speaking kad-dht's protocol by
// hand: it answers FIND_NODE and GET_VALUE with nothing, and never answers
// a PUT_VALUE of key; the stream stays open until the putter gives up.
// sent and given note the staller once it received a PUT, and once the
// putter gave up on one.
func stallingHolder(t testing.TB, key string, sent, given *sync.Map) host.Host {
	t.Helper()
	self := new(int) // this staller, in sent and given
	return handKadStalling(t, key, 12, func(req *dhtpb.Message) *dhtpb.Message {
		if req.Type == dhtpb.Message_PUT_VALUE && string(req.Key) == key {
			sent.Store(self, true)
			return nil
		}
		return &dhtpb.Message{Type: req.Type, Key: req.Key}
	}, func(*dhtpb.Message) { given.Store(self, true) })
}

func mapLen(m *sync.Map) int {
	n := 0
	m.Range(func(any, any) bool { n++; return true })
	return n
}
