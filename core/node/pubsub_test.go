package node

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio"
	"google.golang.org/protobuf/proto"

	"github.com/avnode/avnode/core/config"
	"github.com/avnode/avnode/sdk/sdktest"
)

// A node alone in a topic (a name followed by nobody else yet) keeps
// looking for its other subscribers, but backs off: its only DHT peer, a
// bare host answering the DHT protocol itself, counts the provider
// lookups. GossipSub asks every second; each used to be a DHT walk.
func TestLonelyTopicIsNotLookedUpEverySecond(t *testing.T) {
	n := testNode(t, func(cfg *config.Config) {
		cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
		cfg.NAT.AutoNAT, cfg.NAT.HolePunching = false, false
		cfg.NAT.Reachability = "public"
	})
	peerHost, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peerHost.Close() })
	var lookups atomic.Int64
	peerHost.SetStreamHandler(kadProtocol(n), func(s network.Stream) {
		defer s.Close()
		r := msgio.NewVarintReaderSize(s, network.MessageSizeMax)
		w := msgio.NewVarintWriter(s)
		for {
			msg, err := r.ReadMsg()
			if err != nil {
				return
			}
			var req pb.Message
			if err := proto.Unmarshal(msg, &req); err != nil {
				return
			}
			if req.GetType() == pb.Message_GET_PROVIDERS {
				lookups.Add(1)
			}
			if req.GetType() == pb.Message_ADD_PROVIDER {
				continue // no answer expected
			}
			out, _ := proto.Marshal(pb.NewMessage(req.GetType(), req.GetKey(), 0))
			if err := w.WriteMsg(out); err != nil {
				return
			}
		}
	})
	if err := n.Host.Connect(t.Context(), peer.AddrInfo{ID: peerHost.ID(), Addrs: peerHost.Addrs()}); err != nil {
		t.Fatal(err)
	}
	sdktest.Eventually(t, 10*time.Second, "the bare peer in the node's routing table", func() error {
		if n.DHT.RoutingTable().Find(peerHost.ID()) == "" {
			return errNotYet
		}
		return nil
	})
	if _, err := n.Topic("avtr/name/lonely.avtr"); err != nil {
		t.Fatal(err)
	}
	// Backing off from 1 s, doubling, the node looks at about 0, 1, 3, 7
	// and 15 s; asked every second it looked 12 times in 12 s.
	sdktest.Eventually(t, 10*time.Second, "a first provider lookup", func() error {
		if lookups.Load() == 0 {
			return errNotYet
		}
		return nil
	})
	<-time.After(12 * time.Second) // the window counted, not a wait for a condition
	if got := lookups.Load(); got > 6 {
		t.Fatalf("%d provider lookups in 12 s for a topic nobody else follows; want a few, backing off", got)
	}
	t.Logf("%d provider lookups in 12 s", lookups.Load())
}

var errNotYet = errors.New("not yet")
