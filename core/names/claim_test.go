package names

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	cryptopb "github.com/libp2p/go-libp2p/core/crypto/pb"
	recordpb "github.com/libp2p/go-libp2p/core/record/pb"
	"google.golang.org/protobuf/proto"

	"github.com/avnode/avnode/core/names/pb"
)

func TestClaimRoundTrip(t *testing.T) {
	owner := testKey(t, 1)
	c := witnessed(t, mint(t, "einstein.avtr", owner), 10, 11)
	b := marshal(t, c)
	got, err := DecodeClaim(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != c.Name || !got.Owner.Equals(owner.GetPublic()) || !got.Created.Equal(testNow) ||
		got.Difficulty != testDifficulty || got.Nonce != c.Nonce || len(got.Witnesses) != 2 {
		t.Fatalf("decoded %+v, want %+v", got, c)
	}
	if n := CertifiedBy(got); n != 2 {
		t.Fatalf("CertifiedBy = %d, want 2", n)
	}
	if again := marshal(t, got); !bytes.Equal(again, b) {
		t.Fatal("decode then marshal must give the same bytes")
	}
	if err := testValidator().Validate(c.Key(), b); err != nil {
		t.Fatal(err)
	}
	if c.Key() != "/avtr-claim/einstein.avtr" {
		t.Fatalf("key = %q", c.Key())
	}
}

func TestMintClaimRefuses(t *testing.T) {
	owner := testKey(t, 1)
	ctx := context.Background()
	if _, err := MintClaim(ctx, mustParse(t, "api.coolblog.code"), owner, 1, testNow); !errors.Is(err, ErrBadName) {
		t.Errorf("sub name: got %v, want ErrBadName", err)
	}
	if _, err := MintClaim(ctx, Name{}, owner, 1, testNow); !errors.Is(err, ErrBadName) {
		t.Errorf("zero name: got %v, want ErrBadName", err)
	}
	if _, err := MintClaim(ctx, mustParse(t, "a.b"), owner, MaxDifficulty+1, testNow); !errors.Is(err, ErrInsufficientWork) {
		t.Errorf("difficulty too high: got %v", err)
	}
	secp, _, _ := crypto.GenerateSecp256k1Key(bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	if _, err := MintClaim(ctx, mustParse(t, "a.b"), secp, 1, testNow); !errors.Is(err, ErrUnknownKeyType) {
		t.Errorf("secp256k1 key: got %v, want ErrUnknownKeyType", err)
	}
}

func TestMintClaimCancel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := MintClaim(ctx, mustParse(t, "a.b"), testKey(t, 1), MaxDifficulty, testNow)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("mint took %s to notice cancellation", d)
	}
}

// envelopeOf digs the owner's envelope out of a claim value.
func envelopeOf(t *testing.T, value []byte) (*pb.SignedClaim, *recordpb.Envelope) {
	t.Helper()
	var sc pb.SignedClaim
	var env recordpb.Envelope
	if err := proto.Unmarshal(value, &sc); err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(sc.Envelope, &env); err != nil {
		t.Fatal(err)
	}
	return &sc, &env
}

