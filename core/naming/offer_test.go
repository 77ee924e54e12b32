package naming

import (
	"runtime"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/avnode/avnode/core/names"
)

// A peer that offers a node the name's current zone 2,000 times makes it
// spread the zone once, the first time, when it is newer than what the node
// had; the node's goroutines do not grow with the offers.
func TestOfferedZoneSpreadOnce(t *testing.T) {
	nodes := newTestNetwork(t, 5, nil)
	owner := nodes[1]
	claimName(t, owner, "replayed.code", "owner")
	ctx := ctxFor(t, 2*time.Minute)
	if _, err := owner.names.ChangeRecord(ctx, RecordChange{Name: "replayed.code", Type: "TXT", Value: "v=1"}); err != nil {
		t.Fatal(err)
	}
	n, _ := names.Parse("replayed.code")
	key := names.ZoneKey(n)
	zone := storedValue(t, owner, key)
	if zone == nil {
		t.Fatal("the owner holds no zone")
	}

	// A node that joins afterwards has seen no version of the name.
	late := newTestNode(t, testConfig(t, nil))
	info := peer.AddrInfo{ID: nodes[0].id(), Addrs: nodes[0].node.Host.Addrs()}
	waitFor(t, 10*time.Second, "connect", func() error { return late.node.Host.Connect(ctx, info) })
	<-late.node.DHT.ForceRefresh()

	reg := prometheus.NewRegistry()
	reg.MustRegister(late.names.metrics.offerPuts)
	started := func() float64 {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range families[0].GetMetric() {
			if m.GetLabel()[0].GetValue() == "started" {
				return m.GetCounter().GetValue()
			}
		}
		return 0
	}
	before := runtime.NumGoroutine()
	for i := range 2000 {
		if _, err := late.names.OfferZone(ctx, key, zone); err != nil {
			t.Fatalf("offer %d: %v", i, err)
		}
	}
	if got := started(); got != 1 {
		t.Fatalf("2,000 offers of one version started %v puts, want 1", got)
	}
	if grown := runtime.NumGoroutine() - before; grown > 100 {
		t.Fatalf("goroutines grew by %d over 2,000 offers", grown)
	}
}
