package node

import (
	"context"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/avnode/avnode/core/config"
)

// Twelve DHT servers from one address (one IP group): a node that limits
// the group keeps 3 of them in its routing table, a node that exempts local
// addresses (the default, for loopback networks) keeps all twelve. The
// servers are bare go-libp2p hosts running the kad-dht library.
func TestRoutingTableLimitsOneIPGroup(t *testing.T) {
	limited := testNode(t, func(c *config.Config) {
		c.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
		c.DHT.DiversityExemptLocal = false
	})
	exempt := testNode(t, func(c *config.Config) { c.Listen = []string{"/ip4/127.0.0.1/tcp/0"} })
	if limited.cfg.DHT.MaxPeersPerIPGroup != 3 || !exempt.cfg.DHT.DiversityExemptLocal {
		t.Fatalf("defaults changed: %d per group, exempt local %v", limited.cfg.DHT.MaxPeersPerIPGroup, exempt.cfg.DHT.DiversityExemptLocal)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const crowd = 12
	for range crowd {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			t.Fatal(err)
		}
		kad, err := dht.New(h, dht.Mode(dht.ModeServer), dht.ProtocolPrefix("/avtr"),
			dht.Datastore(dssync.MutexWrap(ds.NewMapDatastore())))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { kad.Close(); h.Close() })
		for _, victim := range []*Node{limited, exempt} {
			if err := h.Connect(ctx, peer.AddrInfo{ID: victim.Host.ID(), Addrs: victim.Host.Addrs()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		l, e := limited.DHT.RoutingTable().Size(), exempt.DHT.RoutingTable().Size()
		if l == 3 && e == crowd {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("routing tables hold %d (limited) and %d (exempt) of %d peers from one group; want 3 and %d", l, e, crowd, crowd)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A refresh tries every peer it meets again; the limit holds.
	<-limited.DHT.ForceRefresh()
	if l := limited.DHT.RoutingTable().Size(); l > 3 {
		t.Fatalf("after a refresh the limited table holds %d peers of one group", l)
	}
}
