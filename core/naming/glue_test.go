package naming

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p"
	dhtpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/record"
	"github.com/multiformats/go-base32"
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
	back.ProtoReflect().SetUnknown(extra)
	got := glueOf(&back)
	if len(got) != maxGlue {
		t.Fatalf("read %d envelopes, want the first %d within bounds", len(got), maxGlue)
	}
	for _, g := range got {
		if !bytes.Equal(g, a) {
			t.Fatalf("read an envelope of %d bytes that was not glue within bounds", len(g))
		}
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
		sealPeerRecord(t, hostKey, hostID, 9, real),                                 // the host's, newest
		sealPeerRecord(t, attackerKey, hostID, uint64(time.Now().UnixNano()), trap), // forged: another key signed it
		sealPeerRecord(t, attackerKey, attackerID, 1, trap),                         // the attacker's own: not a host of the zone
		badSignature(sealPeerRecord(t, hostKey, hostID, 10, trap)),                  // newer, not signed by the host
		sealPeerRecord(t, hostKey, hostID, 5, old),                                  // the host's, older
		[]byte("not an envelope"),
	}
	glue = append(glue, sealPeerRecord(t, hostKey, hostID, uint64(time.Now().Add(time.Hour).UnixNano()), trap)) // dated ahead
	reversed := slices.Clone(glue)
	slices.Reverse(reversed)
	for _, order := range [][][]byte{glue, reversed} {
		got := gluedAddrs(checkGlue(offersOf(order), []peer.ID{hostID}))
		if len(got) != 1 || !slices.EqualFunc(got[hostID], []ma.Multiaddr{real}, ma.Multiaddr.Equal) {
			t.Fatalf("checked glue: %v, want only the host's newest address %s", got, real)
		}
	}
}

