package naming

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/multiformats/go-base32"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dhtpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-msgio/pbio"
	"google.golang.org/protobuf/proto"

	"github.com/avnode/avnode/core/config"
	"github.com/avnode/avnode/core/fault"
	"github.com/avnode/avnode/core/names"
	namespb "github.com/avnode/avnode/core/names/pb"
)

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestClaimSetResolveWithCNAME(t *testing.T) {
	nodes := newTestNetwork(t, 8, nil)
	owner, reader := nodes[1], nodes[6]
	claim := claimName(t, owner, "coolblog.code", "jimmy")
	ctx := ctxFor(t, time.Minute)
	set := func(typ, value, label string) {
		t.Helper()
		if _, err := owner.names.ChangeRecord(ctx, RecordChange{Name: "coolblog.code", Type: typ, Value: value, Label: label}); err != nil {
			t.Fatal(err)
		}
	}
	set("HOST", owner.id().String(), "")
	set("A", "/ip4/192.0.2.9/tcp/4001", "api")
	set("CNAME", "api.coolblog.code", "www")

	updates := make(chan Update, 8)
	stop := reader.names.Watch(func(u Update) { updates <- u })
	defer stop()
	res, err := reader.names.Resolve(ctx, "www.coolblog.code")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case u := <-updates:
		if u.Name != "coolblog.code" || u.Key != claim.Key || u.Seq != res.Seq {
			t.Fatalf("update %+v, resolved seq %d", u, res.Seq)
		}
	default:
		t.Fatal("watchers were not told of the newer zone")
	}
	if res.Name != "api.coolblog.code" || res.Key != claim.Key || len(res.Via) != 1 || res.Records[0].Value != "/ip4/192.0.2.9/tcp/4001" {
		t.Fatalf("CNAME not followed: %+v", res)
	}
	if len(res.Hosts) != 1 || res.Hosts[0].PeerID != owner.id().String() || len(res.Hosts[0].Addrs) == 0 {
		t.Fatalf("hosts: %+v", res.Hosts)
	}
	// A CNAME loop across labels ends with an error, not a hang.
	set("CNAME", "loop-b.coolblog.code", "loop-a")
	set("CNAME", "loop-a.coolblog.code", "loop-b")
	reader.names.dropCaches()
	if _, err := reader.names.Resolve(ctx, "loop-a.coolblog.code"); err == nil || !strings.Contains(err.Error(), "loop") {
		t.Fatalf("CNAME loop: %v", err)
	}
}

// rawSender speaks the DHT wire protocol directly, so a test can offer
// holders records that the sender's own DHT would refuse to send.
type rawSender struct {
	h     host.Host
	proto protocol.ID
}

func (r rawSender) SendRequest(ctx context.Context, p peer.ID, m *dhtpb.Message) (*dhtpb.Message, error) {
	s, err := r.h.NewStream(ctx, p, r.proto)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if err := pbio.NewDelimitedWriter(s).WriteMsg(m); err != nil {
		return nil, err
	}
	resp := new(dhtpb.Message)
	if err := pbio.NewDelimitedReader(s, 1<<20).ReadMsg(resp); err != nil {
		return nil, err
	}
	return resp, nil
}

func (r rawSender) SendMessage(ctx context.Context, p peer.ID, m *dhtpb.Message) error {
	_, err := r.SendRequest(ctx, p, m)
	return err
}

