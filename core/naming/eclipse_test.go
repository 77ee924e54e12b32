package naming

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"strings"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	dhtpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio/pbio"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/avnode/avnode/core/config"
	"github.com/avnode/avnode/core/names"
)

// anything is the attacker's validator: its DHT stores and serves whatever
// it is given, as a hostile node would.
type anything struct{}

func (anything) Validate(string, []byte) error        { return nil }
func (anything) Select(string, [][]byte) (int, error) { return 0, nil }

// closeKey mints node keys until one's Kademlia ID shares at least cpl
// leading bits with target's: placing a node next to a name costs the
// attacker 2^cpl key generations, nothing more.
func closeKey(t testing.TB, target string, cpl int) crypto.PrivKey {
	t.Helper()
	want := sha256.Sum256([]byte(target))
	for range 1 << (cpl + 8) {
		k, _, _ := crypto.GenerateEd25519Key(nil)
		id, _ := peer.IDFromPrivateKey(k)
		got := sha256.Sum256([]byte(id))
		if commonPrefix(want[:], got[:]) >= cpl {
			return k
		}
	}
	t.Fatal("no close key found")
	return nil
}

func commonPrefix(a, b []byte) int {
	for i := range a {
		if x := a[i] ^ b[i]; x != 0 {
			return i*8 + bits.LeadingZeros8(x)
		}
	}
	return len(a) * 8
}

