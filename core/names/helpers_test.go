package names

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	recordpb "github.com/libp2p/go-libp2p/core/record/pb"
	"google.golang.org/protobuf/encoding/protowire"
)

// testDifficulty keeps minting in tests to microseconds.
const testDifficulty = 6

// testNow is a fixed clock so tests and fuzz seeds never age.
var testNow = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func fixedNow() time.Time { return testNow }

// testKey returns a deterministic Ed25519 key; the same seed gives the same
// key in every run, so failures reproduce.
func testKey(t testing.TB, seed byte) crypto.PrivKey {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{seed}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func testPeerID(t testing.TB, seed byte) string {
	t.Helper()
	id, err := peer.IDFromPrivateKey(testKey(t, seed))
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

func mustParse(t testing.TB, s string) Name {
	t.Helper()
	n, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func mintAt(t testing.TB, name string, owner crypto.PrivKey, difficulty int, now time.Time) *Claim {
	t.Helper()
	c, err := MintClaim(context.Background(), mustParse(t, name), owner, difficulty, now)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mint(t testing.TB, name string, owner crypto.PrivKey) *Claim {
	t.Helper()
	return mintAt(t, name, owner, testDifficulty, testNow)
}

func marshal(t testing.TB, c *Claim) []byte {
	t.Helper()
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testValidator() ClaimValidator {
	return ClaimValidator{MinDifficulty: testDifficulty, Now: fixedNow}
}

func testZoneValidator() ZoneValidator {
	return ZoneValidator{Now: fixedNow, Claims: testValidator()}
}

// testZone returns a signable zone for name owned by owner's claim c.
func testZone(t testing.TB, c *Claim, seq uint64, records ...Record) *Zone {
	t.Helper()
	return &Zone{
		Name: c.Name, Seq: seq, Expiry: testNow.Add(24 * time.Hour), TTL: time.Hour,
		Records: records, Claim: c,
	}
}

func sign(t testing.TB, z *Zone, owner crypto.PrivKey) []byte {
	t.Helper()
	b, err := z.Sign(owner)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// permutations calls f with every ordering of 0..n-1.
func permutations(n int, f func([]int)) {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	var rec func(k int)
	rec = func(k int) {
		if k == n {
			f(append([]int(nil), idx...))
			return
		}
		for i := k; i < n; i++ {
			idx[k], idx[i] = idx[i], idx[k]
			rec(k + 1)
			idx[k], idx[i] = idx[i], idx[k]
		}
	}
	rec(0)
}

// The helpers below build hostile wire bytes by hand with protowire, so the
// attacker tests do not depend on the encoders under test.

// wireField is one top-level protobuf field exactly as it sits on the wire.
type wireField struct {
	num protowire.Number
	typ protowire.Type
	raw []byte // tag and value
	val []byte // the value of a length-delimited field, without its prefix
}

// wireFields splits b into its top-level fields, in wire order.
func wireFields(t testing.TB, b []byte) []wireField {
	t.Helper()
	var out []wireField
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("tag: %v", protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			t.Fatalf("field %d: %v", num, protowire.ParseError(m))
		}
		f := wireField{num: num, typ: typ, raw: b[:n+m]}
		if typ == protowire.BytesType {
			f.val, _ = protowire.ConsumeBytes(b[n : n+m])
		}
		out = append(out, f)
		b = b[n+m:]
	}
	return out
}

// wireValue returns the value of the single length-delimited field num of b.
func wireValue(t testing.TB, b []byte, num protowire.Number) []byte {
	t.Helper()
	var found []byte
	n := 0
	for _, f := range wireFields(t, b) {
		if f.num == num {
			found, n = f.val, n+1
		}
	}
	if n != 1 {
		t.Fatalf("field %d occurs %d times, want once", num, n)
	}
	return found
}

// wireRaw returns the raw bytes (tag and value) of the fields num of b, in order.
func wireRaw(t testing.TB, b []byte, nums ...protowire.Number) []byte {
	t.Helper()
	var out []byte
	for _, num := range nums {
		for _, f := range wireFields(t, b) {
			if f.num == num {
				out = append(out, f.raw...)
			}
		}
	}
	return out
}

// bytesField encodes one length-delimited field.
func bytesField(num protowire.Number, v []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
}

// varintField encodes one varint field.
func varintField(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

// longLength encodes field num with its length prefix one byte longer than
// needed (a trailing 0x80 continuation and a zero byte): the same value to a
// lenient decoder, other bytes on the wire.
func longLength(num protowire.Number, v []byte) []byte {
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	l := protowire.AppendVarint(nil, uint64(len(v)))
	l[len(l)-1] |= 0x80
	b = append(append(b, l...), 0x00)
	return append(b, v...)
}

func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// Field numbers of the formats under attack (pb/names.proto and libp2p's
// envelope.proto).
const (
	fSignedEnvelope protowire.Number = 1 // SignedClaim.envelope, SignedZone.envelope
	fSignedClaim    protowire.Number = 2 // SignedZone.claim; once SignedClaim.witnesses
	fSignedSteps    protowire.Number = 3 // SignedZone.rotations
	fEnvPublicKey   protowire.Number = 1
	fEnvPayloadType protowire.Number = 2
	fEnvPayload     protowire.Number = 3
	fEnvSignature   protowire.Number = 5
)

// claimValue wraps an envelope as a claim value, SignedClaim{envelope}.
func claimValue(env []byte) []byte { return bytesField(fSignedEnvelope, env) }

// zoneValue wraps an envelope and a claim value as SignedZone{envelope, claim}.
func zoneValue(env, claim []byte) []byte {
	return join(bytesField(fSignedEnvelope, env), bytesField(fSignedClaim, claim))
}

// handEnvelope encodes a libp2p envelope in its one canonical form, written
// out field by field: public_key{type, data}, payload_type, payload, signature.
func handEnvelope(env *recordpb.Envelope) []byte {
	var b []byte
	if k := env.GetPublicKey(); k != nil {
		b = append(b, bytesField(fEnvPublicKey, join(varintField(1, uint64(k.GetType())), bytesField(2, k.GetData())))...)
	}
	for _, f := range []struct {
		num protowire.Number
		v   []byte
	}{{fEnvPayloadType, env.GetPayloadType()}, {fEnvPayload, env.GetPayload()}, {fEnvSignature, env.GetSignature()}} {
		if len(f.v) > 0 {
			b = append(b, bytesField(f.num, f.v)...)
		}
	}
	return b
}

// mintWhere mints claims of name for owner, one second apart from testNow
// on, until one satisfies ok (e.g. a work hash above or below another's).
// Each try has about an even chance for such a test, so 64 are plenty.
func mintWhere(t testing.TB, name string, owner crypto.PrivKey, ok func(*Claim) bool) *Claim {
	t.Helper()
	for i := range 64 {
		if c := mintAt(t, name, owner, testDifficulty, testNow.Add(time.Duration(i)*time.Second)); ok(c) {
			return c
		}
	}
	t.Fatal("no claim with the wanted work hash in 64 mints")
	return nil
}

// lowerWork reports whether a's proof-of-work hash is below b's.
func lowerWork(a, b *Claim) bool {
	wa, wb := a.Work(), b.Work()
	return bytes.Compare(wa[:], wb[:]) < 0
}