// A host whose key is not Ed25519 gets no glue: its record, however
// genuine, is not checked (an RSA key can be chosen to make checks slow).
func TestGlueOnlyForEd25519Hosts(t *testing.T) {
	rsaKey, _, err := crypto.GenerateRSAKeyPair(2048, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaID, _ := peer.IDFromPrivateKey(rsaKey)
	addr, _ := ma.NewMultiaddr("/ip4/127.0.0.1/tcp/4001")
	if got := checkGlue(offersOf([][]byte{sealPeerRecord(t, rsaKey, rsaID, 1, addr)}), []peer.ID{rsaID}); len(got) != 0 {
		t.Fatalf("an RSA host's record was taken as glue: %v", got)
	}
}

// badSignature is env with its signature's last byte flipped (an
// envelope's signature is its last field).
func badSignature(env []byte) []byte {
	out := bytes.Clone(env)
	out[len(out)-1] ^= 1
	return out
}

// Two holders among those that voted for a zone send sixteen records of
// the host with its key and a bad signature, each newer than the host's
// own, before the three honest holders' answers: what most holders sent
// is checked first, so the junk does not use up the checks.
func TestGlueMostHoldersSentIsCheckedFirst(t *testing.T) {
	hostKey, hostID := newKey(t)
	real, _ := ma.NewMultiaddr("/ip4/127.0.0.1/tcp/4001")
	trap, _ := ma.NewMultiaddr("/ip4/127.0.0.1/tcp/6666")
	honest := [][]byte{sealPeerRecord(t, hostKey, hostID, 9, real)}
	junk := func(from uint64) [][]byte {
		var out [][]byte
		for i := range uint64(maxGlue) {
			out = append(out, badSignature(sealPeerRecord(t, hostKey, hostID, from+i, trap)))
		}
		return out
	}
	lists := [][][]byte{junk(1 << 40), junk(1 << 41), honest, honest, honest}
	got := gluedAddrs(checkGlue(offersOf(lists...), []peer.ID{hostID}))
	if !slices.EqualFunc(got[hostID], []ma.Multiaddr{real}, ma.Multiaddr.Equal) {
		t.Fatalf("checked glue: %v, want the host's record the honest holders sent", got)
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

	// Later, the zone's TTL over and the connection gone: the reader knows
	// the owner, so the zone is a plain DHT get with no glue; the host's
	// record it kept serves as glue.
	reader.node.Host.Network().ClosePeer(h.ID())
	reader.names.dropCaches()
	if res, err = reader.names.Resolve(ctx, name); err != nil {
		t.Fatal(err)
	}
	if len(res.Hosts) != 1 || !slices.Equal(res.Hosts[0].Addrs, want) {
		t.Fatalf("again: hosts %+v, want %s at %v", res.Hosts, h.ID(), want)
	}
	if n := lookups.Load(); n != 0 {
		t.Fatalf("again: %d DHT lookups of the host's addresses; the record kept from the glue should have made them needless", n)
	}
}

// Holders next to a name (bare hosts speaking kad-dht by hand) answer the
// owner's real zone with glue of their making: a record of the host signed
// by the attacker's key, pointing at the attacker's listener, or the host's
// own record replayed from before it moved, its old address now refusing
// connections or swallowing them. The reader never dials the forged
// address and never lists a stale one: it lists the host where it is,
// reached through the address it knew already or through one DHT lookup,
// which starts while a dial to the tarpit still hangs.
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
	pit, pending := tarpitCountingOpen(t)
	cases := map[string]struct {
		glue       []byte
		knownAddrs bool // the reader knows the host's address, not connected
		lookups    int32
		tarpit     bool // the lookup must start while the dial hangs
	}{
		"forged by another key":       {glue: sealPeerRecord(t, attackerKey, h.ID(), uint64(time.Now().UnixNano())<<1, trap), lookups: 1},
		"replayed, stale":             {glue: sealPeerRecord(t, hostKey, h.ID(), 1, gone), lookups: 1},
		"replayed, stale, host known": {glue: sealPeerRecord(t, hostKey, h.ID(), 1, gone), knownAddrs: true},
		"replayed, at a tarpit":       {glue: sealPeerRecord(t, hostKey, h.ID(), 1, pit), lookups: 1, tarpit: true},
	}
	for what, c := range cases {
		t.Run(what, func(t *testing.T) {
			reader := newTestNode(t, testConfig(t, func(c *config.Config) { c.DHT.Mode = "client" }))
			for range 6 {
				holder := handKad(t, key, 4, func(req *dhtpb.Message) *dhtpb.Message {
					resp := &dhtpb.Message{Type: req.Type, Key: req.Key}
					switch req.Type {
					case dhtpb.Message_GET_VALUE:
						resp.Record = &recpb.Record{Key: []byte(key), Value: zone}
						setGlue(resp.Record, [][]byte{c.glue})
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
			if c.knownAddrs {
				reader.node.Host.Peerstore().AddAddrs(h.ID(), h.Addrs(), time.Hour)
			}
			var lookups atomic.Int32
			var beforeTheDialEnded atomic.Bool
			walk := reader.names.findPeerDHT
			reader.names.findPeerDHT = func(ctx context.Context, id peer.ID) (peer.AddrInfo, error) {
				lookups.Add(1)
				beforeTheDialEnded.Store(pending.Load() > 0)
				return walk(ctx, id)
			}
			res, err := reader.names.Resolve(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := res.Hosts[0].Addrs, addrStrings(h.Addrs()); !slices.Equal(got, want) {
				t.Fatalf("host listed at %v, want where it is: %v", got, want)
			}
			if lookups.Load() != c.lookups {
				t.Fatalf("%d DHT lookups of the host, want %d", lookups.Load(), c.lookups)
			}
			if known := reader.node.Host.Peerstore().Addrs(h.ID()); slices.ContainsFunc(known, gone.Equal) || slices.ContainsFunc(known, pit.Equal) {
				t.Fatalf("the reader keeps addresses only the glue gave, and that did not work: %v", known)
			}
			if c.tarpit && !beforeTheDialEnded.Load() {
				t.Fatal("the lookup waited for the dial to the tarpit to give up")
			}
			if n := dialed.Load(); n != 0 {
				t.Fatalf("the reader dialed the forged address %d times", n)
			}
		})
	}
}

// tarpitCountingOpen is a TCP address that accepts connections and never
// speaks, and counts those the dialer has not given up on yet.
func tarpitCountingOpen(t testing.TB) (ma.Multiaddr, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var open atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			open.Add(1)
			go func() {
				defer open.Add(-1)
				defer c.Close()
				io.Copy(io.Discard, c) // until the dialer closes
			}()
		}
	}()
	addr, _ := manet.FromNetAddr(ln.Addr())
	return addr, &open
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

// A bare host PUTs a name's real zone, the one its holder has, with glue
// of its making: nothing, junk in another field (32 KiB) and an envelope
// over the bound, the host's record signed by another key, the host's own
// record from before it moved or dated ahead. The holder keeps answering
// the owner's glue alone: a re-put of the same zone neither strips nor
// rolls it back. A newer record the host signed replaces it, and stays.
func TestHoldersKeepOnlyTheNewestCheckedGlue(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	nodes := newTestNetwork(t, 4, nil)
	owner, holder := nodes[0], nodes[1]
	const name = "junk.avtr"
	claimName(t, owner, name, "owner")
	h, hostKey := gluedHost(t, ctx, owner)
	if _, err := owner.names.ChangeRecord(ctx, RecordChange{Name: name, Type: "HOST", Value: h.ID().String()}); err != nil {
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
	raw := rawSender{h: attacker, proto: protocol.ID("/avtr/kad/1.0.0")}
	heldGlue := func() ([][]byte, int) {
		resp, err := raw.SendRequest(ctx, holder.id(), &dhtpb.Message{Type: dhtpb.Message_GET_VALUE, Key: []byte(key)})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(resp.GetRecord().GetValue(), zone) {
			t.Fatal("the holder does not answer the owner's zone")
		}
		return glueOf(resp.GetRecord()), len(resp.GetRecord().ProtoReflect().GetUnknown())
	}
	ownersGlue, _ := heldGlue()
	if len(ownersGlue) != 1 {
		t.Fatalf("the holder answers %d pieces of glue with the owner's zone, want the host's record", len(ownersGlue))
	}

	trap, _ := ma.NewMultiaddr("/ip4/127.0.0.1/tcp/6666")
	attackerKey, _ := newKey(t)
	var junk []byte
	junk = protowire.AppendTag(junk, 7, protowire.BytesType)
	junk = protowire.AppendBytes(junk, make([]byte, 32<<10))
	junk = protowire.AppendTag(junk, glueField, protowire.BytesType)
	junk = protowire.AppendBytes(junk, make([]byte, maxGlueEnvelope+1))
	withGlue := func(glue ...[]byte) []byte {
		r := &recpb.Record{}
		setGlue(r, glue)
		return r.ProtoReflect().GetUnknown()
	}
	// In order: each put leaves the holder answering want.
	newer := sealPeerRecord(t, hostKey, h.ID(), uint64(time.Now().UnixNano()), append(h.Addrs(), trap)...)
	future := sealPeerRecord(t, hostKey, h.ID(), uint64(time.Now().Add(time.Hour).UnixNano()), trap)
	puts := []struct {
		what  string
		extra []byte
		want  []byte
	}{
		{"nothing", nil, ownersGlue[0]},
		{"junk", junk, ownersGlue[0]},
		{"a record forged by another key", withGlue(sealPeerRecord(t, attackerKey, h.ID(), uint64(time.Now().UnixNano()), trap)), ownersGlue[0]},
		{"the host's key, a newer record, a bad signature", withGlue(badSignature(sealPeerRecord(t, hostKey, h.ID(), uint64(time.Now().UnixNano()), trap))), ownersGlue[0]},
		{"the host's record replayed, older", withGlue(sealPeerRecord(t, hostKey, h.ID(), 1, trap)), ownersGlue[0]},
		{"the host's record dated an hour ahead", withGlue(future), ownersGlue[0]},
		{"the host's newer record", withGlue(newer), newer},
		{"nothing, again", nil, newer},
		{"the owner's older record", withGlue(ownersGlue[0]), newer},
	}
	for _, p := range puts {
		rec := &recpb.Record{Key: []byte(key), Value: zone}
		rec.ProtoReflect().SetUnknown(p.extra)
		put := &dhtpb.Message{Type: dhtpb.Message_PUT_VALUE, Key: []byte(key), Record: rec}
		if _, err := raw.SendRequest(ctx, holder.id(), put); err != nil {
			t.Fatalf("%s: the holder refused the owner's zone: %v", p.what, err)
		}
		got, size := heldGlue()
		if len(got) != 1 || !bytes.Equal(got[0], p.want) || size > len(p.want)+8 {
			t.Fatalf("after a put with %s beside the zone, the holder answers %d bytes beyond the schema (%d pieces of glue); want the newest of the host's own records alone",
				p.what, size, len(got))
		}
	}

	// Glue stored unchecked (by an older version, say): the next put of the
	// zone checks it again, and the bad record goes.
	bad := badSignature(sealPeerRecord(t, hostKey, h.ID(), uint64(time.Now().UnixNano()), trap))
	stored := &recpb.Record{Key: []byte(key), Value: zone, TimeReceived: time.Now().UTC().Format(time.RFC3339Nano)}
	setGlue(stored, [][]byte{bad})
	b, err := proto.Marshal(stored)
	if err != nil {
		t.Fatal(err)
	}
	dsKey := ds.NewKey("/dht/" + names.ZoneNamespace + "/" + base32.RawStdEncoding.EncodeToString([]byte(key)))
	if err := holder.store.Put(ctx, dsKey, b); err != nil {
		t.Fatal(err)
	}
	if got, _ := heldGlue(); len(got) != 1 || !bytes.Equal(got[0], bad) {
		t.Fatal("the record written straight to the holder's store is not the one it answers")
	}
	rec := &recpb.Record{Key: []byte(key), Value: zone}
	setGlue(rec, ownersGlue)
	if _, err := raw.SendRequest(ctx, holder.id(), &dhtpb.Message{Type: dhtpb.Message_PUT_VALUE, Key: []byte(key), Record: rec}); err != nil {
		t.Fatal(err)
	}
	if got, _ := heldGlue(); len(got) != 1 || !bytes.Equal(got[0], ownersGlue[0]) {
		t.Fatalf("after glue stored unchecked, the holder answers %d pieces of glue; want the owner's record, the only valid one", len(got))
	}
}
