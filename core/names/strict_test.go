package names

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/record"
	recordpb "github.com/libp2p/go-libp2p/core/record/pb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/avnode/avnode/core/names/pb"
)

// These tests play an attacker who holds genuine signed records and wants a
// second valid byte form of them (padding, re-encoding, a swapped or extended
// claim) without the owner's key. Every hostile value is built by hand with
// protowire from the genuine bytes, and each test first shows that a lenient
// decoder, or libp2p's own envelope check, would accept it.

var junk = bytes.Repeat([]byte{0xa5}, 32)

// legacyWitness is a countersignature as field 2 of SignedClaim used to
// carry it: {key, time_unix, signature}.
func legacyWitness(t testing.TB, node crypto.PrivKey) []byte {
	t.Helper()
	key, err := crypto.MarshalPublicKey(node.GetPublic())
	if err != nil {
		t.Fatal(err)
	}
	sig, err := node.Sign([]byte("avtr-claim-witness/v1\nI held no other claim for einstein.avtr"))
	if err != nil {
		t.Fatal(err)
	}
	return join(bytesField(1, key), varintField(2, uint64(testNow.Unix())), bytesField(3, sig))
}

// envelopeAttacks re-encode a genuine envelope. same says whether a lenient
// decoder reads the very same message (a pure re-encoding) rather than the
// message plus unknown fields.
var envelopeAttacks = []struct {
	name string
	same bool
	make func(t testing.TB, env []byte) []byte
}{
	{"unknown field 99 of junk at the end", false, func(t testing.TB, env []byte) []byte {
		return join(env, bytesField(99, junk))
	}},
	{"unknown field 99 of junk at the start", false, func(t testing.TB, env []byte) []byte {
		return join(bytesField(99, junk), env)
	}},
	{"unknown varint field 4 before the signature", false, func(t testing.TB, env []byte) []byte {
		return join(wireRaw(t, env, fEnvPublicKey, fEnvPayloadType, fEnvPayload), varintField(4, 1), wireRaw(t, env, fEnvSignature))
	}},
	{"unknown field inside the public key", false, func(t testing.TB, env []byte) []byte {
		pk := join(wireValue(t, env, fEnvPublicKey), bytesField(3, junk))
		return join(bytesField(fEnvPublicKey, pk), wireRaw(t, env, fEnvPayloadType, fEnvPayload, fEnvSignature))
	}},
	{"fields in reverse order", true, func(t testing.TB, env []byte) []byte {
		return wireRaw(t, env, fEnvSignature, fEnvPayload, fEnvPayloadType, fEnvPublicKey)
	}},
	{"public key last", true, func(t testing.TB, env []byte) []byte {
		return wireRaw(t, env, fEnvPayloadType, fEnvPayload, fEnvSignature, fEnvPublicKey)
	}},
	{"public key fields reordered", true, func(t testing.TB, env []byte) []byte {
		pk := wireValue(t, env, fEnvPublicKey)
		return join(bytesField(fEnvPublicKey, wireRaw(t, pk, 2, 1)), wireRaw(t, env, fEnvPayloadType, fEnvPayload, fEnvSignature))
	}},
	{"public key split in two submessages", true, func(t testing.TB, env []byte) []byte {
		pk := wireValue(t, env, fEnvPublicKey)
		return join(bytesField(fEnvPublicKey, wireRaw(t, pk, 1)), bytesField(fEnvPublicKey, wireRaw(t, pk, 2)),
			wireRaw(t, env, fEnvPayloadType, fEnvPayload, fEnvSignature))
	}},
	{"payload twice", true, func(t testing.TB, env []byte) []byte {
		return join(wireRaw(t, env, fEnvPublicKey, fEnvPayloadType, fEnvPayload, fEnvPayload, fEnvSignature))
	}},
	{"junk payload shadowed by the real one", true, func(t testing.TB, env []byte) []byte {
		return join(wireRaw(t, env, fEnvPublicKey, fEnvPayloadType), bytesField(fEnvPayload, junk), wireRaw(t, env, fEnvPayload, fEnvSignature))
	}},
	{"signature twice", true, func(t testing.TB, env []byte) []byte {
		return join(env, wireRaw(t, env, fEnvSignature))
	}},
	{"long length prefix on the payload", true, func(t testing.TB, env []byte) []byte {
		return join(wireRaw(t, env, fEnvPublicKey, fEnvPayloadType), longLength(fEnvPayload, wireValue(t, env, fEnvPayload)), wireRaw(t, env, fEnvSignature))
	}},
	{"long tag on the signature", true, func(t testing.TB, env []byte) []byte {
		tag := protowire.AppendTag(nil, fEnvSignature, protowire.BytesType)
		tag[len(tag)-1] |= 0x80
		tag = append(tag, 0x00)
		return join(wireRaw(t, env, fEnvPublicKey, fEnvPayloadType, fEnvPayload), tag, protowire.AppendBytes(nil, wireValue(t, env, fEnvSignature)))
	}},
}

