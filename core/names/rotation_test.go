package names

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/record"

	"github.com/avnode/avnode/core/idkey"
	"github.com/avnode/avnode/core/names/pb"
)

func commitment(t testing.TB, k crypto.PrivKey) []byte {
	t.Helper()
	c, err := RecoveryCommitment(k.GetPublic())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mintRecoverable(t testing.TB, name string, owner, recovery crypto.PrivKey) *Claim {
	t.Helper()
	c, err := MintClaimWithRecovery(context.Background(), mustParse(t, name), owner, commitment(t, recovery), testDifficulty, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// extend returns l with step s appended, failing the test on error.
func extend(t testing.TB, l *Lineage, s *Rotation, err error) *Lineage {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	steps := append(l.SignedSteps(), s.Signed())
	out, err := NewLineage(l.Claim, steps)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// zoneOn signs a zone resting on lineage l with key, and decodes it as a
// holder would.
func zoneOn(t testing.TB, l *Lineage, seq uint64, key crypto.PrivKey) (*Zone, []byte, error) {
	t.Helper()
	z := testZone(t, l.Claim, seq, Record{Type: TypeTXT, Value: "v"})
	z.Rotations = l.Steps
	b, err := z.Sign(key)
	if err != nil {
		return nil, nil, err
	}
	got, err := testZoneValidator().DecodeValid(z.Key(), b)
	return got, b, err
}

func hybridKey(t testing.TB) crypto.PrivKey {
	t.Helper()
	k, err := idkey.GenerateHybrid()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRotationMovesTheNameToTheNewKey(t *testing.T) {
	k0, k1, k2 := testKey(t, 1), testKey(t, 2), hybridKey(t)
	root := &Lineage{Claim: mint(t, "einstein.avtr", k0), Steps: []*Rotation{}}
	s1, err := Rotate(root, k0, k1, nil)
	l1 := extend(t, root, s1, err)
	z, _, err := zoneOn(t, l1, 2, k1)
	if err != nil {
		t.Fatalf("zone by the new key: %v", err)
	}
	if !z.Owner.Equals(k1.GetPublic()) || !z.Claim.Owner.Equals(k0.GetPublic()) || len(z.Rotations) != 1 {
		t.Fatalf("decoded zone: owner %s, claim %s, %d rotations", KeyID(z.Owner), KeyID(z.Claim.Owner), len(z.Rotations))
	}
	if _, _, err := zoneOn(t, l1, 3, k0); !errors.Is(err, ErrWrongOwner) {
		t.Fatalf("old key signing on the rotated chain: %v, want ErrWrongOwner", err)
	}
	// The old key's zone without the chain is valid on its own, and
	// refused by anyone who knows the rotation, whatever its seq.
	old, _, err := zoneOn(t, root, 1000, k0)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckSuccession(l1, old.Lineage()); !errors.Is(err, ErrRotated) {
		t.Fatalf("old key's zone after the rotation: %v, want ErrRotated", err)
	}
	if err := CheckSuccession(root, z.Lineage()); err != nil {
		t.Fatalf("a holder that pinned the claim must follow the rotation: %v", err)
	}
	if !ZoneAhead(z, old) {
		t.Fatal("Select must rank the rotated zone above the old key's higher seq")
	}
	// Ed25519 to hybrid, then on.
	s2, err := Rotate(l1, k1, k2, nil)
	l2 := extend(t, l1, s2, err)
	z2, b2, err := zoneOn(t, l2, 3, k2)
	if err != nil {
		t.Fatalf("hybrid zone: %v", err)
	}
	if KeyType(z2.Owner) != idkey.TypeHybrid {
		t.Fatalf("key type %q", KeyType(z2.Owner))
	}
	t.Logf("zone after Ed25519→Ed25519→hybrid: %d bytes", len(b2))
}

func TestForgedRotationsAreRefused(t *testing.T) {
	k0, k1, k2, rival := testKey(t, 1), testKey(t, 2), testKey(t, 3), testKey(t, 9)
	claim := mint(t, "einstein.avtr", k0)
	root := &Lineage{Claim: claim, Steps: []*Rotation{}}
	good, err := Rotate(root, k0, k1, nil)
	if err != nil {
		t.Fatal(err)
	}
	l1 := extend(t, root, good, nil)
	prev := root.HeadHash()
	k1Key, _ := marshalKey(k1.GetPublic())
	payload := func(p *pb.RotationPayload) []byte {
		b, err := marshalCanonical(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	signWith := func(k crypto.PrivKey, domain string, p []byte) []byte {
		s, err := k.Sign(signedBytes(domain, rotationCodec, p))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	step := func(p []byte, auth, newKey crypto.PrivKey, authKey []byte) []byte {
		sr := &pb.SignedRotation{Payload: p, AuthorityKey: authKey}
		if auth != nil {
			sr.AuthoritySignature = signWith(auth, rotationDomain, p)
		}
		if newKey != nil {
			sr.NewKeySignature = signWith(newKey, rotationNewKeyDomain, p)
		}
		b, err := marshalCanonical(sr)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rotateTo := func(k []byte, index uint32, prev []byte) []byte {
		return payload(&pb.RotationPayload{Name: "einstein.avtr", Index: index, Prev: prev, Kind: pb.RotationKind_ROTATION_KIND_ROTATE, NewKey: k})
	}
	rivalKey, _ := marshalKey(rival.GetPublic())
	k0Key, _ := marshalKey(k0.GetPublic())
	k2Key, _ := marshalKey(k2.GetPublic())
	loop := step(payload(&pb.RotationPayload{Name: "einstein.avtr", Index: 2, Prev: digest(good.Signed()), Kind: pb.RotationKind_ROTATION_KIND_ROTATE, NewKey: k0Key}), k1, k0, nil)
	other := mint(t, "other.avtr", k0)
	otherStep, err := Rotate(&Lineage{Claim: other}, k0, k1, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		steps [][]byte
		want  error
	}{
		{"wrong old-key signature", [][]byte{step(rotateTo(k1Key, 1, prev), rival, k1, nil)}, ErrBadSignature},
		{"missing new-key signature", [][]byte{step(rotateTo(k1Key, 1, prev), k0, nil, nil)}, ErrBadSignature},
		{"new key signed by another", [][]byte{step(rotateTo(k1Key, 1, prev), k0, rival, nil)}, ErrBadSignature},
		{"a name the signer never owned", [][]byte{step(rotateTo(rivalKey, 1, prev), rival, rival, nil)}, ErrBadSignature},
		{"loop back to an old key", [][]byte{good.Signed(), loop}, ErrBadRotation},
		{"rotation to the same key", [][]byte{step(rotateTo(k0Key, 1, prev), k0, k0, nil)}, ErrBadRotation},
		{"wrong index", [][]byte{step(rotateTo(k1Key, 2, prev), k0, k1, nil)}, ErrBadRotation},
		{"hangs off another claim", [][]byte{otherStep.Signed()}, ErrNameMismatch},
		{"out of order", [][]byte{step(rotateTo(k2Key, 2, digest(good.Signed())), k1, k2, nil), good.Signed()}, ErrBadRotation},
		{"ROTATE with an authority key", [][]byte{step(rotateTo(k1Key, 1, prev), k0, k1, k0Key)}, ErrMalformed},
		{"recovery without a commitment", [][]byte{step(payload(&pb.RotationPayload{Name: "einstein.avtr", Index: 1, Prev: prev, Kind: pb.RotationKind_ROTATION_KIND_RECOVER, NewKey: rivalKey}), rival, rival, rivalKey)}, ErrWrongOwner},
		{"junk", [][]byte{[]byte("junk")}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewLineage(claim, tt.steps); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			// Inside a zone value signed by the chain's would-be head,
			// holders refuse it too.
			z := testZone(t, claim, 5)
			if b := signedZoneWithSteps(t, z, rival, tt.steps); b != nil {
				if _, err := testZoneValidator().DecodeValid(z.Key(), b); err == nil {
					t.Fatal("a zone carrying the forged chain validated")
				}
			}
		})
	}
	// A chain past the bound.
	l := l1
	keys := []crypto.PrivKey{k1}
	for i := 0; len(l.Steps) < MaxRotations; i++ {
		next := testKey(t, byte(20+i))
		s, err := Rotate(l, keys[len(keys)-1], next, nil)
		l = extend(t, l, s, err)
		keys = append(keys, next)
	}
	if _, err := Rotate(l, keys[len(keys)-1], testKey(t, 99), nil); !errors.Is(err, ErrBadRotation) {
		t.Fatalf("rotation past the bound minted: %v", err)
	}
	tooMany := append(l.SignedSteps(), step(rotateTo(rivalKey, MaxRotations+1, l.HeadHash()), keys[len(keys)-1], rival, nil))
	if _, err := NewLineage(claim, tooMany); !errors.Is(err, ErrBadRotation) {
		t.Fatalf("chain past the bound: %v, want ErrBadRotation", err)
	}
}

// signedZoneWithSteps signs a zone carrying raw steps with key, bypassing
// Sign's checks as an attacker's own code would.
func signedZoneWithSteps(t testing.TB, z *Zone, key crypto.PrivKey, steps [][]byte) []byte {
	t.Helper()
	ownerKey, _ := marshalKey(key.GetPublic())
	claim := marshal(t, z.Claim)
	p := z.payload(ownerKey)
	p.ClaimHash = digest(claim)
	if len(steps) > 0 {
		p.ChainHash = digest(steps[len(steps)-1])
	}
	env, err := seal(&zoneRecord{p: p}, key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := marshalCanonical(&pb.SignedZone{Envelope: env, Claim: claim, Rotations: steps})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRecoveryKeyTakesTheNameBackFromAThief(t *testing.T) {
	main, rescue, thief, fresh := testKey(t, 1), testKey(t, 5), testKey(t, 6), testKey(t, 7)
	root := &Lineage{Claim: mintRecoverable(t, "einstein.avtr", main, rescue), Steps: []*Rotation{}}

	// The thief, holding the main key, rotates to itself, and on.
	t1, err := Rotate(root, main, thief, nil)
	thiefChain := extend(t, root, t1, err)
	// It cannot move the recovery commitment to a key of its own.
	if _, err := Rotate(thiefChain, thief, testKey(t, 8), commitment(t, thief)); !errors.Is(err, ErrWrongOwner) {
		t.Fatalf("main key changed the recovery commitment: %v", err)
	}
	if _, err := Recover(thiefChain, thief, testKey(t, 8), nil); !errors.Is(err, ErrWrongOwner) {
		t.Fatalf("a key that is not the recovery key recovered: %v", err)
	}
	thief2 := testKey(t, 9)
	t2, err := Rotate(thiefChain, thief, thief2, nil)
	thiefLonger := extend(t, thiefChain, t2, err)

	// The owner recovers from the claim, forking at step 1.
	r1, err := Recover(root, rescue, fresh, nil)
	recovered := extend(t, root, r1, err)
	if !recovered.Head().Equals(fresh.GetPublic()) || !bytes.Equal(recovered.Recovery(), root.Recovery()) {
		t.Fatal("recovery did not hand the name to the fresh key, keeping the commitment")
	}
	// Whichever arrived first, the recovery wins, however long the thief's chain.
	for _, known := range []*Lineage{root, thiefChain, thiefLonger} {
		if err := CheckSuccession(known, recovered); err != nil {
			t.Fatalf("holder at %d steps refused the recovery: %v", len(known.Steps), err)
		}
	}
	for _, late := range []*Lineage{root, thiefChain, thiefLonger} {
		if err := CheckSuccession(recovered, late); !errors.Is(err, ErrRotated) {
			t.Fatalf("after the recovery, the thief's chain of %d steps: %v, want ErrRotated", len(late.Steps), err)
		}
	}
	if CompareLineages(recovered, thiefLonger) <= 0 || CompareLineages(thiefLonger, recovered) >= 0 {
		t.Fatal("Select must rank the recovery ahead of the thief's chain")
	}
	// A forged ROTATE step that changes the commitment is refused on decode.
	p, _ := marshalCanonical(&pb.RotationPayload{Name: "einstein.avtr", Index: 2, Prev: thiefChain.HeadHash(),
		Kind: pb.RotationKind_ROTATION_KIND_ROTATE, NewKey: mustKey(t, thief2), Recovery: commitment(t, thief)})
	sr, _ := marshalCanonical(&pb.SignedRotation{Payload: p,
		AuthoritySignature: mustSign(t, thief, rotationDomain, p), NewKeySignature: mustSign(t, thief2, rotationNewKeyDomain, p)})
	if _, err := NewLineage(root.Claim, append(thiefChain.SignedSteps(), sr)); !errors.Is(err, ErrWrongOwner) {
		t.Fatalf("main key's step changing the commitment: %v, want ErrWrongOwner", err)
	}
	// The thief cannot start over on a claim of its own without the commitment.
	bare := mint(t, "einstein.avtr", main)
	if err := CheckSuccession(recovered, &Lineage{Claim: bare}); err == nil {
		t.Fatal("a fresh claim by the stolen key escaped the recovery")
	}
}

func mustKey(t testing.TB, k crypto.PrivKey) []byte {
	b, err := marshalKey(k.GetPublic())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustSign(t testing.TB, k crypto.PrivKey, domain string, p []byte) []byte {
	s, err := k.Sign(signedBytes(domain, rotationCodec, p))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestHybridRecordWithEitherHalfForgedIsRefused(t *testing.T) {
	h := hybridKey(t)
	c := mint(t, "einstein.avtr", h)
	b := marshal(t, c)
	if _, err := DecodeClaim(b); err != nil {
		t.Fatalf("hybrid claim: %v", err)
	}
	z := testZone(t, c, 1, Record{Type: TypeTXT, Value: "pq"})
	zb := sign(t, z, h)
	if _, err := testZoneValidator().DecodeValid(z.Key(), zb); err != nil {
		t.Fatalf("hybrid zone: %v", err)
	}
	t.Logf("hybrid claim %d bytes, zone %d bytes", len(b), len(zb))
	for _, tt := range []struct {
		name   string
		offset int // into the signature
	}{{"Ed25519 half", 5}, {"ML-DSA-65 half", 64 + 1000}} {
		env := wireValue(t, zb, fSignedEnvelope)
		f, ok := readEnvelope(env)
		if !ok {
			t.Fatal("envelope")
		}
		sig := bytes.Clone(f.sig)
		sig[tt.offset] ^= 0x01
		forged := envelopeBytes(f.key, f.payloadType, f.payload, sig)
		bad, err := marshalCanonical(&pb.SignedZone{Envelope: forged, Claim: wireValue(t, zb, fSignedClaim)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeZone(bad); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s forged: %v, want ErrBadSignature", tt.name, err)
		}
	}
}

// Our envelopes are libp2p's: for an Ed25519 key the bytes equal record.Seal's.
func TestEnvelopeIsLibp2psEnvelope(t *testing.T) {
	k := testKey(t, 1)
	rec := &claimRecord{p: &pb.ClaimPayload{Name: "einstein.avtr", OwnerKey: mustKey(t, k), Difficulty: 1}}
	ours, err := seal(rec, k)
	if err != nil {
		t.Fatal(err)
	}
	env, err := record.Seal(rec, k)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ours, theirs) {
		t.Fatal("our envelope differs from libp2p's")
	}
	if _, err := record.ConsumeTypedEnvelope(ours, &claimRecord{}); err != nil {
		t.Fatalf("libp2p does not open our envelope: %v", err)
	}
}

// FuzzRotation feeds arbitrary bytes as the first step of a claim's chain:
// whatever decodes must be in its one byte form and every error must wrap a
// sentinel.
func FuzzRotation(f *testing.F) {
	k0, k1 := testKey(f, 1), testKey(f, 2)
	claim := mintAt(f, "einstein.avtr", k0, 4, testNow)
	root := &Lineage{Claim: claim, Steps: []*Rotation{}}
	if s, err := Rotate(root, k0, k1, nil); err == nil {
		f.Add(s.Signed())
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := NewLineage(claim, [][]byte{data})
		if err != nil {
			wantSentinel(t, "NewLineage", err)
			return
		}
		s := l.Steps[0]
		if !bytes.Equal(s.Signed(), data) {
			t.Fatal("decoded step is not its input bytes")
		}
		var sr pb.SignedRotation
		if err := unmarshalStrict(data, &sr); err != nil {
			t.Fatal(err)
		}
		again, err := marshalCanonical(&sr)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatal("a decoded step is not in canonical form")
		}
		if err := CheckSuccession(root, l); err != nil {
			t.Fatalf("a valid first step must extend the bare claim: %v", err)
		}
	})
}
