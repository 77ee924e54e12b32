package naming

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	dhtpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/record"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/avnode/avnode/core/config"
	"github.com/avnode/avnode/core/names"
)

// sealPeerRecord is a signed peer record, as identify exchanges it: about
// id, at addrs, signed by signer (the attacker's key, to forge one).
func sealPeerRecord(t testing.TB, signer crypto.PrivKey, id peer.ID, seq uint64, addrs ...ma.Multiaddr) []byte {
	t.Helper()
	env, err := record.Seal(&peer.PeerRecord{PeerID: id, Addrs: addrs, Seq: seq}, signer)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newKey(t testing.TB) (crypto.PrivKey, peer.ID) {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(priv)
	return priv, id
}

// The glue field survives a record's trip through protobuf; a record
// carrying more than its bounds, or other fields, gives only the glue
// within them.
func TestGlueRidesInTheRecordWithinBounds(t *testing.T) {
	rec := &recpb.Record{Key: []byte("/avtr-zone/x.avtr"), Value: []byte("zone")}
	a, b := bytes.Repeat([]byte{1}, 100), bytes.Repeat([]byte{2}, maxGlueEnvelope)
	setGlue(rec, [][]byte{a, b})
	wire, err := proto.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	var back recpb.Record
	if err := proto.Unmarshal(wire, &back); err != nil {
		t.Fatal(err)
	}
	if got := glueOf(&back); len(got) != 2 || !bytes.Equal(got[0], a) || !bytes.Equal(got[1], b) {
		t.Fatalf("glue after a round trip: %d envelopes, want the 2 set", len(got))
	}

	// A peer's record: junk in another field, an envelope over the bound,
	// and more envelopes than a resolve looks hosts up for.
	var extra []byte
	extra = protowire.AppendTag(extra, 7, protowire.BytesType)
	extra = protowire.AppendBytes(extra, make([]byte, 32<<10))
	extra = protowire.AppendTag(extra, glueField, protowire.BytesType)
	extra = protowire.AppendBytes(extra, make([]byte, maxGlueEnvelope+1))
	for range maxGlue + 3 {
		extra = protowire.AppendTag(extra, glueField, protowire.BytesType)
		extra = protowire.AppendBytes(extra, a)
	}
	back.ProtoReflect().SetUnknown(append(back.ProtoReflect().GetUnknown(), extra...))
	keepOnlyGlue(&back)
	if got := glueOf(&back); len(got) != maxGlue {
		t.Fatalf("kept %d envelopes, want the first %d within bounds", len(got), maxGlue)
	}
	if size := len(back.ProtoReflect().GetUnknown()); size > maxGlue*(maxGlueEnvelope+8) {
		t.Fatalf("%d bytes kept beyond the schema: the junk was kept", size)
	}
	// A malformed tail is ignored, not a panic.
	back.ProtoReflect().SetUnknown([]byte{0xff, 0xff, 0xff})
	if got := glueOf(&back); len(got) != 0 {
		t.Fatalf("glue from a malformed tail: %d envelopes", len(got))
	}
}

// A resolver takes a host's addresses only from a record that host signed,
// about itself, for a host the zone names; of several, the newest.
func TestGlueIsCheckedAgainstTheHostsKey(t *testing.T) {
	hostKey, hostID := newKey(t)
	attackerKey, attackerID := newKey(t)
	real, _ := ma.NewMultiaddr("/ip4/127.0.0.1/tcp/4001")
	old, _ := ma.NewMultiaddr("/ip4/127.0.0.1/tcp/4000")
	trap, _ := ma.NewMultiaddr("/ip4/127.0.0.1/tcp/6666")
	glue := [][]byte{
		sealPeerRecord(t, attackerKey, hostID, 1<<62, trap), // forged: another key signed it
		sealPeerRecord(t, attackerKey, attackerID, 1, trap), // the attacker's own: not a host of the zone
		sealPeerRecord(t, hostKey, hostID, 5, old),          // the host's, older
		sealPeerRecord(t, hostKey, hostID, 9, real),         // the host's, newest
		[]byte("not an envelope"),
	}
	got := checkGlue(glue, []peer.ID{hostID})
	if len(got) != 1 || !slices.EqualFunc(got[hostID], []ma.Multiaddr{real}, ma.Multiaddr.Equal) {
		t.Fatalf("checked glue: %v, want only the host's newest address %s", got, real)
	}
}

// gluedHost is a host (a bare libp2p host, no DHT) the owner is connected
// to, so that the owner holds its signed peer record from identify.
func gluedHost(t *testing.T, ctx context.Context, owner *testNode) (host.Host, crypto.PrivKey) {
	t.Helper()
	priv, _ := newKey(t)
	h, err := libp2p.New(libp2p.Identity(priv), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if err := owner.node.Host.Connect(ctx, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the host's signed peer record at the owner", func() error {
		if owner.names.peerRecord(h.ID()) == nil {
			return errors.New("not yet")
		}
		return nil
	})
	return h, priv
}

// countFindPeers counts the DHT peer lookups tn's resolves start.
func countFindPeers(tn *testNode) *atomic.Int32 {
	var n atomic.Int32
	walk := tn.names.findPeerDHT
	tn.names.findPeerDHT = func(ctx context.Context, id peer.ID) (peer.AddrInfo, error) {
		n.Add(1)
		return walk(ctx, id)
	}
	return &n
}

// A name hosted on a machine the reader never met: the zone's holders (real
// kad-dht nodes) answer the host's signed peer record beside the zone, and
// the reader dials the host there, with no DHT walk for its addresses.
func TestResolveDialsTheHostFromItsGlue(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	nodes := newTestNetwork(t, 5, nil)
	owner := nodes[0]
	const name = "glued.avtr"
	claimName(t, owner, name, "owner")
	h, _ := gluedHost(t, ctx, owner)
	if _, err := owner.names.ChangeRecord(ctx, RecordChange{Name: name, Type: "HOST", Value: h.ID().String()}); err != nil {
		t.Fatal(err)
	}
	reader := newTestNode(t, testConfig(t, func(c *config.Config) { c.DHT.Mode = "client" }))
	for _, holder := range nodes[1:] {
		linkInRoutingTable(t, ctx, reader, holder.node.Host, "a holder")
	}
	if reader.node.Host.Network().Connectedness(h.ID()) == network.Connected {
		t.Fatal("the reader is connected to the host already")
	}
	lookups := countFindPeers(reader)
	res, err := reader.names.Resolve(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	want := addrStrings(h.Addrs())
	if len(res.Hosts) != 1 || !slices.Equal(res.Hosts[0].Addrs, want) {
		t.Fatalf("hosts %+v, want %s at %v", res.Hosts, h.ID(), want)
	}
	if n := lookups.Load(); n != 0 {
		t.Fatalf("%d DHT lookups of the host's addresses; the glue should have made them needless", n)
	}
	if reader.node.Host.Network().Connectedness(h.ID()) != network.Connected {
		t.Fatal("the reader did not dial the host at its glued addresses")
	}
}

// Holders next to a name (bare hosts speaking kad-dht by hand) answer the
// owner's real zone with glue of their making: a record of the host signed
// by the attacker's key, pointing at the attacker's listener, and the host's
// own record replayed from before it moved. The reader dials neither the
// forged address nor keeps the stale one: it looks the host up in the DHT
// and lists where it is.
func TestHostileGlueFallsBackToTheLookup(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	nodes := newTestNetwork(t, 4, nil)
	owner := nodes[0]
	const name = "unglued.avtr"
	claimName(t, owner, name, "owner")
	h, hostKey := gluedHost(t, ctx, owner)
	if _, err := owner.names.ChangeRecord(ctx, RecordChange{Name: name, Type: "HOST", Value: h.ID().String()}); err != nil {
		t.Fatal(err)
	}
	key := names.ZoneKey(ownersName(t, name))
	zone := storedOwnZone(t, owner, name)

	trap, dialed := listenerCountingDials(t)
	gone := closedPort(t)
	attackerKey, _ := newKey(t)
	cases := map[string][]byte{
		"forged by another key": sealPeerRecord(t, attackerKey, h.ID(), uint64(time.Now().UnixNano())<<1, trap),
		"replayed, stale":       sealPeerRecord(t, hostKey, h.ID(), 1, gone),
	}
	for what, glue := range cases {
		t.Run(what, func(t *testing.T) {
			reader := newTestNode(t, testConfig(t, func(c *config.Config) { c.DHT.Mode = "client" }))
			for range 6 {
				holder := handKad(t, key, 4, func(req *dhtpb.Message) *dhtpb.Message {
					resp := &dhtpb.Message{Type: req.Type, Key: req.Key}
					switch req.Type {
					case dhtpb.Message_GET_VALUE:
						resp.Record = &recpb.Record{Key: []byte(key), Value: zone}
						setGlue(resp.Record, [][]byte{glue})
					case dhtpb.Message_FIND_NODE:
						if peer.ID(req.Key) == h.ID() { // the DHT knows where the host is
							resp.CloserPeers = []*dhtpb.Message_Peer{peerInfo(h)}
						}
					}
					return resp
				})
				linkInRoutingTable(t, ctx, reader, holder, "a hostile holder")
			}
			if reader.node.Host.Network().Connectedness(h.ID()) == network.Connected {
				t.Fatal("the reader is connected to the host already")
			}
			lookups := countFindPeers(reader)
			res, err := reader.names.Resolve(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := res.Hosts[0].Addrs, addrStrings(h.Addrs()); !slices.Equal(got, want) {
				t.Fatalf("host listed at %v, want where it is: %v", got, want)
			}
			if lookups.Load() != 1 {
				t.Fatalf("%d DHT lookups of the host, want the one the bad glue left", lookups.Load())
			}
			if n := dialed.Load(); n != 0 {
				t.Fatalf("the reader dialed the forged address %d times", n)
			}
		})
	}
}

// listenerCountingDials is a TCP address that counts the connections made
// to it, and accepts them.
func listenerCountingDials(t testing.TB) (ma.Multiaddr, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	addr, _ := manet.FromNetAddr(ln.Addr())
	return addr, &n
}

// closedPort is a loopback TCP address nobody listens on any more, as a
// host's old port after it restarted.
func closedPort(t testing.TB) ma.Multiaddr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := manet.FromNetAddr(ln.Addr())
	ln.Close()
	return addr
}

// A bare host PUTs a name's real zone to a holder with junk beyond the
// record schema (32 KiB in another field, an envelope over the bound) and
// one piece of glue: the holder stores and answers the glue alone.
func TestHoldersKeepOnlyGlue(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	nodes := newTestNetwork(t, 4, nil)
	owner, holder := nodes[0], nodes[1]
	const name = "junk.avtr"
	claimName(t, owner, name, "owner")
	if _, err := owner.names.ChangeRecord(ctx, RecordChange{Name: name, Type: "TXT", Value: "up"}); err != nil {
		t.Fatal(err)
	}
	key := names.ZoneKey(ownersName(t, name))
	zone := storedOwnZone(t, owner, name)

	attacker, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	if err := attacker.Connect(ctx, peer.AddrInfo{ID: holder.id(), Addrs: holder.node.Host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	glue := bytes.Repeat([]byte{7}, 64)
	rec := &recpb.Record{Key: []byte(key), Value: zone}
	var extra []byte
	extra = protowire.AppendTag(extra, 7, protowire.BytesType)
	extra = protowire.AppendBytes(extra, make([]byte, 32<<10))
	extra = protowire.AppendTag(extra, glueField, protowire.BytesType)
	extra = protowire.AppendBytes(extra, make([]byte, maxGlueEnvelope+1))
	extra = protowire.AppendTag(extra, glueField, protowire.BytesType)
	extra = protowire.AppendBytes(extra, glue)
	rec.ProtoReflect().SetUnknown(extra)

	raw := rawSender{h: attacker, proto: protocol.ID("/avtr/kad/1.0.0")}
	put := &dhtpb.Message{Type: dhtpb.Message_PUT_VALUE, Key: []byte(key), Record: rec}
	if _, err := raw.SendRequest(ctx, holder.id(), put); err != nil {
		t.Fatalf("the holder refused the real zone: %v", err)
	}
	resp, err := raw.SendRequest(ctx, holder.id(), &dhtpb.Message{Type: dhtpb.Message_GET_VALUE, Key: []byte(key)})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(resp.GetRecord().GetValue(), zone) {
		t.Fatal("the holder does not answer the zone it took")
	}
	kept := resp.GetRecord().ProtoReflect().GetUnknown()
	if got := glueOf(resp.GetRecord()); len(got) != 1 || !bytes.Equal(got[0], glue) || len(kept) > len(glue)+8 {
		t.Fatalf("the holder answers %d bytes beyond the schema (%d pieces of glue); want the one piece of glue alone", len(kept), len(got))
	}
}
