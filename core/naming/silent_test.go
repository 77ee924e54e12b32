package naming

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dhtpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	kb "github.com/libp2p/go-libp2p-kbucket"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/avnode/avnode/core/config"
	"github.com/avnode/avnode/core/names"
)

// silentHolder is a bare host next to key speaking kad-dht's protocol by
// hand, as a machine gone without a goodbye looks to a peer still connected
// to it: it answers the routing table's FIND_NODE checks, then never
// answers a GET_VALUE. asked counts the GET_VALUEs it was sent.
func silentHolder(t testing.TB, key string, asked *sync.Map) host.Host {
	t.Helper()
	return handKad(t, key, 10, func(req *dhtpb.Message) *dhtpb.Message {
		if req.Type == dhtpb.Message_GET_VALUE {
			asked.Store(string(req.Key), true)
			return nil
		}
		return &dhtpb.Message{Type: req.Type, Key: req.Key}
	})
}

// Seven silent holders sit among a fresh resolver's closest peers, on
// connections that look open. The first resolve waits on them (six honest
// holders are no majority of thirteen) until each fails to answer; the
// resolver then drops them from its routing table and skips them, so the
// next resolve, of another name, asks none of them again. Before, every
// poll asked them again and waited pollWait (5 s) on them each time: what
// held resolves up while 10 % of a network restarted.
func TestPollsSkipHoldersThatWentSilent(t *testing.T) {
	nodes := newTestNetwork(t, 6, nil)
	ctx := ctxFor(t, 2*time.Minute)
	claimed := map[string]string{}
	for i, name := range []string{"quiet.avtr", "quieter.avtr"} {
		claimed[name] = claimName(t, nodes[i], name, "owner").Key
		if _, err := nodes[i].names.ChangeRecord(ctx, RecordChange{Name: name, Type: "TXT", Value: "up"}); err != nil {
			t.Fatal(err)
		}
	}
	first, _ := names.Parse("quiet.avtr")
	client := newTestNode(t, testConfig(t, func(c *config.Config) { c.DHT.Mode = "client" }))
	for _, other := range nodes[:3] {
		if err := client.node.Host.Connect(ctx, peer.AddrInfo{ID: other.id(), Addrs: other.node.Host.Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	asked := make([]sync.Map, 7)
	silent := make([]peer.ID, len(asked))
	for i := range asked {
		h := silentHolder(t, names.ZoneKey(first), &asked[i])
		linkInRoutingTable(t, ctx, client, h, "the silent holder")
		silent[i] = h.ID()
	}
	resolve := func(name string) {
		res, err := client.names.Resolve(ctx, name)
		if err != nil {
			t.Fatalf("resolve %s: %v", name, err)
		}
		if res.Key != claimed[name] {
			t.Fatalf("resolve %s: key %s, want the owner's %s", name, res.Key, claimed[name])
		}
	}
	wasAsked := func(i int, name string) bool {
		n, _ := names.Parse(name)
		_, ok := asked[i].Load(names.ZoneKey(n))
		return ok
	}
	resolve("quiet.avtr")
	for i := range asked {
		if !wasAsked(i, "quiet.avtr") {
			t.Fatalf("silent holder %d was never asked: the poll did not wait on it", i)
		}
	}
	// The poll is decided once two of them fail; the others' questions
	// run out their time a moment later.
	waitFor(t, 10*time.Second, "the silent holders noted", func() error {
		for i, id := range silent {
			if _, noted := client.names.silent.Get(id); !noted {
				return fmt.Errorf("silent holder %d is not", i)
			}
		}
		return nil
	})
	resolve("quieter.avtr")
	for i := range asked {
		if wasAsked(i, "quieter.avtr") {
			t.Errorf("silent holder %d was asked again by the next resolve", i)
		}
	}
}

// A fresh resolver's 20 closest peers are eight holders that never answer,
// eight that answer the owner's zone and name eight more peers beyond them,
// and four of those (which answer, holding nothing). Eight votes of twenty
// decide nothing while the eight silent ones may still answer, so the poll
// waits until they fail; once they are late it asks the peers beyond the
// 20 beside them, so that the answers replacing them are in when they fail.
// Before, it asked those peers only after the silent ones had failed: a
// second wave of dead peers among them cost a second pollWait, which ran a
// resolve out of its time under churn. Who decides is unchanged: the
// silent ones count as pending until they fail.
func TestPollAsksBeyondLateHolders(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	const name = "beyond.avtr"
	want, key, zone, client := publishedForAFreshClient(t, name)

	var silent []peer.ID
	var silentMu sync.Mutex
	anySilentFailed := func() bool {
		silentMu.Lock()
		defer silentMu.Unlock()
		for _, id := range silent {
			if _, failed := client.names.silent.Get(id); failed {
				return true
			}
		}
		return false
	}
	// The peers beyond: asked at all, and asked after a silent one failed.
	const beyond = 8
	var asked, askedLate sync.Map
	var beyondInfos []*dhtpb.Message_Peer
	for range beyond {
		var self atomic.Value // its own ID, set once it exists
		h := handKad(t, key, 6, func(req *dhtpb.Message) *dhtpb.Message {
			if id, ok := self.Load().(peer.ID); ok && req.Type == dhtpb.Message_GET_VALUE {
				asked.Store(id, true)
				if anySilentFailed() {
					askedLate.Store(id, true)
				}
			}
			return &dhtpb.Message{Type: req.Type, Key: req.Key}
		})
		self.Store(h.ID())
		beyondInfos = append(beyondInfos, peerInfo(h))
	}
	for range 8 {
		h := handKad(t, key, 8, func(req *dhtpb.Message) *dhtpb.Message {
			resp := &dhtpb.Message{Type: req.Type, Key: req.Key}
			if req.Type == dhtpb.Message_GET_VALUE {
				resp.Record = &recpb.Record{Key: []byte(key), Value: zone}
				resp.CloserPeers = beyondInfos
			}
			return resp
		})
		linkInRoutingTable(t, ctx, client, h, "an answering holder")
	}
	var neverAsked sync.Map
	for range 8 {
		h := silentHolder(t, key, &neverAsked)
		linkInRoutingTable(t, ctx, client, h, "a silent holder")
		silentMu.Lock()
		silent = append(silent, h.ID())
		silentMu.Unlock()
	}

	res, err := client.names.Resolve(ctx, name)
	if err != nil {
		t.Fatalf("resolve with 8 silent holders among the 20 closest: %v", err)
	}
	if res.Key != want {
		t.Fatalf("resolved to key %s, want the owner's %s", res.Key, want)
	}
	if !anySilentFailed() {
		t.Fatal("the poll decided before a silent holder failed: eight votes of twenty should not decide it")
	}
	for _, info := range beyondInfos {
		id := peer.ID(info.Id)
		if _, ok := asked.Load(id); !ok {
			t.Errorf("peer %s beyond the 20 closest was never asked", id)
		}
		if _, late := askedLate.Load(id); late {
			t.Errorf("peer %s beyond the 20 closest was asked only once a silent holder had failed", id)
		}
	}
}

// The poll above asks peers beyond the 20 closest while some of the 20 are
// late; an attacker among those peers must gain nothing by it. Eight honest
// holders answer in 3 s, eight at once, naming eight peers beyond them; the
// ones of those beyond the 20 closest (about four) are the attacker's, and answer at
// once with twenty made-up peers closer than anyone, reachable, each
// holding a rival's zone. The answers of peers asked from beyond the 20
// are not learned from until such a peer is among the 20, so the rivals
// are never asked and the slow holders' answers decide for the owner.
func TestPeersAskedBeyondLateHoldersCannotSteerThePoll(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	const name = "steered.avtr"
	want, key, zone, client := publishedForAFreshClient(t, name)
	rivalZone := newOwnersKey(t, ownersName(t, name)).zone(t, 1<<40)

	var rivalsAsked atomic.Int32
	var rivals []*dhtpb.Message_Peer
	for range 20 {
		h := handKad(t, key, 12, func(req *dhtpb.Message) *dhtpb.Message {
			resp := &dhtpb.Message{Type: req.Type, Key: req.Key}
			if req.Type == dhtpb.Message_GET_VALUE {
				rivalsAsked.Add(1)
				resp.Record = &recpb.Record{Key: []byte(key), Value: rivalZone}
			}
			return resp
		})
		rivals = append(rivals, peerInfo(h))
	}
	// Eight peers beyond the answering holders; those beyond the 20 closest
	// (about four) name the rivals.
	target := kb.ConvertKey(key)
	type beyondPeer struct {
		info  *dhtpb.Message_Peer
		liar  atomic.Bool
		dist  kb.ID
		asked atomic.Bool
	}
	beyond := make([]*beyondPeer, 8)
	for i := range beyond {
		b := &beyondPeer{}
		h := handKad(t, key, 6, func(req *dhtpb.Message) *dhtpb.Message {
			resp := &dhtpb.Message{Type: req.Type, Key: req.Key}
			if req.Type == dhtpb.Message_GET_VALUE {
				b.asked.Store(true)
				if b.liar.Load() {
					resp.CloserPeers = rivals
				}
			}
			return resp
		})
		b.info = peerInfo(h)
		b.dist = kb.Xor(kb.ConvertPeerID(h.ID()), target)
		beyond[i] = b
	}
	var beyondInfos []*dhtpb.Message_Peer
	for _, b := range beyond {
		beyondInfos = append(beyondInfos, b.info)
	}
	var holderDists []kb.ID
	for range 8 {
		h := handKad(t, key, 8, func(req *dhtpb.Message) *dhtpb.Message {
			resp := &dhtpb.Message{Type: req.Type, Key: req.Key}
			if req.Type == dhtpb.Message_GET_VALUE {
				resp.Record = &recpb.Record{Key: []byte(key), Value: zone}
				resp.CloserPeers = beyondInfos
			}
			return resp
		})
		holderDists = append(holderDists, kb.Xor(kb.ConvertPeerID(h.ID()), target))
		linkInRoutingTable(t, ctx, client, h, "a quick holder")
	}
	for range 8 {
		h := handKad(t, key, 10, func(req *dhtpb.Message) *dhtpb.Message {
			resp := &dhtpb.Message{Type: req.Type, Key: req.Key}
			if req.Type == dhtpb.Message_GET_VALUE {
				time.Sleep(3 * lateAfter) // an honest holder far away: late, alive
				resp.Record = &recpb.Record{Key: []byte(key), Value: zone}
			}
			return resp
		})
		holderDists = append(holderDists, kb.Xor(kb.ConvertPeerID(h.ID()), target))
		linkInRoutingTable(t, ctx, client, h, "a slow holder")
	}
	// The liars are the peers beyond the 20 closest of the 24 (IDs share
	// at least, not exactly, the bits asked for, so rank them).
	var dists []kb.ID
	for _, b := range beyond {
		dists = append(dists, b.dist)
	}
	dists = append(dists, holderDists...)
	slices.SortFunc(dists, func(a, b kb.ID) int { return bytes.Compare(a, b) })
	liars := 0
	for _, b := range beyond {
		if bytes.Compare(b.dist, dists[19]) > 0 {
			b.liar.Store(true)
			liars++
		}
	}
	if liars == 0 {
		t.Fatal("no peer beyond the 20 closest is one of the eight named; the IDs came out too close")
	}

	res, err := client.names.Resolve(ctx, name)
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	if res.Key != want {
		t.Fatalf("resolved to key %s, want the owner's %s: peers asked beyond the 20 closest steered the poll", res.Key, want)
	}
	liarsAsked := 0
	for _, b := range beyond {
		if b.liar.Load() && b.asked.Load() {
			liarsAsked++
		}
	}
	if liarsAsked == 0 {
		t.Fatal("no peer beyond the 20 closest was asked while the slow holders were late: the test did not reach its case")
	}
	if n := rivalsAsked.Load(); n > 0 {
		t.Errorf("%d of the rivals named by peers beyond the 20 closest were asked", n)
	}
}

// publishedForAFreshClient claims name on a small network and publishes a
// zone for it; it returns the owner's key, the zone's DHT key and signed
// value, and a DHT client connected to none of the network, whose polls go
// to the peers a test links into its routing table.
func publishedForAFreshClient(t *testing.T, name string) (owner, key string, zone []byte, client *testNode) {
	t.Helper()
	nodes := newTestNetwork(t, 4, nil)
	owner = claimName(t, nodes[0], name, "owner").Key
	if _, err := nodes[0].names.ChangeRecord(ctxFor(t, time.Minute), RecordChange{Name: name, Type: "TXT", Value: "up"}); err != nil {
		t.Fatal(err)
	}
	key = names.ZoneKey(ownersName(t, name))
	client = newTestNode(t, testConfig(t, func(c *config.Config) { c.DHT.Mode = "client" }))
	return owner, key, storedOwnZone(t, nodes[0], name), client
}

// peerInfo is h as a kad-dht answer names a closer peer.
func peerInfo(h host.Host) *dhtpb.Message_Peer {
	return &dhtpb.Message_Peer{Id: []byte(h.ID()), Addrs: [][]byte{h.Addrs()[0].Bytes()}}
}

// An attacker next to a name answers every poll with an honest holder's
// peer ID at a tarpit address. The poll dials it there, the dial fails,
// and the holder drops out of that poll; but it is not skipped by later
// polls: only a peer silent on a connection already open is, so a liar's
// made-up address cannot keep an honest holder out of this node's polls.
func TestPoisonedAddressDoesNotSilenceAnHonestHolder(t *testing.T) {
	nodes := newTestNetwork(t, 4, nil)
	const name = "poisoned.avtr"
	claimName(t, nodes[0], name, "owner")
	ctx := ctxFor(t, time.Minute)
	if _, err := nodes[0].names.ChangeRecord(ctx, RecordChange{Name: name, Type: "TXT", Value: "up"}); err != nil {
		t.Fatal(err)
	}
	n, _ := names.Parse(name)
	victim := nodes[1]
	pit := tarpit(t)
	h := handKad(t, names.ZoneKey(n), 10, func(req *dhtpb.Message) *dhtpb.Message {
		return &dhtpb.Message{Type: req.Type, Key: req.Key,
			CloserPeers: []*dhtpb.Message_Peer{{Id: []byte(victim.id()), Addrs: [][]byte{pit.Bytes()}}}}
	})
	client := newTestNode(t, testConfig(t, func(c *config.Config) { c.DHT.Mode = "client" }))
	linkInRoutingTable(t, ctx, client, h, "the poisoner")
	if client.node.Host.Network().Connectedness(victim.id()) == network.Connected {
		t.Fatal("the client is connected to the victim already; the poll would not dial it")
	}
	client.names.Resolve(ctx, name) // asks the poisoner, then dials the victim at the tarpit
	if _, skipped := client.names.silent.Get(victim.id()); skipped {
		t.Fatal("a liar's made-up address put an honest holder on the client's skip list")
	}
	// The victim at its real address is asked, and answers.
	if err := client.node.Host.Connect(ctx, peer.AddrInfo{ID: victim.id(), Addrs: victim.node.Host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	client.names.forgetZone(n)
	if _, err := client.names.Resolve(ctx, name); err != nil {
		t.Fatalf("resolve with the victim reachable: %v", err)
	}
}