// envelopeSubject is a record type whose envelope the attacks are run on.
type envelopeSubject struct {
	name, key string
	genuine   []byte                  // a valid value
	env       []byte                  // its envelope
	rec       func() record.Record    // where libp2p decodes the payload
	wrap      func(env []byte) []byte // the value around an envelope
	decode    func([]byte) error      // DecodeClaim or DecodeZone
	validator interface {
		Validate(string, []byte) error
		Select(string, [][]byte) (int, error)
	}
	decodeValid func(string, []byte) (any, error)
}

func envelopeSubjects(t *testing.T) []envelopeSubject {
	owner := testKey(t, 1)
	c := mint(t, "coolblog.code", owner)
	claim := marshal(t, c)
	zone := sign(t, testZone(t, c, 3, Record{Type: TypeTXT, Value: "hello"}), owner)
	cv, zv := testValidator(), testZoneValidator()
	return []envelopeSubject{{
		name: "claim", key: c.Key(), genuine: claim, env: wireValue(t, claim, fSignedEnvelope),
		rec:  func() record.Record { return &claimRecord{} },
		wrap: claimValue,
		decode: func(b []byte) error {
			_, err := DecodeClaim(b)
			return err
		},
		validator: cv,
		decodeValid: func(k string, b []byte) (any, error) {
			c, err := cv.DecodeValid(k, b)
			if c == nil {
				return nil, err
			}
			return c, err
		},
	}, {
		name: "zone", key: ZoneKey(c.Name), genuine: zone, env: wireValue(t, zone, fSignedEnvelope),
		rec:  func() record.Record { return &zoneRecord{} },
		wrap: func(env []byte) []byte { return zoneValue(env, claim) },
		decode: func(b []byte) error {
			_, err := DecodeZone(b)
			return err
		},
		validator: zv,
		decodeValid: func(k string, b []byte) (any, error) {
			z, err := zv.DecodeValid(k, b)
			if z == nil {
				return nil, err
			}
			return z, err
		},
	}}
}

// wantRefused checks that hostile is refused with want by every entry
// point, and that Select passes it over for the genuine value.
func wantRefused(t *testing.T, s envelopeSubject, hostile []byte, want error) {
	t.Helper()
	if err := s.decode(hostile); !errors.Is(err, want) {
		t.Errorf("Decode: got %v, want %v", err, want)
	}
	if err := s.validator.Validate(s.key, hostile); !errors.Is(err, want) {
		t.Errorf("Validate: got %v, want %v", err, want)
	}
	if v, err := s.decodeValid(s.key, hostile); v != nil || !errors.Is(err, want) {
		t.Errorf("DecodeValid: got %v, %v; want %v", v, err, want)
	}
	if _, err := s.validator.Select(s.key, [][]byte{hostile}); !errors.Is(err, want) {
		t.Errorf("Select of the hostile value alone: got %v, want %v", err, want)
	}
	for _, order := range [][2]int{{0, 1}, {1, 0}} {
		values := [][]byte{hostile, s.genuine}
		values[order[0]], values[order[1]] = hostile, s.genuine
		if i, err := s.validator.Select(s.key, values); err != nil || !bytes.Equal(values[i], s.genuine) {
			t.Errorf("Select(%d values) = %d, %v; want the genuine value", len(values), i, err)
		}
	}
}

// TestEnvelopeMustBeCanonical: the signature covers only the payload, so a
// padded or re-encoded envelope still verifies; only the canonical-encoding
// rule refuses it.
func TestEnvelopeMustBeCanonical(t *testing.T) {
	for _, s := range envelopeSubjects(t) {
		if err := s.validator.Validate(s.key, s.genuine); err != nil {
			t.Fatalf("genuine %s: %v", s.name, err)
		}
		var genuine recordpb.Envelope
		if err := proto.Unmarshal(s.env, &genuine); err != nil {
			t.Fatal(err)
		}
		for _, a := range envelopeAttacks {
			t.Run(s.name+"/"+a.name, func(t *testing.T) {
				hostile := a.make(t, s.env)
				if bytes.Equal(hostile, s.env) {
					t.Fatal("the attack did not change the bytes")
				}
				// libp2p alone accepts it: the owner's signature still verifies.
				e, err := record.ConsumeTypedEnvelope(hostile, s.rec())
				if err != nil {
					t.Fatalf("libp2p refuses the hostile envelope (%v); the test would not exercise the canonical rule", err)
				}
				if !e.PublicKey.Equals(testKey(t, 1).GetPublic()) {
					t.Fatal("libp2p read another signer")
				}
				var lenient recordpb.Envelope
				if err := proto.Unmarshal(hostile, &lenient); err != nil {
					t.Fatal(err)
				}
				if a.same && !proto.Equal(&lenient, &genuine) {
					t.Fatal("a lenient decoder should read the genuine envelope")
				}
				wantRefused(t, s, s.wrap(hostile), ErrMalformed)
			})
		}
	}
}