// hostileHolder is a bare go-libp2p host running the kad-dht library on the
// avtr prefix, placed next to key, holding the rival's records.
func hostileHolder(t testing.TB, key string, records map[string][]byte) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.Identity(closeKey(t, key, 10)), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	kad, err := dht.New(h, dht.Mode(dht.ModeServer), dht.ProtocolPrefix("/avtr"),
		dht.Validator(anything{}), dht.Datastore(dssync.MutexWrap(ds.NewMapDatastore())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kad.Close(); h.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for k, v := range records {
		kad.PutValue(ctx, k, v) // no peers yet: it only stores locally
	}
	return h
}

// The attacker runs k of the 20 nodes closest to a name (minted IDs next to
// its zone key, started after the claim), each answering with its own key's
// claim and zone. Resolvers that never saw the name decide by the closest
// holders' agreement: the owner keeps the name while the honest holders
// among the 20 outnumber the attacker's; at k = 10 the holders are split and
// resolvers refuse to trust either; from k = 11 the attacker has it. Nodes
// that knew the owner before keep it at every k. One network of 24 honest
// nodes; the attacker adds nodes between the stages.
func TestAttackerAmongTheClosestHolders(t *testing.T) {
	nodes := newTestNetwork(t, 24, nil)
	owner := nodes[0]
	const name = "contested.avtr"
	n, _ := names.Parse(name)
	claimed := claimName(t, owner, name, "owner")
	ctx := ctxFor(t, 4*time.Minute)
	if _, err := owner.names.ChangeRecord(ctx, RecordChange{Name: name, Type: "TXT", Value: "owner"}); err != nil {
		t.Fatal(err)
	}
	if held := holdersOf(t, nodes, names.ZoneKey(n)); len(held) < 20 {
		t.Fatalf("only %d honest nodes hold the zone", len(held))
	}
	e := &eclipse{t: t, ctx: ctx, honest: nodes, name: n, owner: claimed.Key, rival: mintRival(t, n), hostile: map[peer.ID]bool{}}
	for _, stage := range []struct {
		k       int
		outcome string // owner, disputed, attacker
	}{{5, "owner"}, {9, "owner"}, {10, "disputed"}, {11, "attacker"}} {
		e.grow(stage.k)
		got := e.freshResolves(3)
		t.Logf("k=%d of the 20 closest: fresh resolvers got %v", stage.k, got)
		if got[stage.outcome]+got[stage.outcome+", disagreement reported"] != 3 {
			t.Errorf("k=%d: fresh resolvers got %v, want all %s", stage.k, got, stage.outcome)
		}
		e.knownOwnerHolds()
		if stage.outcome == "owner" {
			e.freshRecordGet()
		}
	}
}

// freshRecordGet: a raw get of the zone's key (avnode routing get, a role's
// GetRecord) by a node that never saw the name keeps to the same rule: the
// owner's zone, not the DHT's pick among rival owners.
func (e *eclipse) freshRecordGet() {
	t := e.t
	reader := newTestNode(t, testConfig(t, func(c *config.Config) { c.DHT.Mode = "client" }))
	for _, tn := range e.honest[1:4] {
		if err := reader.node.Host.Connect(e.ctx, peer.AddrInfo{ID: tn.id(), Addrs: tn.node.Host.Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	<-reader.node.DHT.ForceRefresh()
	value, err := reader.names.GetRecord(e.ctx, names.ZoneKey(e.name))
	if err != nil {
		t.Fatalf("k=%d: fresh record get: %v", len(e.hosts), err)
	}
	z, err := names.DecodeZone(value)
	if err != nil || names.KeyID(z.Owner) != e.owner {
		t.Fatalf("k=%d: a fresh record get returned another owner's zone (%v)", len(e.hosts), err)
	}
}

// eclipse is one network under the attack of the test above.
type eclipse struct {
	t       *testing.T
	ctx     context.Context
	honest  []*testNode
	name    names.Name
	owner   string
	rival   rivalRecords
	hosts   []host.Host
	hostile map[peer.ID]bool
}

// grow adds hostile holders until there are k. They know each other and
// every honest node, so that each lookup near the name meets all of them.
func (e *eclipse) grow(k int) {
	t := e.t
	n := e.name
	for len(e.hosts) < k {
		h := hostileHolder(t, names.ZoneKey(n), map[string][]byte{names.ClaimKey(n): e.rival.claim, names.ZoneKey(n): e.rival.zone})
		for _, tn := range e.honest {
			if err := h.Connect(e.ctx, peer.AddrInfo{ID: tn.id(), Addrs: tn.node.Host.Addrs()}); err != nil {
				t.Fatal(err)
			}
		}
		for _, other := range e.hosts {
			if err := h.Connect(e.ctx, peer.AddrInfo{ID: other.ID(), Addrs: other.Addrs()}); err != nil {
				t.Fatal(err)
			}
		}
		e.hosts = append(e.hosts, h)
		e.hostile[h.ID()] = true
	}
}

// freshResolves counts what resolvers that never saw the name get (DHT
// clients, so they change no routing table): owner, attacker, disputed or
// another error.
func (e *eclipse) freshResolves(count int) map[string]int {
	t, ctx, key, k := e.t, e.ctx, names.ZoneKey(e.name), len(e.hosts)
	got := map[string]int{}
	clients := testConfig(t, func(c *config.Config) { c.DHT.Mode = "client" })
	for range count {
		reader := newTestNode(t, clients)
		for _, tn := range e.honest[1:4] {
			if err := reader.node.Host.Connect(ctx, peer.AddrInfo{ID: tn.id(), Addrs: tn.node.Host.Addrs()}); err != nil {
				t.Fatal(err)
			}
		}
		// The premise: k of the 20 peers the reader finds closest to the
		// name are the attacker's.
		waitFor(t, 30*time.Second, "the hostile holders among the closest", func() error {
			closest, err := reader.node.DHT.GetClosestPeers(ctx, key)
			seen := 0
			for _, id := range closest {
				if e.hostile[id] {
					seen++
				}
			}
			if seen != k || len(closest) != 20 {
				return fmt.Errorf("%d hostile of %d closest (%v)", seen, len(closest), err)
			}
			return nil
		})
		res, err := reader.names.Resolve(ctx, e.name.String())
		o := outcome(res, err, e.owner, e.rival.id)
		label := o
		// A resolve that heard holders name another key says so. (A poll
		// decided before their answers came in has not heard them.)
		if err == nil && res.Disputed != "" {
			loser := map[string]string{"owner": e.rival.id, "attacker": e.owner}[o]
			if !strings.Contains(res.Disputed, "key "+loser+" held by ") {
				t.Errorf("k=%d: the resolve reports a disagreement without the other key: %q", k, res.Disputed)
			}
			label += ", disagreement reported"
		}
		got[label]++
	}
	return got
}

// knownOwnerHolds: nodes that knew the owner before the attack resolve as
// before, at any k: their DHT lookups drop every value by another key.
func (e *eclipse) knownOwnerHolds() {
	for _, tn := range e.honest[1:6] {
		tn.names.mu.Lock()
		delete(tn.names.zoneCache, e.name.String()) // a network lookup, not the cache
		tn.names.mu.Unlock()
		res, err := tn.names.Resolve(e.ctx, e.name.String())
		if o := outcome(res, err, e.owner, e.rival.id); o != "owner" {
			e.t.Errorf("k=%d: node %s, which knew the owner, now gets %s", len(e.hosts), tn.id(), o)
		}
	}
}

func outcome(res *Resolution, err error, owner, rival string) string {
	switch {
	case err == nil && res.Key == owner:
		return "owner"
	case err == nil && res.Key == rival:
		return "attacker"
	case errors.Is(err, names.ErrDisputed):
		return "disputed"
	}
	return fmt.Sprintf("error: %v (%+v)", err, res)
}

// rivalRecords is an outsider's own claim and zone for a name.
type rivalRecords struct {
	id          string
	claim, zone []byte
}

func mintRival(t testing.TB, n names.Name) rivalRecords {
	t.Helper()
	key, _, _ := crypto.GenerateEd25519Key(nil)
	c, err := names.MintClaim(context.Background(), n, key, 8, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	claim, _ := c.Marshal()
	z := &names.Zone{Name: n, Seq: 1 << 40, Expiry: time.Now().Add(time.Hour), TTL: time.Minute, Claim: c,
		Records: []names.Record{{Type: names.TypeTXT, Value: "pwned"}}}
	zone, err := z.Sign(key)
	if err != nil {
		t.Fatal(err)
	}
	return rivalRecords{id: names.KeyID(key.GetPublic()), claim: claim, zone: zone}
}

// tarpit accepts TCP connections and never says a word: a peer address
// that costs a dialer its whole timeout.
func tarpit(t testing.TB) ma.Multiaddr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	addr, _ := manet.FromNetAddr(ln.Addr())
	return addr
}

// handKad is a bare host next to key (sharing cpl leading bits with it)
// speaking kad-dht's protocol by hand: answer makes the reply to each
// request, or nil to answer nothing and drop the stream once the asker
// gives up.
func handKad(t testing.TB, key string, cpl int, answer func(req *dhtpb.Message) *dhtpb.Message) host.Host {
	t.Helper()
	return handKadStalling(t, key, cpl, answer, func(*dhtpb.Message) {})
}

// handKadStalling is handKad, told (gaveUp) of each request it answered
// nothing to once the asker gave up on it.
func handKadStalling(t testing.TB, key string, cpl int, answer func(req *dhtpb.Message) *dhtpb.Message, gaveUp func(req *dhtpb.Message)) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.Identity(closeKey(t, key, cpl)), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	h.SetStreamHandler("/avtr/kad/1.0.0", func(s network.Stream) {
		defer s.Close()
		for {
			var req dhtpb.Message
			if err := pbio.NewDelimitedReader(s, 1<<20).ReadMsg(&req); err != nil {
				return
			}
			resp := answer(&req)
			if resp == nil {
				s.Read(make([]byte, 1)) // until the asker gives up and resets
				gaveUp(&req)
				return
			}
			if err := pbio.NewDelimitedWriter(s).WriteMsg(resp); err != nil {
				return
			}
		}
	})
	return h
}

// liar is one bare host next to key speaking kad-dht's protocol by hand: to
// every request it answers the rival's record and k made-up peers closer to
// the key than any honest node, all at a tarpit.
func liar(t testing.TB, key string, value []byte) host.Host {
	t.Helper()
	pit := tarpit(t)
	var fakes []dhtpb.Message_Peer
	for range 20 {
		id, _ := peer.IDFromPrivateKey(closeKey(t, key, 8))
		fakes = append(fakes, dhtpb.Message_Peer{Id: []byte(id), Addrs: [][]byte{pit.Bytes()}})
	}
	return handKad(t, key, 12, func(req *dhtpb.Message) *dhtpb.Message {
		resp := &dhtpb.Message{Type: req.Type, Key: req.Key}
		for i := range fakes {
			resp.CloserPeers = append(resp.CloserPeers, &fakes[i])
		}
		if req.Type == dhtpb.Message_GET_VALUE {
			resp.Record = &recpb.Record{Key: []byte(key), Value: value}
		}
		return resp
	})
}

// One liar next to a claimed name answers every poll with the rival's zone
// and twenty silent made-up peers closer than anyone: the made-up peers
// drop out as they fail to answer, the liar's one vote is no quorum, so a
// node that joined after the claim refuses the rival's PUT and a fresh
// resolver never gets the rival (it gets the owner, or nothing while the
// liar keeps its poll waiting).
func TestLiarWithMadeUpCloserPeersTakesNothing(t *testing.T) {
	nodes := newTestNetwork(t, 10, nil)
	const name = "lied.avtr"
	n, _ := names.Parse(name)
	claimed := claimName(t, nodes[0], name, "owner")
	ctx := ctxFor(t, 2*time.Minute)
	if _, err := nodes[0].names.ChangeRecord(ctx, RecordChange{Name: name, Type: "TXT", Value: "owner"}); err != nil {
		t.Fatal(err)
	}
	r := mintRival(t, n)
	l := liar(t, names.ZoneKey(n), r.zone)
	late := newTestNode(t, testConfig(t, nil))
	client := newTestNode(t, testConfig(t, func(c *config.Config) { c.DHT.Mode = "client" }))
	for _, tn := range []*testNode{late, client} {
		for _, other := range nodes[:3] {
			if err := tn.node.Host.Connect(ctx, peer.AddrInfo{ID: other.id(), Addrs: other.node.Host.Addrs()}); err != nil {
				t.Fatal(err)
			}
		}
		linkInRoutingTable(t, ctx, tn, l, "the liar")
	}
	putter := newTestNode(t, testConfig(t, nil))
	if err := putter.node.Host.Connect(ctx, peer.AddrInfo{ID: late.id(), Addrs: late.node.Host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	sender, _ := dhtpb.NewProtocolMessenger(rawSender{h: putter.node.Host, proto: "/avtr/kad/1.0.0"})
	if err := sender.PutValue(ctx, late.id(), &recpb.Record{Key: []byte(names.ZoneKey(n)), Value: r.zone}); err == nil {
		t.Error("the late node stored the rival's zone")
	}
	if held, _ := late.names.owners.Known(ctx, n); held != nil && names.KeyID(held.Owner) == r.id {
		t.Fatal("the late node now binds the rival")
	}
	res, err := client.names.Resolve(ctx, name)
	switch {
	case err == nil && res.Key != claimed.Key:
		t.Fatalf("a fresh resolver got key %s, want the owner %s", res.Key, claimed.Key)
	case err == nil:
		t.Logf("fresh resolver: the owner (%s)", res.Disputed)
	default:
		t.Logf("fresh resolver: %v", err)
	}
}

// linkInRoutingTable connects tn to h and waits until h is in tn's routing
// table.
func linkInRoutingTable(t testing.TB, ctx context.Context, tn *testNode, h host.Host, what string) {
	t.Helper()
	if err := tn.node.Host.Connect(ctx, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, what+" in the routing table", func() error {
		if tn.node.DHT.RoutingTable().Find(h.ID()) == "" {
			return fmt.Errorf("not yet")
		}
		return nil
	})
}
