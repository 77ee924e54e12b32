package naming

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	dhtpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/avnode/avnode/core/config"
	"github.com/avnode/avnode/core/idkey"
	"github.com/avnode/avnode/core/names"
)

// shortTTL makes resolvers fetch a zone again a second after they cached it.
func shortTTL(c *config.Config) { c.Names.ZoneTTL = config.Duration(time.Second) }

// resolvesTo waits until every node resolves name to key with a TXT value.
func resolvesTo(t *testing.T, nodes []*testNode, name, key, txt string) {
	t.Helper()
	for i, tn := range nodes {
		waitFor(t, 60*time.Second, fmt.Sprintf("node %d resolves %s to %s", i, name, key), func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			res, err := tn.names.Resolve(ctx, name)
			if err != nil {
				return err
			}
			if res.Key != key || !hasTXT(res, txt) {
				return fmt.Errorf("resolved key %s, records %v", res.Key, res.Records)
			}
			return nil
		})
	}
}

func hasTXT(res *Resolution, v string) bool {
	for _, r := range res.Records {
		if r.Type == "TXT" && r.Value == v {
			return true
		}
	}
	return false
}

func setTXT(t *testing.T, tn *testNode, name, v string) (*ZoneInfo, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return tn.names.ChangeRecord(ctx, RecordChange{Name: name, Type: "TXT", Value: v})
}

func keyIDOf(t *testing.T, tn *testNode, name string) string {
	t.Helper()
	priv, err := tn.keys.Private(name)
	if err != nil {
		t.Fatal(err)
	}
	return names.KeyID(priv.GetPublic())
}

// An owner rotates a name to a hybrid key while resolvers have it pinned:
// they all follow, and a zone the old key signs afterwards, however high its
// sequence, is refused by every holder and resolver.
func TestRotatedNameIsFollowedAndTheOldKeyRefused(t *testing.T) {
	nodes := newTestNetwork(t, 12, shortTTL)
	owner, resolvers, attacker := nodes[0], nodes[1:6], nodes[11]
	claimName(t, owner, "alice.avtr", "alice")
	if _, err := setTXT(t, owner, "alice.avtr", "v1"); err != nil {
		t.Fatal(err)
	}
	resolvesTo(t, resolvers, "alice.avtr", keyIDOf(t, owner, "alice"), "v1")

	if _, err := owner.keys.GenerateType("alice-pq", idkey.TypeHybrid); err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t, 2*time.Minute)
	chain, err := owner.names.RotateKey(ctx, "alice.avtr", "alice-pq")
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if chain.KeyType != idkey.TypeHybrid || len(chain.Steps) != 1 || chain.Steps[0].Kind != "rotate" {
		t.Fatalf("key chain after the rotation: %+v", chain)
	}
	if _, err := setTXT(t, owner, "alice.avtr", "v2"); err != nil {
		t.Fatal(err)
	}
	pq := keyIDOf(t, owner, "alice-pq")
	resolvesTo(t, resolvers, "alice.avtr", pq, "v2")

	// The old key signs a zone with a far higher sequence and no rotation.
	old, err := owner.keys.Private("alice")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := names.Parse("alice.avtr")
	lineage, err := owner.names.owners.KnownLineage(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	stale := &names.Zone{Name: n, Seq: 1 << 40, Expiry: time.Now().Add(time.Hour), TTL: time.Second, Claim: lineage.Claim,
		Records: []names.Record{{Type: names.TypeTXT, Value: "old key"}}}
	staleBytes, err := stale.Sign(old)
	if err != nil {
		t.Fatal(err)
	}
	key := names.ZoneKey(n)
	sender, _ := dhtpb.NewProtocolMessenger(rawSender{h: attacker.node.Host, proto: "/avtr/kad/1.0.0"})
	for i, tn := range nodes[:11] {
		if err := sender.PutValue(ctx, tn.id(), &recpb.Record{Key: []byte(key), Value: staleBytes}); err == nil {
			t.Errorf("node %d stored the old key's zone", i)
		}
		if got := storedValue(t, tn, key); bytes.Equal(got, staleBytes) {
			t.Fatalf("node %d stores the old key's zone", i)
		}
		if _, err := tn.names.OfferZone(ctx, key, staleBytes); !errors.Is(err, names.ErrRotated) {
			t.Errorf("node %d took the old key's zone when offered: %v", i, err)
		}
	}
	resolvesTo(t, resolvers, "alice.avtr", pq, "v2")
}