// storedValue is what a holder keeps in its DHT store for key, or nil.
func storedValue(t *testing.T, tn *testNode, key string) []byte {
	t.Helper()
	ns := strings.SplitN(key, "/", 3)[1]
	dsKey := ds.NewKey("/dht/" + ns + "/" + base32.RawStdEncoding.EncodeToString([]byte(key)))
	data, err := tn.store.Get(context.Background(), dsKey)
	if errors.Is(err, ds.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var rec recpb.Record
	if err := proto.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	return rec.GetValue()
}

// Forged, expired, rolled-back, oversized and malformed records are refused
// by holders and never stored.
func TestHoldersRefuseBadRecords(t *testing.T) {
	nodes := newTestNetwork(t, 20, nil)
	owner, attacker := nodes[0], nodes[19]
	claimName(t, owner, "einstein.avtr", "einstein")
	ctx := ctxFor(t, 2*time.Minute)
	good, err := owner.names.ChangeRecord(ctx, RecordChange{Name: "einstein.avtr", Type: "TXT", Value: "relativity"})
	if err != nil {
		t.Fatal(err)
	}
	n, _ := names.Parse("einstein.avtr")
	key := names.ZoneKey(n)
	holders := holdersOf(t, nodes, key)
	if len(holders) < 10 {
		t.Fatalf("only %d holders stored the zone", len(holders))
	}
	goodValue := storedValue(t, holders[0], key)

	ownerKey, _ := owner.keys.Private("einstein")
	_, pinned, _ := owner.names.ownerOf(ctx, n)
	pinnedClaim := pinned.Claim
	signed := func(mutate func(z *names.Zone)) []byte {
		z := &names.Zone{Name: n, Seq: good.Seq + 10, Expiry: time.Now().Add(time.Hour), TTL: time.Minute, Claim: pinnedClaim,
			Records: []names.Record{{Type: names.TypeTXT, Value: "forged"}}}
		mutate(z)
		b, err := z.Sign(ownerKey)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	mallory, _, _ := crypto.GenerateEd25519Key(nil)
	bad := map[string][]byte{
		"flipped signature bit": flipSignatureBit(t, signed(func(*names.Zone) {})),
		"expired":               signed(func(z *names.Zone) { z.Expiry = time.Now().Add(-time.Hour) }),
		"rolled back":           signed(func(z *names.Zone) { z.Seq = good.Seq - 1 }),
		"oversized":             bytes.Repeat([]byte{0x0a}, names.MaxRecordSize+1),
		"malformed":             []byte("not a zone at all"),
		"signed by another key": signedByStranger(t, n, mallory, good.Seq+10),
	}
	sender, _ := dhtpb.NewProtocolMessenger(rawSender{h: attacker.node.Host, proto: "/avtr/kad/1.0.0"})
	for what, value := range bad {
		for _, h := range holders {
			err := sender.PutValue(ctx, h.id(), &recpb.Record{Key: []byte(key), Value: value})
			if err == nil {
				t.Errorf("%s: holder %s accepted it", what, h.id())
			}
			if got := storedValue(t, h, key); !bytes.Equal(got, goodValue) {
				t.Fatalf("%s: holder %s now stores something else", what, h.id())
			}
		}
	}
	// A resolver that has seen the current sequence refuses an older zone
	// even if some holder were to serve it.
	if err := names.HighWater(n, good.Seq, good.Seq-1); !errors.Is(err, names.ErrRolledBack) {
		t.Fatalf("high-water: %v", err)
	}
}

// flipSignatureBit flips one bit of the owner's signature, which ends the
// signed envelope inside the zone.
func flipSignatureBit(t *testing.T, b []byte) []byte {
	t.Helper()
	var sz namespb.SignedZone
	if err := proto.Unmarshal(b, &sz); err != nil {
		t.Fatal(err)
	}
	env := bytes.Clone(sz.GetEnvelope())
	env[len(env)-1] ^= 1
	sz.Envelope = env
	out, err := proto.Marshal(&sz)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// signedByStranger is a well-formed zone for the name, signed by another key
// that claimed the name on its own (without witnesses).
func signedByStranger(t *testing.T, n names.Name, key crypto.PrivKey, seq uint64) []byte {
	t.Helper()
	c, err := names.MintClaim(context.Background(), n, key, 8, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	z := &names.Zone{Name: n, Seq: seq, Expiry: time.Now().Add(time.Hour), TTL: time.Minute, Claim: c}
	b, err := z.Sign(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func holdersOf(t *testing.T, nodes []*testNode, key string) []*testNode {
	var out []*testNode
	for _, tn := range nodes {
		if !tn.dead && storedValue(t, tn, key) != nil {
			out = append(out, tn)
		}
	}
	return out
}

// Two keys race for one name: whatever happens to each claim, every node
// ends up resolving the name to the same owner.
func TestRacingClaimsAgree(t *testing.T) {
	nodes := newTestNetwork(t, 20, nil)
	a, b := nodes[3], nodes[11]
	for _, tn := range []*testNode{a, b} {
		if _, err := tn.keys.Generate("racer"); err != nil {
			t.Fatal(err)
		}
	}
	ctx := ctxFor(t, 2*time.Minute)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, tn := range []*testNode{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = tn.names.Claim(ctx, "contested.avtr", "racer")
		}()
	}
	wg.Wait()
	if errs[0] == nil && errs[1] == nil {
		t.Fatal("both racing claims succeeded; at most one may")
	}
	if errs[0] != nil && errs[1] != nil {
		t.Logf("both claims failed (%v; %v): nobody owns the name, which all agree on", errs[0], errs[1])
	}
	owners := map[string]int{}
	for _, tn := range nodes {
		res, err := tn.names.Resolve(ctx, "contested.avtr")
		if err != nil {
			owners["error: "+err.Error()]++
			continue
		}
		owners[res.Key]++
	}
	if len(owners) != 1 {
		t.Fatalf("nodes disagree on the owner: %v (claim errors: %v, %v)", owners, errs[0], errs[1])
	}
}

// Kill 30% of the nodes abruptly: after holders re-put, every name still
// resolves from every survivor.
func TestNamesSurviveThirtyPercentKilled(t *testing.T) {
	const total, owners = 30, 6
	nodes := newTestNetwork(t, total, nil)
	ctx := ctxFor(t, 3*time.Minute)
	var published []string
	for i := 0; i < owners; i++ {
		name := fmt.Sprintf("survivor%d.avtr", i)
		claimName(t, nodes[i], name, "owner")
		if _, err := nodes[i].names.ChangeRecord(ctx, RecordChange{Name: name, Type: "TXT", Value: name}); err != nil {
			t.Fatal(err)
		}
		published = append(published, name)
	}
	// Kill 9 of 30, owners first: their names must live on without them.
	for i := 0; i < total*3/10; i++ {
		nodes[i].kill()
	}
	held := map[string]int{}
	for _, name := range published {
		n, _ := names.Parse(name)
		for _, key := range []string{names.ClaimKey(n), names.ZoneKey(n)} {
			held[key] = len(holdersOf(t, nodes, key))
		}
	}
	// One re-put round by every survivor, as its reput_interval timer would
	// start it: the records reach the new closest peers.
	var wg sync.WaitGroup
	for _, tn := range nodes {
		if !tn.dead {
			wg.Add(1)
			go func() { defer wg.Done(); tn.names.reputHeld(ctx) }()
		}
	}
	wg.Wait()
	// Every record that lost holders gained new ones (the closest 20 of the
	// 21 survivors, up to what a lookup under load finds).
	for key, before := range held {
		if got := len(holdersOf(t, nodes, key)); got <= before && got < 20 {
			t.Errorf("%s: on %d live holders before the re-put and %d after", key, before, got)
		}
	}
	ok, tries := 0, 0
	for _, tn := range nodes {
		if tn.dead {
			continue
		}
		for _, name := range published {
			tries++
			res, err := tn.names.Resolve(ctx, name)
			if err == nil && len(res.Records) == 1 && res.Records[0].Value == name {
				ok++
			} else {
				t.Logf("%s from %s: %v", name, tn.id(), err)
			}
		}
	}
	if ok != tries {
		t.Fatalf("resolved %d of %d after killing 30%% of the nodes", ok, tries)
	}
}

// The owner republishes before its zones expire: with a 3 s lifetime and a
// 1 s republish interval, the name still resolves well past the first expiry.
func TestOwnerRepublishesBeforeExpiry(t *testing.T) {
	nodes := newTestNetwork(t, 6, func(c *config.Config) {
		c.Names.ZoneLifetime = config.Duration(3 * time.Second)
		c.Names.RepublishInterval = config.Duration(time.Second)
		c.Names.ZoneTTL = config.Duration(time.Second)
	})
	owner, reader := nodes[0], nodes[4]
	claimName(t, owner, "insomniac.avtr", "owner")
	ctx := ctxFor(t, time.Minute)
	first, err := reader.names.Resolve(ctx, "insomniac.avtr")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second) // past the first zone's expiry
	reader.names.dropCaches()
	later, err := reader.names.Resolve(ctx, "insomniac.avtr")
	if err != nil {
		t.Fatalf("name expired although its owner is up: %v", err)
	}
	if later.Seq <= first.Seq || !later.Expires.After(first.Expires) {
		t.Fatalf("not republished: seq %d -> %d, expiry %s -> %s", first.Seq, later.Seq, first.Expires, later.Expires)
	}
}

// Concurrent changes to one zone are all kept: each starts from the last
// zone signed.
func TestConcurrentZoneChangesAreAllKept(t *testing.T) {
	nodes := newTestNetwork(t, 5, nil)
	owner := nodes[0]
	claimName(t, owner, "busy.avtr", "owner")
	ctx := ctxFor(t, time.Minute)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := owner.names.ChangeRecord(ctx, RecordChange{Name: "busy.avtr", Type: "TXT", Value: fmt.Sprint("v", i)}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	zone, err := owner.names.ListRecords(ctx, "busy.avtr")
	if err != nil {
		t.Fatal(err)
	}
	if len(zone.Records) != 8 {
		t.Fatalf("kept %d of 8 concurrent TXT records: %+v", len(zone.Records), zone.Records)
	}
}

// Several changes to one zone make one signed version; a change to another
// name, or a bad one, leaves the zone as it was.
func TestChangesSignedAsOneVersion(t *testing.T) {
	nodes := newTestNetwork(t, 4, nil)
	owner := nodes[0]
	claimName(t, owner, "site.avtr", "site")
	ctx := ctxFor(t, time.Minute)
	first, err := owner.names.ChangeRecord(ctx, RecordChange{Name: "site.avtr", Type: "TXT", Value: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	both, err := owner.names.ChangeRecord(ctx,
		RecordChange{Name: "site.avtr", Type: "ROOT", Value: "bafkqaaa"},
		RecordChange{Name: "site.avtr", Type: "HOST", Value: owner.id().String()})
	if err != nil {
		t.Fatal(err)
	}
	if both.Seq != first.Seq+1 || len(both.Records) != 3 {
		t.Fatalf("two changes made %+v after seq %d", both, first.Seq)
	}
	for _, bad := range [][]RecordChange{
		{{Name: "site.avtr", Type: "TXT", Value: "v2"}, {Name: "other.avtr", Type: "TXT", Value: "x"}},
		{{Name: "site.avtr", Type: "TXT", Value: "v2"}, {Name: "site.avtr", Type: "NOPE", Value: "x"}},
		{{Name: "site.avtr", Type: "TXT", Value: "v2"}, {Name: "site.avtr", Type: "SAT", Remove: true}},
	} {
		if _, err := owner.names.ChangeRecord(ctx, bad[0], bad[1:]...); err == nil {
			t.Fatalf("%+v was taken", bad)
		}
	}
	records, err := owner.names.ListRecords(ctx, "site.avtr")
	if err != nil {
		t.Fatal(err)
	}
	if records.Seq != both.Seq || len(records.Records) != 3 {
		t.Fatalf("a refused change touched the zone: %+v", records)
	}
}

// A zone naming many hosts costs each resolve at most MaxHostLookups
// address lookups: the first hosts in the zone's order get addresses, the
// rest are listed without, and a host named twice is listed once.
func TestResolveLooksUpABoundedNumberOfHosts(t *testing.T) {
	nodes := newTestNetwork(t, 12, nil)
	owner, reader := nodes[0], nodes[11]
	claimName(t, owner, "crowded.avtr", "crowd")
	ctx := ctxFor(t, time.Minute)
	for _, n := range append(nodes, nodes[3]) {
		if _, err := owner.names.ChangeRecord(ctx, RecordChange{Name: "crowded.avtr", Type: "HOST", Value: n.id().String()}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := reader.names.Resolve(ctx, "crowded.avtr")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Hosts) != len(nodes) {
		t.Fatalf("%d hosts listed, want each of the %d distinct HOSTs once: %+v", len(res.Hosts), len(nodes), res.Hosts)
	}
	var zoneOrder []string
	for _, r := range res.Records {
		if r.Type == "HOST" && !slices.Contains(zoneOrder, r.Value) {
			zoneOrder = append(zoneOrder, r.Value)
		}
	}
	var found []string
	for _, h := range res.Hosts {
		if len(h.Addrs) > 0 {
			found = append(found, h.PeerID)
		}
	}
	slices.Sort(found)
	first := slices.Clone(zoneOrder[:MaxHostLookups])
	slices.Sort(first)
	if !slices.Equal(found, first) {
		t.Fatalf("hosts with addresses %v, want the zone's first %d: %v", found, MaxHostLookups, first)
	}
}

// A claim the network holds but this node never finished setting up (it
// failed after the holders certified it, or the node lost its names) is
// finished by claiming again: the node owns the name, a zone is published
// and resolves elsewhere. Once set up, claiming again changes nothing and
// says so; the same name claimed with another recovery key is refused.
func TestClaimAgainFinishesAnUnfinishedClaim(t *testing.T) {
	nodes := newTestNetwork(t, 6, nil)
	owner, reader := nodes[1], nodes[4]
	first := claimName(t, owner, "resume.avtr", "k")
	ctx := ctxFor(t, time.Minute)
	n, _ := names.Parse("resume.avtr")
	unfinish := func() { // undo what the claim's last step wrote
		for _, prefix := range []ds.Key{ownedPrefix, zonePrefix} {
			if err := owner.names.store.Delete(ctx, nameKey(prefix, n)); err != nil {
				t.Fatal(err)
			}
		}
	}
	unfinish()
	res, err := owner.names.Claim(ctx, "resume.avtr", "k")
	if err != nil || !res.Resumed || !res.Certified || res.Key != first.Key {
		t.Fatalf("claim again: %+v, %v; want the claim resumed for key %s", res, err, first.Key)
	}
	if setUp, err := owner.names.claimSetUp(ctx, n); err != nil || !setUp {
		t.Fatalf("after the resumed claim the node has not set the name up (%v)", err)
	}
	if _, err := owner.names.ChangeRecord(ctx, RecordChange{Name: "resume.avtr", Type: "TXT", Value: "back"}); err != nil {
		t.Fatalf("the owner cannot change its zone after the resumed claim: %v", err)
	}
	got, err := reader.names.Resolve(ctx, "resume.avtr")
	if err != nil || got.Key != first.Key || len(got.Records) != 1 || got.Records[0].Value != "back" {
		t.Fatalf("resolve from another node: %+v, %v", got, err)
	}
	_, err = owner.names.Claim(ctx, "resume.avtr", "k")
	if fault.KindOf(err) != fault.Refused || !strings.Contains(err.Error(), "nothing to do") {
		t.Fatalf("a third claim: %v; want refused, nothing to do", err)
	}
	if _, err := owner.keys.Generate("rescue"); err != nil {
		t.Fatal(err)
	}
	unfinish()
	if _, err := owner.names.ClaimWithRecovery(ctx, "resume.avtr", "k", "rescue"); fault.KindOf(err) != fault.Refused {
		t.Fatalf("the claim again with a recovery key it never committed to: %v; want refused", err)
	}
}

// A node that knows no peer says so when asked to resolve, instead of
// calling the name unknown; connected, the same call reaches the network.
func TestResolveWithNoPeersSaysSo(t *testing.T) {
	nodes := newTestNetwork(t, 4, nil)
	claimName(t, nodes[0], "lonely.avtr", "k")
	alone := newTestNode(t, testConfig(t, nil))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := alone.names.Resolve(ctx, "lonely.avtr")
	if !errors.Is(err, ErrNoPeers) || fault.KindOf(err) != fault.Unavailable || !strings.Contains(err.Error(), "avnode peers") {
		t.Fatalf("resolve on a node with no peers: %v (kind %q); want ErrNoPeers, unavailable, naming what to check", err, fault.KindOf(err))
	}
	info := peer.AddrInfo{ID: nodes[0].id(), Addrs: nodes[0].node.Host.Addrs()}
	if err := alone.node.Host.Connect(ctx, info); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "resolved once connected", func() error {
		_, err := alone.names.Resolve(ctx, "lonely.avtr")
		return err
	})
}