// TestSignedClaimStrict: the claim value is SignedClaim{envelope} and
// nothing else; in particular the old witness field 2 is refused, not
// skipped. A lenient decoder reads the genuine envelope out of each.
func TestSignedClaimStrict(t *testing.T) {
	owner := testKey(t, 1)
	c := mint(t, "einstein.avtr", owner)
	g := marshal(t, c)
	env := wireValue(t, g, fSignedEnvelope)
	w := legacyWitness(t, testKey(t, 10))
	var twenty []byte
	for i := range 20 {
		twenty = append(twenty, bytesField(fSignedClaim, legacyWitness(t, testKey(t, byte(100+i))))...)
	}
	tests := []struct {
		name    string
		hostile []byte
	}{
		{"witness after the envelope", join(g, bytesField(2, w))},
		{"witness before the envelope", join(bytesField(2, w), g)},
		{"empty witness field", join(g, bytesField(2, nil))},
		{"twenty witnesses", join(g, twenty)},
		{"unknown field 99 of junk", join(g, bytesField(99, junk))},
		{"unknown varint field 10", join(g, varintField(10, 1))},
		{"envelope twice", join(g, g)},
		{"junk envelope shadowed by the real one", join(claimValue(junk), g)},
		{"long length prefix", longLength(fSignedEnvelope, env)},
	}
	s := envelopeSubjects(t)[0]
	s.key, s.genuine = c.Key(), g
	zoneOwner := sign(t, testZone(t, c, 1), owner)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var lenient pb.SignedClaim
			if err := proto.Unmarshal(tt.hostile, &lenient); err != nil || !bytes.Equal(lenient.GetEnvelope(), env) {
				t.Fatalf("a lenient decoder should read the genuine envelope (%v)", err)
			}
			wantRefused(t, s, tt.hostile, ErrMalformed)
			// Not even the owner can embed such a claim in a zone.
			z := resignZone(t, zoneOwner, owner, tt.hostile, digest(tt.hostile))
			if _, err := DecodeZone(z); !errors.Is(err, ErrMalformed) {
				t.Fatalf("zone embedding it: got %v, want ErrMalformed", err)
			}
		})
	}
}

// TestLegacyWitnessedClaimRefused: a claim with three witnesses written by
// the old format is refused as a whole, though its envelope alone is valid.
func TestLegacyWitnessedClaimRefused(t *testing.T) {
	old := readSeed(t, "FuzzClaim/regress-legacy-witnesses")[0]
	witnesses := 0
	for _, f := range wireFields(t, old) {
		if f.num == fSignedClaim {
			witnesses++
		}
	}
	if witnesses != 3 {
		t.Fatalf("the legacy sample has %d witness fields, want 3", witnesses)
	}
	if _, err := DecodeClaim(old); !errors.Is(err, ErrMalformed) {
		t.Fatalf("DecodeClaim: got %v, want ErrMalformed", err)
	}
	if err := fuzzValidator().Validate("/avtr-claim/einstein.avtr", old); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Validate: got %v, want ErrMalformed", err)
	}
	bare := claimValue(wireValue(t, old, fSignedEnvelope))
	if err := fuzzValidator().Validate("/avtr-claim/einstein.avtr", bare); err != nil {
		t.Fatalf("its envelope alone should be a valid claim: %v", err)
	}
}

// TestSignedZoneStrict: the zone value is SignedZone{envelope, claim} in
// canonical form. A lenient decoder reads the genuine envelope and claim out
// of each, and claim_hash still matches.
func TestSignedZoneStrict(t *testing.T) {
	s := envelopeSubjects(t)[1]
	g := s.genuine
	env, claim := wireValue(t, g, fSignedEnvelope), wireValue(t, g, fSignedClaim)
	envF, claimF := wireRaw(t, g, fSignedEnvelope), wireRaw(t, g, fSignedClaim)
	tests := []struct {
		name    string
		hostile []byte
	}{
		{"unknown field 99 of junk at the end", join(g, bytesField(99, junk))},
		{"unknown field 99 of junk at the start", join(bytesField(99, junk), g)},
		{"unknown varint field 3 between", join(envF, varintField(3, 7), claimF)},
		{"claim before envelope", join(claimF, envF)},
		{"envelope twice", join(envF, envF, claimF)},
		{"claim twice", join(envF, claimF, claimF)},
		{"junk envelope shadowed by the real one", join(bytesField(fSignedEnvelope, junk), g)},
		{"junk claim shadowed by the real one", join(envF, bytesField(fSignedClaim, junk), claimF)},
		{"long length prefix on the envelope", join(longLength(fSignedEnvelope, env), claimF)},
		{"long length prefix on the claim", join(envF, longLength(fSignedClaim, claim))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var lenient pb.SignedZone
			if err := proto.Unmarshal(tt.hostile, &lenient); err != nil ||
				!bytes.Equal(lenient.GetEnvelope(), env) || !bytes.Equal(lenient.GetClaim(), claim) {
				t.Fatalf("a lenient decoder should read the genuine envelope and claim (%v)", err)
			}
			wantRefused(t, s, tt.hostile, ErrMalformed)
		})
	}
}

