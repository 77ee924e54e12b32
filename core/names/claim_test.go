package names

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
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
	c := mint(t, "einstein.avtr", owner)
	b := marshal(t, c)
	got, err := DecodeClaim(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != c.Name || !got.Owner.Equals(owner.GetPublic()) || !got.Created.Equal(testNow) ||
		got.Difficulty != testDifficulty || got.Nonce != c.Nonce || got.Work() != c.Work() {
		t.Fatalf("decoded %+v, want %+v", got, c)
	}
	// The value is the owner's envelope and nothing else.
	if fs := wireFields(t, b); len(fs) != 1 || fs[0].num != fSignedEnvelope {
		t.Fatalf("claim value has fields %+v, want only the envelope", fs)
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

func TestKeyID(t *testing.T) {
	id := KeyID(testKey(t, 1).GetPublic())
	if !strings.HasPrefix(id, "k51") || id != KeyID(testKey(t, 1).GetPublic()) || id == KeyID(testKey(t, 2).GetPublic()) {
		t.Fatalf("KeyID = %q: want a stable, distinct k51… string", id)
	}
	if KeyID(nil) != "<no key>" {
		t.Fatal("KeyID(nil)")
	}
}

// TestClaimWork recomputes the proof-of-work hash from the README formula.
func TestClaimWork(t *testing.T) {
	c := mint(t, "einstein.avtr", testKey(t, 1))
	ownerKey, err := crypto.MarshalPublicKey(c.Owner)
	if err != nil {
		t.Fatal(err)
	}
	name := c.Name.String()
	in := append([]byte("avtr-claim-pow/v1"), 0)
	in = binary.AppendUvarint(in, uint64(len(name)))
	in = append(in, name...)
	in = binary.AppendUvarint(in, uint64(len(ownerKey)))
	in = append(in, ownerKey...)
	in = binary.BigEndian.AppendUint64(in, uint64(c.Created.Unix()))
	in = binary.BigEndian.AppendUint32(in, uint32(c.Difficulty))
	seed := sha256.Sum256(in)
	want := sha256.Sum256(binary.BigEndian.AppendUint64(seed[:], c.Nonce))
	if c.Work() != want {
		t.Fatalf("Work() = %x, want %x", c.Work(), want)
	}
	if got := leadingZeros(c.Work()); got < c.Difficulty {
		t.Fatalf("work has %d leading zero bits, difficulty is %d", got, c.Difficulty)
	}
	decoded, err := DecodeClaim(marshal(t, c))
	if err != nil || decoded.Work() != want {
		t.Fatalf("decoded work %x, %v", decoded.Work(), err)
	}
}

func TestCompareClaims(t *testing.T) {
	alice, bob := testKey(t, 1), testKey(t, 2)
	a := mint(t, "einstein.avtr", alice)
	b := mintWhere(t, "einstein.avtr", bob, func(c *Claim) bool { return lowerWork(c, a) })
	if CompareClaims(b, a) != 1 || CompareClaims(a, b) != -1 {
		t.Fatalf("lower work must win: CompareClaims(b, a) = %d, (a, b) = %d", CompareClaims(b, a), CompareClaims(a, b))
	}
	again, err := DecodeClaim(marshal(t, a))
	if err != nil {
		t.Fatal(err)
	}
	if CompareClaims(a, again) != 0 {
		t.Fatal("a claim and its decoded copy must rank equal")
	}
}

// TestClaimSelect: Select picks the lowest work hash whatever the keys,
// creation times and order, and every permutation picks the same value.
func TestClaimSelect(t *testing.T) {
	alice, bob := testKey(t, 1), testKey(t, 2)
	a0 := mint(t, "einstein.avtr", alice)
	bBetter := mintWhere(t, "einstein.avtr", bob, func(c *Claim) bool { return lowerWork(c, a0) })
	bWorse := mintWhere(t, "einstein.avtr", bob, func(c *Claim) bool { return lowerWork(a0, c) })
	aWorse := mintWhere(t, "einstein.avtr", alice, func(c *Claim) bool { return lowerWork(a0, c) && !bytes.Equal(marshal(t, c), marshal(t, a0)) })
	junk := []byte("junk")
	newton := marshal(t, mint(t, "newton.avtr", alice))

	tests := []struct {
		name   string
		values [][]byte
		want   []byte
	}{
		{"two keys: lower work wins", [][]byte{marshal(t, a0), marshal(t, bWorse)}, marshal(t, a0)},
		{"two keys: lower work wins, even the later one", [][]byte{marshal(t, a0), marshal(t, bBetter)}, marshal(t, bBetter)},
		{"one key minted twice", [][]byte{marshal(t, aWorse), marshal(t, a0)}, marshal(t, a0)},
		{"copies of one claim", [][]byte{marshal(t, a0), marshal(t, bWorse), marshal(t, a0)}, marshal(t, a0)},
		{"two owners, invalid values among them",
			[][]byte{marshal(t, a0), junk, marshal(t, bBetter), newton, marshal(t, aWorse), marshal(t, bWorse)}, marshal(t, bBetter)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			permutations(len(tt.values), func(order []int) {
				shuffled := make([][]byte, len(order))
				for i, j := range order {
					shuffled[i] = tt.values[j]
				}
				i, err := testValidator().Select("/avtr-claim/einstein.avtr", shuffled)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(shuffled[i], tt.want) {
					t.Fatalf("order %v picked value %d, another claim", order, i)
				}
			})
		})
	}
}

func TestClaimDecodeValid(t *testing.T) {
	c := mint(t, "einstein.avtr", testKey(t, 1))
	b := marshal(t, c)
	got, err := testValidator().DecodeValid(c.Key(), b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != c.Name || !got.Owner.Equals(c.Owner) || got.Work() != c.Work() || !bytes.Equal(marshal(t, got), b) {
		t.Fatalf("DecodeValid = %+v, want %+v", got, c)
	}
	// It refuses exactly what Validate refuses, with the same error.
	for key, value := range map[string][]byte{
		"/avtr-claim/newton.avtr":   b,
		"/avtr-claim/einstein.avtr": append(bytes.Clone(b), 0x50, 0x01),
		"/avtr-zone/einstein.avtr":  b,
	} {
		c, err := testValidator().DecodeValid(key, value)
		verr := testValidator().Validate(key, value)
		if err == nil || c != nil || verr == nil || err.Error() != verr.Error() {
			t.Errorf("DecodeValid(%s) = %v, %v; Validate = %v", key, c, err, verr)
		}
	}
}

// TestHolderCheck: whoever holds a name refuses every other key, and a
// better work hash does not change that.
func TestHolderCheck(t *testing.T) {
	alice, bob := testKey(t, 1), testKey(t, 2)
	held := mint(t, "einstein.avtr", alice)
	rival := mintWhere(t, "einstein.avtr", bob, func(c *Claim) bool { return lowerWork(c, held) })
	einstein, api, newton := mustParse(t, "einstein.avtr"), mustParse(t, "api.einstein.avtr"), mustParse(t, "newton.avtr")
	tests := []struct {
		name     string
		held     *Claim
		target   Name
		incoming crypto.PubKey
		want     error
	}{
		{"nothing held", nil, einstein, bob.GetPublic(), nil},
		{"nothing held, sub name", nil, api, bob.GetPublic(), nil},
		{"same key", held, einstein, alice.GetPublic(), nil},
		{"same key, record of a sub name", held, api, alice.GetPublic(), nil},
		{"other key", held, einstein, bob.GetPublic(), ErrNameTaken},
		{"other key with a lower work hash", held, einstein, rival.Owner, ErrNameTaken},
		{"other key, sub name", held, api, bob.GetPublic(), ErrNameTaken},
		{"held claim of another name", held, newton, alice.GetPublic(), ErrNameMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := HolderCheck(tt.held, tt.target, tt.incoming)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}

	// Select alone would take the rival: it is a tie-break, not ownership.
	if i, err := testValidator().Select(held.Key(), [][]byte{marshal(t, held), marshal(t, rival)}); err != nil || i != 1 {
		t.Fatalf("Select = %d, %v; want the rival's lower work hash", i, err)
	}

	err := HolderCheck(held, einstein, bob.GetPublic())
	want := "einstein.avtr is held by key " + KeyID(alice.GetPublic()) + "; refused a record by key " + KeyID(bob.GetPublic())
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("message %q, want prefix %q", err, want)
	}
	if !strings.HasPrefix(KeyID(alice.GetPublic()), "k51") || KeyID(alice.GetPublic()) == KeyID(bob.GetPublic()) {
		t.Fatal("the message must name both keys in their k51… form")
	}
}