// rewrap puts a modified envelope back into a claim value.
func rewrap(t *testing.T, sc *pb.SignedClaim, env *recordpb.Envelope) []byte {
	t.Helper()
	var err error
	if sc.Envelope, err = proto.Marshal(env); err != nil {
		t.Fatal(err)
	}
	b, err := marshalCanonical(sc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestClaimForgeries(t *testing.T) {
	owner, other := testKey(t, 1), testKey(t, 2)
	good := marshal(t, mintAt(t, "einstein.avtr", owner, 12, testNow))
	otherKey, _ := crypto.PublicKeyToProto(other.GetPublic())

	tests := []struct {
		name   string
		modify func(*recordpb.Envelope)
		want   error
	}{
		{"flip signature bit", func(e *recordpb.Envelope) { e.Signature[3] ^= 1 }, ErrBadSignature},
		{"flip payload bit", func(e *recordpb.Envelope) { e.Payload[len(e.Payload)-1] ^= 1 }, ErrBadSignature},
		{"swap envelope key", func(e *recordpb.Envelope) { e.PublicKey = otherKey }, ErrBadSignature},
		{"truncate signature", func(e *recordpb.Envelope) { e.Signature = e.Signature[:10] }, ErrBadSignature},
		{"wrong payload type", func(e *recordpb.Envelope) { e.PayloadType = zoneCodec }, ErrMalformed},
		{"RSA key type", func(e *recordpb.Envelope) { e.PublicKey.Type = cryptopb.KeyType_RSA.Enum() }, ErrUnknownKeyType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, env := envelopeOf(t, good)
			tt.modify(env)
			err := testValidator().Validate("/avtr-claim/einstein.avtr", rewrap(t, sc, env))
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// TestClaimResignedByOtherKey: an attacker who takes the owner's payload,
// puts their own key in and signs it has no proof of work for their key.
func TestClaimResignedByOtherKey(t *testing.T) {
	c := mintAt(t, "einstein.avtr", testKey(t, 1), 12, testNow)
	attacker := testKey(t, 2)
	sc, env := envelopeOf(t, marshal(t, c))
	var p pb.ClaimPayload
	if err := proto.Unmarshal(env.Payload, &p); err != nil {
		t.Fatal(err)
	}
	p.OwnerKey, _ = crypto.MarshalPublicKey(attacker.GetPublic())
	sc.Envelope, _ = seal(&claimRecord{p: &p}, attacker)
	b, _ := marshalCanonical(sc)
	if err := testValidator().Validate(c.Key(), b); !errors.Is(err, ErrInsufficientWork) {
		t.Fatalf("got %v, want ErrInsufficientWork", err)
	}

	// Signed by the attacker but still naming the owner: wrong owner.
	p.OwnerKey, _ = crypto.MarshalPublicKey(c.Owner)
	sc.Envelope, _ = seal(&claimRecord{p: &p}, attacker)
	b, _ = marshalCanonical(sc)
	if err := testValidator().Validate(c.Key(), b); !errors.Is(err, ErrWrongOwner) {
		t.Fatalf("got %v, want ErrWrongOwner", err)
	}
}

// TestClaimEveryBitFlip: no single-bit change of a claim value validates.
func TestClaimEveryBitFlip(t *testing.T) {
	good := marshal(t, mint(t, "einstein.avtr", testKey(t, 1)))
	v := testValidator()
	for i := range len(good) * 8 {
		b := bytes.Clone(good)
		b[i/8] ^= 1 << (i % 8)
		if err := v.Validate("/avtr-claim/einstein.avtr", b); err == nil {
			t.Fatalf("flipping bit %d still validates", i)
		}
	}
}

func TestClaimValidate(t *testing.T) {
	owner := testKey(t, 1)
	good := marshal(t, mint(t, "einstein.avtr", owner))
	future := marshal(t, mintAt(t, "einstein.avtr", owner, testDifficulty, testNow.Add(MaxClockSkew+time.Minute)))
	nearFuture := marshal(t, mintAt(t, "einstein.avtr", owner, testDifficulty, testNow.Add(MaxClockSkew-time.Minute)))
	weak := marshal(t, mintAt(t, "einstein.avtr", owner, testDifficulty-2, testNow))
	tests := []struct {
		name  string
		key   string
		value []byte
		want  error
	}{
		{"good", "/avtr-claim/einstein.avtr", good, nil},
		{"clock skew tolerated", "/avtr-claim/einstein.avtr", nearFuture, nil},
		{"other name", "/avtr-claim/newton.avtr", good, ErrNameMismatch},
		{"sub name key", "/avtr-claim/x.einstein.avtr", good, ErrMalformed},
		{"upper-case key", "/avtr-claim/Einstein.avtr", good, ErrMalformed},
		{"zone namespace", "/avtr-zone/einstein.avtr", good, ErrMalformed},
		{"no namespace", "einstein.avtr", good, ErrMalformed},
		{"from the future", "/avtr-claim/einstein.avtr", future, ErrFromFuture},
		{"insufficient work", "/avtr-claim/einstein.avtr", weak, ErrInsufficientWork},
		{"empty", "/avtr-claim/einstein.avtr", nil, ErrMalformed},
		{"garbage", "/avtr-claim/einstein.avtr", []byte("not a claim"), ErrMalformed},
		{"truncated", "/avtr-claim/einstein.avtr", good[:len(good)/2], ErrMalformed},
		{"oversized", "/avtr-claim/einstein.avtr", make([]byte, MaxRecordSize+1), ErrTooLarge},
		{"trailing junk", "/avtr-claim/einstein.avtr", append(bytes.Clone(good), 0x50, 0x01), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := testValidator().Validate(tt.key, tt.value)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Validate(%q) = %v, want %v", tt.key, err, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), tt.key) && tt.want != ErrTooLarge && tt.want != ErrMalformed {
				t.Fatalf("error %q does not name the key %q", err, tt.key)
			}
		})
	}
}

func TestClaimValidatorDefaults(t *testing.T) {
	c := mint(t, "einstein.avtr", testKey(t, 1))
	err := ClaimValidator{}.Validate(c.Key(), marshal(t, c))
	if !errors.Is(err, ErrInsufficientWork) || !strings.Contains(err.Error(), "needs 25") {
		t.Fatalf("zero validator must require DefaultDifficulty: %v", err)
	}
}

func TestWitnessCounting(t *testing.T) {
	owner := testKey(t, 1)
	c := mint(t, "einstein.avtr", owner)
	witnessed(t, c, 10, 10, 11) // 10 twice: AddWitness ignores the repeat
	if len(c.Witnesses) != 2 {
		t.Fatalf("AddWitness kept a duplicate: %d witnesses", len(c.Witnesses))
	}
	if err := c.AddWitness(owner, testNow); !errors.Is(err, ErrBadWitness) {
		t.Fatalf("owner witnessing itself: got %v", err)
	}
	if err := c.AddWitness(testKey(t, 12), testNow.Add(-time.Hour)); !errors.Is(err, ErrBadWitness) {
		t.Fatalf("witness before the claim: got %v", err)
	}

	dup := c.Witnesses[0] // a second copy of a valid witness, added by hand
	forged := Witness{Key: testKey(t, 13).GetPublic(), Time: testNow, Signature: bytes.Clone(c.Witnesses[1].Signature)}
	self := signedWitness(t, c, owner, testNow)
	early := signedWitness(t, c, testKey(t, 14), testNow.Add(-time.Second))
	c.Witnesses = append(c.Witnesses, dup, forged, self, early)
	want := 2
	if n := CertifiedBy(c); n != want {
		t.Fatalf("CertifiedBy = %d, want %d (duplicate, forged, self and early must not count)", n, want)
	}
	decoded, err := DecodeClaim(marshal(t, c))
	if err != nil {
		t.Fatal(err)
	}
	if n := CertifiedBy(decoded); n != want {
		t.Fatalf("after round trip CertifiedBy = %d, want %d", n, want)
	}

	// A witness signature does not carry over to another claim.
	other := mint(t, "einstein.avtr", testKey(t, 2))
	other.Witnesses = append(other.Witnesses, c.Witnesses[0])
	if n := CertifiedBy(other); n != 0 {
		t.Fatalf("transplanted witness counted: %d", n)
	}
}

// signedWitness signs c's statement directly, bypassing AddWitness checks.
func signedWitness(t *testing.T, c *Claim, priv crypto.PrivKey, at time.Time) Witness {
	t.Helper()
	sig, err := priv.Sign(c.witnessStatement(at.Unix()))
	if err != nil {
		t.Fatal(err)
	}
	return Witness{Key: priv.GetPublic(), Time: at, Signature: sig}
}

func TestWitnessLimit(t *testing.T) {
	c := mint(t, "einstein.avtr", testKey(t, 1))
	for i := range MaxWitnesses {
		witnessed(t, c, byte(100+i))
	}
	if err := c.AddWitness(testKey(t, 99), testNow); !errors.Is(err, ErrBadWitness) {
		t.Fatalf("witness beyond the limit: got %v", err)
	}
	b := marshal(t, c)
	if err := testValidator().Validate(c.Key(), b); err != nil {
		t.Fatalf("claim with %d witnesses: %v", MaxWitnesses, err)
	}
	c.Witnesses = append(c.Witnesses, signedWitness(t, c, testKey(t, 99), testNow))
	if _, err := DecodeClaim(marshal(t, c)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("claim with %d witnesses: got %v, want ErrTooLarge", MaxWitnesses+1, err)
	}
}

func TestClaimSelect(t *testing.T) {
	alice, bob := testKey(t, 1), testKey(t, 2)
	a0 := mint(t, "einstein.avtr", alice)
	b0 := mint(t, "einstein.avtr", bob)
	lowerWork := a0
	if bytes.Compare(b0.work[:], a0.work[:]) < 0 {
		lowerWork = b0
	}
	a1 := witnessed(t, mint(t, "einstein.avtr", alice), 10)
	b3 := witnessed(t, mint(t, "einstein.avtr", bob), 20, 21, 22)
	a3 := witnessed(t, mint(t, "einstein.avtr", alice), 10, 11, 12)
	a5 := witnessed(t, mint(t, "einstein.avtr", alice), 10, 11, 12, 13, 14)
	forgedA := mint(t, "einstein.avtr", alice)
	forgedA.Witnesses = []Witness{{Key: testKey(t, 30).GetPublic(), Time: testNow, Signature: make([]byte, 64)},
		{Key: testKey(t, 31).GetPublic(), Time: testNow, Signature: make([]byte, 64)}}

	tests := []struct {
		name   string
		claims []*Claim
		want   *Claim
	}{
		{"two keys race uncertified: lower work wins", []*Claim{a0, b0}, lowerWork},
		{"a witness beats none", []*Claim{b0, a1}, a1},
		{"certified beats uncertified", []*Claim{a1, b3}, b3},
		{"more witnesses win among certified", []*Claim{b3, a5}, a5},
		{"forged witnesses do not count", []*Claim{forgedA, a1}, a1},
		{"same key merges to most witnesses", []*Claim{a0, a1, a3}, a3},
		{"five-way race", []*Claim{a0, b0, a1, b3, forgedA}, b3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			values := make([][]byte, len(tt.claims))
			for i, c := range tt.claims {
				values[i] = marshal(t, c)
			}
			want := marshal(t, tt.want)
			permutations(len(values), func(order []int) {
				shuffled := make([][]byte, len(order))
				for i, j := range order {
					shuffled[i] = values[j]
				}
				i, err := testValidator().Select(tt.want.Key(), shuffled)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(shuffled[i], want) {
					t.Fatalf("order %v picked a different claim", order)
				}
			})
		})
	}
}

func TestClaimSelectSkipsInvalid(t *testing.T) {
	good := marshal(t, mint(t, "einstein.avtr", testKey(t, 1)))
	other := marshal(t, mint(t, "newton.avtr", testKey(t, 2)))
	values := [][]byte{[]byte("junk"), other, good, make([]byte, MaxRecordSize+1)}
	i, err := testValidator().Select("/avtr-claim/einstein.avtr", values)
	if err != nil || i != 2 {
		t.Fatalf("Select = %d, %v; want 2", i, err)
	}
	if _, err := testValidator().Select("/avtr-claim/einstein.avtr", values[:2]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Select of only invalid values: got %v", err)
	}
	if _, err := testValidator().Select("/avtr-claim/einstein.avtr", nil); err == nil {
		t.Fatal("Select of nothing must fail")
	}
}

func TestHolderCheck(t *testing.T) {
	alice, bob := testKey(t, 1), testKey(t, 2)
	a0 := marshal(t, mint(t, "einstein.avtr", alice))
	a2 := marshal(t, witnessed(t, mint(t, "einstein.avtr", alice), 10, 11))
	b3 := marshal(t, witnessed(t, mint(t, "einstein.avtr", bob), 10, 11, 12))
	newton := marshal(t, mint(t, "newton.avtr", alice))
	tests := []struct {
		name               string
		existing, incoming []byte
		want               error
	}{
		{"first claim", nil, a0, nil},
		{"same claim again", a0, a0, nil},
		{"same key, more witnesses", a0, a2, nil},
		{"same key, fewer witnesses", a2, a0, ErrWorseClaim},
		{"other key, even certified", a0, b3, ErrNameTaken},
		{"other name", a0, newton, ErrNameMismatch},
		{"damaged store", []byte("junk"), a0, nil},
		{"junk incoming", a0, []byte("junk"), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := HolderCheck(tt.existing, tt.incoming)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	err := HolderCheck(a0, b3)
	want := "claim einstein.avtr: name already held by key " + KeyID(alice.GetPublic()) + "; choose another name"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("message %q, want prefix %q", err, want)
	}
}

func TestKeyID(t *testing.T) {
	id := KeyID(testKey(t, 1).GetPublic())
	if !strings.HasPrefix(id, "k51") || id != KeyID(testKey(t, 1).GetPublic()) || id == KeyID(testKey(t, 2).GetPublic()) {
		t.Fatalf("KeyID = %q: want a stable, distinct k51… string", id)
	}
	if KeyID(nil) != "<no key>" {
		t.Fatal("KeyID(nil)")
	}
}

func TestCertified(t *testing.T) {
	c := witnessed(t, mint(t, "einstein.avtr", testKey(t, 1)), 10, 11)
	v := testValidator()
	if v.Certified(c) {
		t.Fatal("2 witnesses must not reach quorum 3")
	}
	if !v.Certified(witnessed(t, c, 12)) {
		t.Fatal("3 witnesses must reach quorum 3")
	}
}

func TestMergeWitnesses(t *testing.T) {
	owner := testKey(t, 1)
	c := mint(t, "einstein.avtr", owner)
	copyB, err := DecodeClaim(marshal(t, c)) // the same signed claim, stored elsewhere
	if err != nil {
		t.Fatal(err)
	}
	witnessed(t, c, 10, 11)
	witnessed(t, copyB, 11, 12)
	copyB.Witnesses = append(copyB.Witnesses, Witness{Key: testKey(t, 13).GetPublic(), Time: testNow, Signature: make([]byte, 64)})
	if n := c.MergeWitnesses(copyB); n != 1 || CertifiedBy(c) != 3 {
		t.Fatalf("merged %d, certified by %d; want 1 and 3", n, CertifiedBy(c))
	}
	other := witnessed(t, mintAt(t, "einstein.avtr", owner, testDifficulty, testNow.Add(time.Second)), 14) // re-minted: another claim
	if n := c.MergeWitnesses(other); n != 0 {
		t.Fatalf("merged %d witnesses of a different claim", n)
	}
}
