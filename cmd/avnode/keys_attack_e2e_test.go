package main

// Forged key rotations sent by a bare go-libp2p host with PUT_VALUE to real
// daemons. The attacker writes the rotation steps and the zones around them
// by hand, from the published wire format (core/names/pb and libp2p's
// signed envelope), so nothing the node would refuse to sign stops it
// early: each forgery reaches each node's put path.

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/record"
	"google.golang.org/protobuf/proto"

	"github.com/avnode/avnode/core/idkey"
	"github.com/avnode/avnode/core/names"
	"github.com/avnode/avnode/core/names/pb"
)

// The wire constants an attacker reads off core/names/README.md.
var (
	zoneCodec     = binary.AppendUvarint(nil, 0x300a03)
	rotationCodec = binary.AppendUvarint(nil, 0x300a05)
)

// handZone is the zone payload as a libp2p record, for record.Seal.
type handZone struct{ p *pb.ZonePayload }

func (handZone) Domain() string { return "avtr-zone" }
func (handZone) Codec() []byte  { return zoneCodec }
func (z handZone) MarshalRecord() ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(z.p)
}
func (z handZone) UnmarshalRecord([]byte) error { return nil }

// forger holds keys and writes rotations and zones by hand.
type forger struct{ t *testing.T }

func (f forger) key() crypto.PrivKey {
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return k
}