// A thief with the name's key rotates it to itself; the owner's recovery key
// takes it back, and the thief's later zones are refused everywhere.
func TestRecoveryKeyUndoesAThief(t *testing.T) {
	nodes := newTestNetwork(t, 12, shortTTL)
	owner, thief, resolvers := nodes[0], nodes[1], nodes[2:6]
	if _, err := owner.keys.Generate("rescue"); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.keys.Generate("main"); err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t, 3*time.Minute)
	if _, err := owner.names.ClaimWithRecovery(ctx, "bob.avtr", "main", "rescue"); err != nil {
		t.Fatal(err)
	}
	if _, err := setTXT(t, owner, "bob.avtr", "owner-1"); err != nil {
		t.Fatal(err)
	}
	resolvesTo(t, resolvers, "bob.avtr", keyIDOf(t, owner, "main"), "owner-1")

	// The main key is stolen.
	mainKey, _ := owner.keys.Private("main")
	if _, err := thief.keys.Import("stolen", mainKey); err != nil {
		t.Fatal(err)
	}
	if _, err := thief.keys.Generate("thief"); err != nil {
		t.Fatal(err)
	}
	if _, err := thief.names.RotateKey(ctx, "bob.avtr", "thief"); err != nil {
		t.Fatalf("the thief's rotation (signed by the stolen key): %v", err)
	}
	// Nor can the thief move the recovery commitment to a key of its own.
	if _, err := thief.names.SetRecovery(ctx, "bob.avtr", "thief", ""); err == nil {
		t.Fatal("the thief changed the recovery commitment")
	}
	if _, err := setTXT(t, thief, "bob.avtr", "thief-1"); err != nil {
		t.Fatal(err)
	}
	resolvesTo(t, resolvers, "bob.avtr", keyIDOf(t, thief, "thief"), "thief-1")

	if _, err := owner.keys.Generate("fresh"); err != nil {
		t.Fatal(err)
	}
	chain, err := owner.names.Recover(ctx, "bob.avtr", "rescue", "fresh", -1)
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	if len(chain.Steps) != 1 || chain.Steps[0].Kind != "recover" || chain.RecoveryKey != "rescue" {
		t.Fatalf("key chain after the recovery: %+v", chain)
	}
	if _, err := setTXT(t, owner, "bob.avtr", "owner-2"); err != nil {
		t.Fatal(err)
	}
	fresh := keyIDOf(t, owner, "fresh")
	resolvesTo(t, append(resolvers, thief), "bob.avtr", fresh, "owner-2")

	// The thief's node learned the recovery: it refuses to sign on, and a
	// zone its key signs on its own branch is refused by every node.
	if _, err := setTXT(t, thief, "bob.avtr", "thief-2"); err == nil {
		t.Fatal("the thief's node still signs zones for the name")
	}
	thiefKey, _ := thief.keys.Private("thief")
	thiefZone := signOnBranch(t, thief, "bob.avtr", thiefKey)
	for i, tn := range nodes {
		if _, err := tn.names.OfferZone(ctx, names.ZoneKey(mustName(t, "bob.avtr")), thiefZone); err == nil {
			t.Errorf("node %d took the thief's zone after the recovery", i)
		}
	}
	resolvesTo(t, resolvers, "bob.avtr", fresh, "owner-2")
}

// signOnBranch signs a zone on the thief's own branch of the chain: the
// claim and the thief's rotation, as the thief's node stored it before it
// learned the recovery.
func signOnBranch(t *testing.T, tn *testNode, name string, key crypto.PrivKey) []byte {
	t.Helper()
	data, ok, err := tn.names.get(context.Background(), nameKey(zonePrefix, mustName(t, name)))
	if err != nil || !ok {
		t.Fatalf("the thief's last zone: %v", err)
	}
	z, err := names.DecodeZone(data)
	if err != nil {
		t.Fatal(err)
	}
	z.Seq += 1000
	z.Expiry = time.Now().Add(time.Hour)
	z.Records = []names.Record{{Type: names.TypeTXT, Value: "thief-3"}}
	b, err := z.Sign(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustName(t *testing.T, s string) names.Name {
	n, err := names.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
