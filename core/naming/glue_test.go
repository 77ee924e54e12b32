package naming

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
)

// TestResolveTakesHostAddressesFromGlue: the zone's host is a machine no
// DHT node can find (it runs no DHT, and the one node that met it forgot its
// addresses), so the only way a resolver gets its addresses is the glue the
// owner put beside the zone: the host's own signed peer record.
func TestResolveTakesHostAddressesFromGlue(t *testing.T) {
	nodes := newTestNetwork(t, 8, nil)
	owner, reader := nodes[0], nodes[7]
	hidden, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer hidden.Close()
	ctx := ctxFor(t, time.Minute)
	if err := owner.node.Host.Connect(ctx, peer.AddrInfo{ID: hidden.ID(), Addrs: hidden.Addrs()}); err != nil {
		t.Fatal(err)
	}
	book, _ := peerstore.GetCertifiedAddrBook(owner.node.Host.Peerstore())
	waitFor(t, 10*time.Second, "identify brings the host's signed peer record", func() error {
		if book.GetPeerRecord(hidden.ID()) == nil {
			return fmt.Errorf("no signed peer record of %s yet", hidden.ID())
		}
		return nil
	})
	claimName(t, owner, "glued.avtr", "glue")
	if _, err := owner.names.ChangeRecord(ctx, RecordChange{Name: "glued.avtr", Type: "HOST", Value: hidden.ID().String()}); err != nil {
		t.Fatal(err)
	}
	owner.node.Host.Network().ClosePeer(hidden.ID())
	owner.node.Host.Peerstore().RemovePeer(hidden.ID())
	owner.node.Host.Peerstore().ClearAddrs(hidden.ID())

	res, err := reader.names.Resolve(ctx, "glued.avtr")
	if err != nil {
		t.Fatal(err)
	}
	want := hidden.Addrs()[0].String()
	if len(res.Hosts) != 1 || res.Hosts[0].PeerID != hidden.ID().String() || !slices.Contains(res.Hosts[0].Addrs, want) {
		t.Fatalf("hosts %+v; want %s at %s, from the zone's glue", res.Hosts, hidden.ID(), want)
	}
	if got := reader.node.Host.Peerstore().Addrs(hidden.ID()); len(got) == 0 {
		t.Error("the glue's addresses did not reach the resolver's peerstore, for the dial that follows")
	}
}