// resignZone is the owner signing the payload of zone again with another
// claim_hash, around the claim bytes given: what only the owner can do.
func resignZone(t *testing.T, zone []byte, owner crypto.PrivKey, claim, hash []byte) []byte {
	t.Helper()
	var p pb.ZonePayload
	if err := proto.Unmarshal(wireValue(t, wireValue(t, zone, fSignedEnvelope), fEnvPayload), &p); err != nil {
		t.Fatal(err)
	}
	p.ClaimHash = hash
	e, err := record.Seal(&zoneRecord{p: &p}, owner)
	if err != nil {
		t.Fatal(err)
	}
	env, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return zoneValue(env, claim)
}

// TestZoneClaimBound: the owner signs the hash of the exact claim bytes the
// zone carries, so nobody else can swap in another genuine claim, not even
// another one of the same owner's.
func TestZoneClaimBound(t *testing.T) {
	alice, bob := testKey(t, 1), testKey(t, 2)
	c1 := mint(t, "coolblog.code", alice)
	c2 := mintAt(t, "coolblog.code", alice, testDifficulty, testNow.Add(time.Minute)) // the owner minted twice
	cb := mint(t, "coolblog.code", bob)
	claim1, claim2 := marshal(t, c1), marshal(t, c2)
	if bytes.Equal(claim1, claim2) {
		t.Fatal("the two mints gave the same claim")
	}
	if err := testValidator().Validate(c2.Key(), claim2); err != nil || !c2.Owner.Equals(c1.Owner) {
		t.Fatalf("the second claim must be valid and the owner's: %v", err)
	}
	genuine := sign(t, testZone(t, c1, 5, Record{Type: TypeTXT, Value: "hi"}), alice)
	env := wireValue(t, genuine, fSignedEnvelope)
	paddedClaim := join(claim1, bytesField(99, junk))
	witnessedClaim := join(claim1, bytesField(2, legacyWitness(t, testKey(t, 10))))

	tests := []struct {
		name  string
		value []byte
		want  error
	}{
		{"another genuine claim of the owner", zoneValue(env, claim2), ErrWrongOwner},
		{"another key's claim", zoneValue(env, marshal(t, cb)), ErrWrongOwner},
		{"the claim padded", zoneValue(env, paddedClaim), ErrWrongOwner},
		{"no claim", bytesField(fSignedEnvelope, env), ErrWrongOwner},
		{"owner signs no claim_hash", resignZone(t, genuine, alice, claim1, nil), ErrWrongOwner},
		{"owner signs the hash of another claim", resignZone(t, genuine, alice, claim1, digest(claim2)), ErrWrongOwner},
		{"owner signs the hash of a padded claim", resignZone(t, genuine, alice, paddedClaim, digest(paddedClaim)), ErrMalformed},
		{"owner signs the hash of a witnessed claim", resignZone(t, genuine, alice, witnessedClaim, digest(witnessedClaim)), ErrMalformed},
		// The control: the owner may of course sign over its other claim.
		{"owner signs over its other claim", resignZone(t, genuine, alice, claim2, digest(claim2)), nil},
	}
	s := envelopeSubjects(t)[1]
	s.genuine, s.key = genuine, ZoneKey(c1.Name)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want == nil {
				z, err := DecodeZone(tt.value)
				if err != nil || z.Claim.Work() != c2.Work() {
					t.Fatalf("got %v, want a valid zone on the second claim", err)
				}
				if err := testZoneValidator().Validate(s.key, tt.value); err != nil {
					t.Fatal(err)
				}
				return
			}
			wantRefused(t, s, tt.value, tt.want)
		})
	}

	// claim_hash is sha256 of the SignedClaim bytes, computed here apart
	// from the package.
	h1, h2 := sha256.Sum256(claim1), sha256.Sum256(claim2)
	var p pb.ZonePayload
	if err := proto.Unmarshal(wireValue(t, env, fEnvPayload), &p); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.GetClaimHash(), h1[:]) || bytes.Equal(p.GetClaimHash(), h2[:]) {
		t.Fatalf("claim_hash %x: want sha256 of the first claim %x", p.GetClaimHash(), h1)
	}
}
