package node

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/avnode/avnode/sdk/sdktest"
)

// Four nodes, all connected to each other: two follow a topic, one another
// topic, one none. Pub/sub streams (and GossipSub's three goroutines per
// peer) link only the two that share the topic, which still get each
// other's messages; a node that shares no topic gets no pub/sub stream at
// all. An outside GossipSub peer (the library's own router on a bare host,
// not the node's code) that subscribes to the topic and connects is linked
// and gets the topic's messages.
func TestPubSubOnlyWithPeersSharingATopic(t *testing.T) {
	nodes := make([]*Node, 4)
	for i := range nodes {
		nodes[i] = loopbackNode(t, "public")
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for i, a := range nodes {
		for _, b := range nodes[i+1:] {
			if err := a.Host.Connect(ctx, peer.AddrInfo{ID: b.Host.ID(), Addrs: b.Host.Addrs()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	const shared = "avtr/test/shared"
	follower, publisher, other, none := nodes[0], nodes[1], nodes[2], nodes[3]
	sub := subscribe(t, follower, shared)
	pub, err := publisher.Topic(shared)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Subscribe(); err != nil { // the publisher follows too, as an owner's node does
		t.Fatal(err)
	}
	subscribe(t, other, "avtr/test/other")
	receive(t, ctx, sub, func() error { return pub.Publish(ctx, []byte("to the follower")) }, "to the follower")

	for _, pair := range [][2]*Node{{follower, other}, {follower, none}, {publisher, other}, {publisher, none}, {other, none}} {
		if n := pubsubStreams(pair[0].Host, pair[1].Host.ID()); n != 0 {
			t.Errorf("%d pub/sub streams between %s and %s, which share no topic", n, pair[0].Host.ID(), pair[1].Host.ID())
		}
	}
	if pubsubStreams(follower.Host, publisher.Host.ID()) == 0 {
		t.Error("no pub/sub stream between the follower and the publisher, yet a message went through")
	}

	// An outside subscriber: it connects to the publisher and speaks first.
	outside, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { outside.Close() })
	ops, err := pubsub.NewGossipSub(ctx, outside)
	if err != nil {
		t.Fatal(err)
	}
	ot, err := ops.Join(shared)
	if err != nil {
		t.Fatal(err)
	}
	osub, err := ot.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	if err := outside.Connect(ctx, peer.AddrInfo{ID: publisher.Host.ID(), Addrs: publisher.Host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	receive(t, ctx, osub, func() error { return pub.Publish(ctx, []byte("to the outside")) }, "to the outside")
}

func subscribe(t *testing.T, n *Node, topic string) *pubsub.Subscription {
	t.Helper()
	tp, err := n.Topic(topic)
	if err != nil {
		t.Fatal(err)
	}
	s, err := tp.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// receive publishes (again, until the mesh forms) until sub gets want.
func receive(t *testing.T, ctx context.Context, sub *pubsub.Subscription, publish func() error, want string) {
	t.Helper()
	sdktest.Eventually(t, 30*time.Second, fmt.Sprintf("%q delivered", want), func() error {
		if err := publish(); err != nil {
			return err
		}
		wait, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		for {
			m, err := sub.Next(wait)
			if err != nil {
				return err
			}
			if string(m.Data) == want {
				return nil
			}
		}
	})
}

// pubsubStreams counts the GossipSub streams open between h and p.
func pubsubStreams(h host.Host, p peer.ID) int {
	n := 0
	for _, c := range h.Network().ConnsToPeer(p) {
		for _, s := range c.GetStreams() {
			if strings.HasPrefix(string(s.Protocol()), "/meshsub/") {
				n++
			}
		}
	}
	return n
}

// A peer connected before GossipSub starts (as a bootstrap peer is) is not
// linked for that alone: GossipSub's first look at the peers already
// connected sees only those let through. A peer that topic discovery then
// connects to is linked.
func TestPubSubStartsWithoutThePeersAlreadyConnected(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	self, early, later := bareHost(t), bareHost(t), bareHost(t)
	// early speaks GossipSub, behind the same gate, so it does not speak first.
	if _, err := pubsub.NewGossipSub(ctx, newTopicPeers(early)); err != nil {
		t.Fatal(err)
	}
	if _, err := pubsub.NewGossipSub(ctx, later); err != nil {
		t.Fatal(err)
	}
	if err := self.Connect(ctx, peer.AddrInfo{ID: early.ID(), Addrs: early.Addrs()}); err != nil {
		t.Fatal(err)
	}
	sdktest.Eventually(t, 10*time.Second, "early's protocols known", func() error {
		if ps, _ := self.Peerstore().SupportsProtocols(early.ID(), pubsub.GossipSubID_v13); len(ps) == 0 {
			return fmt.Errorf("not identified yet")
		}
		return nil
	})
	gated := newTopicPeers(self)
	if _, err := pubsub.NewGossipSub(ctx, gated); err != nil {
		t.Fatal(err)
	}
	if err := gated.Connect(ctx, peer.AddrInfo{ID: later.ID(), Addrs: later.Addrs()}); err != nil {
		t.Fatal(err)
	}
	sdktest.Eventually(t, 30*time.Second, "the peer connected through GossipSub linked", func() error {
		if pubsubStreams(self, later.ID()) == 0 {
			return fmt.Errorf("no pub/sub stream yet")
		}
		return nil
	})
	if n := pubsubStreams(self, early.ID()); n != 0 {
		t.Fatalf("%d pub/sub streams with the peer connected before GossipSub started, which shares no topic", n)
	}
}

func bareHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}