func (f forger) pub(k crypto.PrivKey) []byte {
	b, err := crypto.MarshalPublicKey(k.GetPublic())
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func (f forger) marshal(m proto.Message) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// signed is what a signature covers: length-prefixed domain, type, payload.
func signed(domain string, codec, payload []byte) []byte {
	var b []byte
	for _, part := range [][]byte{[]byte(domain), codec, payload} {
		b = binary.AppendUvarint(b, uint64(len(part)))
		b = append(b, part...)
	}
	return b
}

func (f forger) sign(k crypto.PrivKey, msg []byte) []byte {
	if k == nil {
		return nil
	}
	s, err := k.Sign(msg)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// step writes a ROTATE step of name from prev to newKey, signed by auth as
// the authority and by newSigner as the new key (either may be nil).
func (f forger) step(name string, index uint32, prev []byte, newKey []byte, auth, newSigner crypto.PrivKey) []byte {
	payload := f.marshal(&pb.RotationPayload{Name: name, Index: index, Prev: prev, Kind: pb.RotationKind_ROTATION_KIND_ROTATE, NewKey: newKey})
	return f.marshal(&pb.SignedRotation{Payload: payload,
		AuthoritySignature: f.sign(auth, signed("avtr-rotation", rotationCodec, payload)),
		NewKeySignature:    f.sign(newSigner, signed("avtr-rotation/new-key", rotationCodec, payload))})
}

// zone writes a zone of name carrying claim and steps, signed by head.
func (f forger) zone(name string, seq uint64, claim []byte, steps [][]byte, head crypto.PrivKey) []byte {
	claimHash := sha256.Sum256(claim)
	p := &pb.ZonePayload{Name: name, OwnerKey: f.pub(head), Seq: seq, ExpiryUnix: time.Now().Add(time.Hour).Unix(), TtlSeconds: 60,
		Records: []*pb.ZoneRecord{{Type: pb.RecordType_RECORD_TYPE_TXT, Value: "forged"}}, ClaimHash: claimHash[:]}
	if len(steps) > 0 {
		h := sha256.Sum256(steps[len(steps)-1])
		p.ChainHash = h[:]
	}
	env, err := record.Seal(handZone{p}, head)
	if err != nil {
		f.t.Fatal(err)
	}
	envBytes, err := env.Marshal()
	if err != nil {
		f.t.Fatal(err)
	}
	return f.marshal(&pb.SignedZone{Envelope: envBytes, Claim: claim, Rotations: steps})
}

func hashOf(b []byte) []byte { h := sha256.Sum256(b); return h[:] }

// Every node refuses, counts and keeps serving the owner's zone for each
// forged rotation: a wrong old-key signature, a missing new-key signature,
// a new key signed for by another, a rotation of a name the signer never
// owned, a loop back to an old key and a chain past the bound of 8; and a
// hybrid-signed zone with either signature half forged.
func TestForgedRotationsAreRefusedByEveryNode(t *testing.T) {
	t.Parallel()
	const victim = "victim-rot.avtr"
	dir := t.TempDir()
	nodes, metrics := startDaemons(t, dir, 4, nil)
	owner := nodes[1]
	for _, d := range nodes {
		waitPeers(t, d, 2)
	}
	mustCLI(t, owner.repo, "key", "gen", "victim")
	mustCLI(t, owner.repo, "name", "claim", victim, "--key", "victim")
	mustCLI(t, owner.repo, "record", "set", victim, "TXT", "genuine")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	mallory := newAttacker(t)
	ids := mallory.connectAll(ctx, nodes)
	n, _ := names.Parse(victim)
	var claim []byte
	eventually(t, 30*time.Second, "the victim's claim is held", func() error {
		if claim = mallory.get(ctx, ids[0], names.ClaimKey(n)); claim == nil {
			return fmt.Errorf("no claim on node 0")
		}
		return nil
	})
	f := forger{t}
	ownerKey := readStoredKey(t, owner, "victim")
	mk, other := f.key(), f.key()
	prev := hashOf(claim)

	// The attacker's own name, claimed with its own key, for the chains
	// whose every signature is genuine but whose shape is not.
	own := "mallory-rot.avtr"
	on, _ := names.Parse(own)
	k0 := f.key()
	ownClaim, err := names.MintClaim(ctx, on, k0, 8, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ownClaimBytes, _ := ownClaim.Marshal()
	chainOf := func(keys []crypto.PrivKey) [][]byte { // k0 → keys[0] → keys[1] → …
		var steps [][]byte
		auth, p := k0, hashOf(ownClaimBytes)
		for i, k := range keys {
			s := f.step(own, uint32(i+1), p, f.pub(k), auth, k)
			steps, auth, p = append(steps, s), k, hashOf(s)
		}
		return steps
	}
	k1 := f.key()
	loop := chainOf([]crypto.PrivKey{k1, k0})

	// A name of the attacker's claimed with a hybrid key: its genuine zone,
	// and copies with one bit of either signature half flipped.
	pqName := "mallory-pq.avtr"
	pn, _ := names.Parse(pqName)
	pq, err := idkey.GenerateHybrid()
	if err != nil {
		t.Fatal(err)
	}
	pqClaim, err := names.MintClaim(ctx, pn, pq, 8, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pqClaimBytes, _ := pqClaim.Marshal()
	pqZone := f.zone(pqName, 1, pqClaimBytes, nil, pq)
	forgedHalf := func(offset int) []byte { // into the hybrid signature
		var sz pb.SignedZone
		if err := proto.Unmarshal(pqZone, &sz); err != nil {
			t.Fatal(err)
		}
		env := append([]byte{}, sz.Envelope...)
		sigStart := len(env) - idkey.HybridSigSize // the signature ends the envelope
		env[sigStart+offset] ^= 1
		sz.Envelope = env
		return f.marshal(&sz)
	}
	long := make([]crypto.PrivKey, names.MaxRotations+1)
	for i := range long {
		long[i] = f.key()
	}

	forgeries := []struct {
		what, key string
		value     []byte
	}{
		{"wrong old-key signature", names.ZoneKey(n), f.zone(victim, 1<<40, claim, [][]byte{f.step(victim, 1, prev, f.pub(mk), mk, mk)}, mk)},
		{"missing new-key signature", names.ZoneKey(n), f.zone(victim, 1<<40, claim, [][]byte{f.step(victim, 1, prev, f.pub(mk), ownerKey, nil)}, mk)},
		{"new key signed for by another", names.ZoneKey(n), f.zone(victim, 1<<40, claim, [][]byte{f.step(victim, 1, prev, f.pub(mk), mk, other)}, mk)},
		{"rotation of a name the signer never owned", names.ZoneKey(n), f.zone(victim, 1<<40, ownClaimBytes, [][]byte{f.step(victim, 1, hashOf(ownClaimBytes), f.pub(mk), k0, mk)}, mk)},
		{"loop back to an old key", names.ZoneKey(on), f.zone(own, 1, ownClaimBytes, loop, k0)},
		{"chain past the bound", names.ZoneKey(on), f.zone(own, 1, ownClaimBytes, chainOf(long), long[len(long)-1])},
		{"hybrid zone with its Ed25519 half forged", names.ZoneKey(pn), forgedHalf(10)},
		{"hybrid zone with its ML-DSA-65 half forged", names.ZoneKey(pn), forgedHalf(64 + 100)},
	}
	refusedBefore := make([]float64, len(nodes))
	for i := range nodes {
		refusedBefore[i] = metricSum(scrapeMetrics(t, metrics[i]), "avnode_names_refused_total", "")
	}
	for _, forged := range forgeries {
		for i, id := range ids {
			if err := mallory.put(ctx, id, forged.key, forged.value); err == nil {
				t.Errorf("%s: node %d took it", forged.what, i)
			}
			if got := mallory.get(ctx, id, forged.key); got != nil && string(got) == string(forged.value) {
				t.Errorf("%s: node %d serves it", forged.what, i)
			}
		}
	}
	for i, id := range ids {
		z, err := names.DecodeZone(mallory.get(ctx, id, names.ZoneKey(n)))
		if err != nil || !z.Owner.Equals(ownerKey.GetPublic()) {
			t.Errorf("node %d no longer serves the owner's zone: %v", i, err)
		}
		after := metricSum(scrapeMetrics(t, metrics[i]), "avnode_names_refused_total", "")
		if after-refusedBefore[i] < float64(len(forgeries)) {
			t.Errorf("node %d counted %v refusals for %d forgeries", i, after-refusedBefore[i], len(forgeries))
		}
	}
	// The control: the same hand-made format with a genuine chain of the
	// attacker's own name is taken, so the refusals above are the rules'.
	genuine := f.zone(own, 2, ownClaimBytes, chainOf([]crypto.PrivKey{k1}), k1)
	for i, id := range ids {
		if err := mallory.put(ctx, id, names.ZoneKey(on), genuine); err != nil {
			t.Fatalf("node %d refused a genuine rotated zone in the hand-made format: %v", i, err)
		}
		if err := mallory.put(ctx, id, names.ZoneKey(pn), pqZone); err != nil {
			t.Fatalf("node %d refused a genuine hybrid zone in the hand-made format: %v", i, err)
		}
	}
	var res keyResolution
	cliJSON(t, nodes[3].repo, &res, "resolve", victim)
	if res.Key != names.KeyID(ownerKey.GetPublic()) || res.Rotations != 0 {
		t.Fatalf("resolve after the forgeries: %v", res)
	}
}
