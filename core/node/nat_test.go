package node

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/avnode/avnode/core/config"
)

func loopbackNode(t *testing.T, reachability string) *Node {
	t.Helper()
	return testNode(t, func(cfg *config.Config) {
		cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
		cfg.NAT.Reachability = reachability
	})
}

// testNode is a node as the daemon builds it, with an in-memory datastore
// and the embedded config as adjust leaves it.
func testNode(t *testing.T, adjust func(*config.Config)) *Node {
	t.Helper()
	cfg, err := config.Load(config.Sources{})
	if err != nil {
		t.Fatal(err)
	}
	adjust(cfg)
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Options{Config: cfg, Key: key, Datastore: dssync.MutexWrap(ds.NewMapDatastore()),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// The relay service refuses bad limits, asks its gate for each reservation
// and counts what it accepted and refused (since its last start); it can be
// started again, with new limits.
func TestRelayServiceGatesAndCounts(t *testing.T) {
	relay, peerNode := loopbackNode(t, "public"), loopbackNode(t, "private")
	if err := relay.StartRelay(RelayLimits{}, nil); err == nil {
		t.Fatal("zero limits accepted")
	}
	if st := relay.RelayStats(); st.Running {
		t.Fatalf("running after a refused start: %+v", st)
	}
	limits := RelayLimits{MaxReservations: 4, MaxCircuits: 2, CircuitDuration: time.Minute, CircuitBytes: 1 << 20}
	var allow atomic.Bool
	gate := func(peer.ID, ma.Multiaddr) (bool, string) { return allow.Load(), "not on the list" }
	if err := relay.StartRelay(limits, gate); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	info := peer.AddrInfo{ID: relay.Host.ID(), Addrs: relay.Host.Addrs()}
	if err := peerNode.Host.Connect(ctx, info); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Reserve(ctx, peerNode.Host, info); err == nil {
		t.Fatal("the gate said no, yet the reservation was accepted")
	}
	if st := relay.RelayStats(); !st.Running || st.Refused != 1 || st.Reservations != 0 {
		t.Fatalf("after a refusal: %+v", st)
	}
	allow.Store(true)
	if err := relay.StartRelay(limits, gate); err != nil { // a restart with the same limits
		t.Fatal(err)
	}
	if _, err := client.Reserve(ctx, peerNode.Host, info); err != nil {
		t.Fatalf("reservation refused: %v", err)
	}
	if st := relay.RelayStats(); !st.Running || st.Reservations != 1 || st.Refused != 0 {
		t.Fatalf("after the restart: %+v", st)
	}
}

// The relay service enforces the limits it is given: past max_reservations
// a peer gets no slot, and a relayed connection is cut once it has carried
// the circuit's byte limit.
func TestRelayEnforcesLimits(t *testing.T) {
	relay := loopbackNode(t, "public")
	a, c := loopbackNode(t, "private"), loopbackNode(t, "private")
	// B listens nowhere, so that no one can dial it directly: what it gets
	// from A comes through the relay. (Two nodes on loopback would
	// otherwise connect directly as soon as they learn each other's addresses.)
	b, err := libp2p.New(libp2p.NoListenAddrs, libp2p.EnableRelay())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const limit = 256 << 10
	limits := RelayLimits{MaxReservations: 1, MaxReservationsPerIP: 8, MaxCircuits: 4, CircuitDuration: time.Minute, CircuitBytes: limit}
	if err := relay.StartRelay(limits, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	info := peer.AddrInfo{ID: relay.Host.ID(), Addrs: relay.Host.Addrs()}
	for _, n := range []*Node{a, c} {
		if err := n.Host.Connect(ctx, info); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.Reserve(ctx, a.Host, info); err != nil {
		t.Fatalf("the first reservation: %v", err)
	}
	if _, err := client.Reserve(ctx, c.Host, info); err == nil {
		t.Fatal("a second reservation was accepted past max_reservations 1")
	}

	// B reaches A through the relay; A sends 4 MiB, which the circuit cuts.
	const proto = "/avnode-test/bulk/1.0.0"
	a.Host.SetStreamHandler(proto, func(s network.Stream) {
		defer s.Close()
		s.Write(make([]byte, 4<<20))
	})
	circuit, err := ma.NewMultiaddr(relay.Host.Addrs()[0].String() + "/p2p/" + relay.Host.ID().String() + "/p2p-circuit")
	if err != nil {
		t.Fatal(err)
	}
	relayed := network.WithNoDial(network.WithAllowLimitedConn(ctx, "test"), "relayed only")
	if err := b.Connect(network.WithAllowLimitedConn(ctx, "test"), peer.AddrInfo{ID: a.Host.ID(), Addrs: []ma.Multiaddr{circuit}}); err != nil {
		t.Fatalf("B through the relay to A: %v", err)
	}
	s, err := b.NewStream(relayed, a.Host.ID(), proto)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Conn().Stat().Limited {
		t.Fatalf("the stream runs over %s, not a relayed connection", s.Conn().RemoteMultiaddr())
	}
	got, _ := io.Copy(io.Discard, s)
	if got == 0 || got > limit {
		t.Fatalf("the relay carried %d bytes of the stream on a circuit limited to %d: want some, up to the limit", got, limit)
	}
	t.Logf("the relay cut the circuit after %d payload bytes (limit %d, framing included)", got, limit)
}
