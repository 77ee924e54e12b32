package names

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/record"
	recordpb "github.com/libp2p/go-libp2p/core/record/pb"
	"google.golang.org/protobuf/proto"

	"github.com/avnode/avnode/core/names/pb"
)

var writeFuzzSeeds = flag.Bool("write-fuzz-seeds", false,
	"rewrite testdata/fuzz seed corpora from freshly made records (after a wire format change)")

// fuzzValidator accepts the cheap proof of work of the seeds, at the seeds' clock.
func fuzzValidator() ClaimValidator {
	return ClaimValidator{MinDifficulty: 4, Now: fixedNow}
}

func fuzzZoneValidator() ZoneValidator {
	return ZoneValidator{Now: fixedNow, Claims: fuzzValidator()}
}

// sentinels lists every sentinel error; each error of the package wraps one.
var sentinels = []error{
	ErrBadName, ErrMalformed, ErrTooLarge, ErrBadSignature, ErrUnknownKeyType, ErrNameMismatch,
	ErrExpired, ErrFromFuture, ErrInsufficientWork, ErrBadRecord, ErrWrongOwner, ErrRolledBack,
	ErrNameTaken, ErrDisputed, ErrBadRotation, ErrRotated,
}

func wantSentinel(t *testing.T, what string, err error, allowed ...error) {
	t.Helper()
	if len(allowed) == 0 {
		allowed = sentinels
	}
	for _, s := range allowed {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("%s: error %q wraps none of %v", what, err, allowed)
}

func FuzzParse(f *testing.F) {
	f.Add("einstein.avtr")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrBadName) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrBadName", s, err)
			}
			return
		}
		again, err := Parse(n.String())
		if err != nil || again != n {
			t.Fatalf("Parse(%q) = %q, which parses as %q, %v", s, n, again, err)
		}
		if len(n.String()) > MaxNameLen || !n.Registered().IsRegistered() || n.Topic() == "" {
			t.Fatalf("Parse(%q) = %q breaks an invariant", s, n)
		}
		if sub := n.Sub(); sub != "" && sub+"."+n.Registered().String() != n.String() {
			t.Fatalf("Parse(%q): sub %q + registered %q != %q", s, sub, n.Registered(), n)
		}
	})
}

// FuzzClaim feeds arbitrary claim values.
func FuzzClaim(f *testing.F) {
	f.Add([]byte{})
	alice := testKey(f, 1)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzClaimValue(t, data, alice) })
}

// FuzzClaimEnvelope feeds arbitrary bytes as the owner's envelope inside an
// otherwise well-formed claim value, so the fuzzer works on the envelope's
// own encoding (unknown fields, reordering, repeats, long varints).
func FuzzClaimEnvelope(f *testing.F) {
	f.Add([]byte{})
	alice := testKey(f, 1)
	f.Fuzz(func(t *testing.T, env []byte) { fuzzClaimValue(t, claimValue(env), alice) })
}

// FuzzZone feeds arbitrary zone values.
func FuzzZone(f *testing.F) {
	f.Add([]byte{})
	alice := testKey(f, 1)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzZoneValue(t, data, alice) })
}

// FuzzZoneEnvelope feeds arbitrary bytes as a zone's envelope and embedded
// claim inside an otherwise well-formed zone value.
func FuzzZoneEnvelope(f *testing.F) {
	f.Add([]byte{}, []byte{})
	alice := testKey(f, 1)
	f.Fuzz(func(t *testing.T, env, claim []byte) { fuzzZoneValue(t, zoneValue(env, claim), alice) })
}

// fuzzClaimValue checks that whatever DecodeClaim accepts is in its one
// canonical form, and that the validator agrees with it.
func fuzzClaimValue(t *testing.T, data []byte, alice crypto.PrivKey) {
	v := fuzzValidator()
	key := "/avtr-claim/einstein.avtr"
	c, decErr := DecodeClaim(data)
	if decErr != nil {
		wantSentinel(t, "DecodeClaim", decErr)
	} else {
		key = c.Key()
		checkCanonicalClaim(t, data, c, alice)
	}
	valid, err := v.DecodeValid(key, data)
	if verr := v.Validate(key, data); (err == nil) != (verr == nil) {
		t.Fatalf("DecodeValid = %v but Validate = %v", err, verr)
	}
	if err != nil {
		if decErr == nil {
			// Only the network's rules can refuse a claim that decodes.
			wantSentinel(t, "DecodeValid", err, ErrInsufficientWork, ErrFromFuture)
		} else {
			wantSentinel(t, "DecodeValid", err)
		}
		return
	}
	if decErr != nil {
		t.Fatalf("DecodeValid passed but DecodeClaim failed: %v", decErr)
	}
	if valid.Work() != c.Work() || !bytes.Equal(marshal(t, valid), data) {
		t.Fatal("DecodeValid and DecodeClaim disagree")
	}
	if err := HolderCheck(valid, valid.Name, valid.Owner); err != nil {
		t.Fatalf("HolderCheck of a claim's own key: %v", err)
	}
	if !valid.Owner.Equals(alice.GetPublic()) {
		if err := HolderCheck(valid, valid.Name, alice.GetPublic()); !errors.Is(err, ErrNameTaken) {
			t.Fatalf("HolderCheck of another key: %v", err)
		}
	}
	if i, err := v.Select(key, [][]byte{data, data}); err != nil || i != 0 {
		t.Fatalf("Select of a valid claim = %d, %v", i, err)
	}
}

// checkCanonicalClaim: a decoded claim value is exactly SignedClaim{envelope}
// with the envelope written field by field in canonical order, and, when the
// owner is a key the seeds use, exactly what sealing its payload again gives.
func checkCanonicalClaim(t *testing.T, data []byte, c *Claim, alice crypto.PrivKey) {
	t.Helper()
	if again := marshal(t, c); !bytes.Equal(again, data) {
		t.Fatalf("accepted claim re-encodes to other bytes:\n in  %x\n out %x", data, again)
	}
	fs := wireFields(t, data)
	if len(fs) != 1 || fs[0].num != fSignedEnvelope || !bytes.Equal(fs[0].raw, bytesField(fSignedEnvelope, fs[0].val)) {
		t.Fatalf("accepted claim is not SignedClaim{envelope} in canonical form: %x", data)
	}
	checkCanonicalEnvelope(t, fs[0].val)
	if !c.Owner.Equals(alice.GetPublic()) {
		return
	}
	ownerKey, err := crypto.MarshalPublicKey(c.Owner)
	if err != nil {
		t.Fatal(err)
	}
	env, err := record.Seal(&claimRecord{p: &pb.ClaimPayload{
		Name: c.Name.String(), OwnerKey: ownerKey, CreatedUnix: c.Created.Unix(),
		Difficulty: uint32(c.Difficulty), Nonce: c.Nonce,
	}}, alice)
	if err != nil {
		t.Fatal(err)
	}
	if sealed, err := env.Marshal(); err != nil || !bytes.Equal(sealed, fs[0].val) {
		t.Fatalf("accepted envelope differs from the owner's sealing of its fields: %v", err)
	}
}

// checkCanonicalEnvelope: the envelope equals its hand-written canonical form.
func checkCanonicalEnvelope(t *testing.T, env []byte) {
	t.Helper()
	var e recordpb.Envelope
	if err := proto.Unmarshal(env, &e); err != nil {
		// libp2p cannot read a hybrid key (its key-type enum is closed):
		// read it field by field instead.
		if f, ok := readEnvelope(env); !ok || f.key == nil {
			t.Fatalf("accepted envelope does not even decode leniently: %v", err)
		}
		return
	}
	if canon := handEnvelope(&e); !bytes.Equal(canon, env) {
		t.Fatalf("accepted envelope is not canonical:\n in    %x\n canon %x", env, canon)
	}
}

// fuzzZoneValue checks that whatever DecodeZone accepts is in its one
// canonical form, and that the validator agrees with it.
func fuzzZoneValue(t *testing.T, data []byte, alice crypto.PrivKey) {
	v := fuzzZoneValidator()
	key := "/avtr-zone/coolblog.code"
	z, decErr := DecodeZone(data)
	if decErr != nil {
		wantSentinel(t, "DecodeZone", decErr)
	} else {
		key = z.Key()
		checkCanonicalZone(t, data, z, alice)
	}
	valid, err := v.DecodeValid(key, data)
	if verr := v.Validate(key, data); (err == nil) != (verr == nil) {
		t.Fatalf("DecodeValid = %v but Validate = %v", err, verr)
	}
	if err != nil {
		if decErr == nil {
			wantSentinel(t, "DecodeValid", err, ErrInsufficientWork, ErrFromFuture, ErrExpired)
		} else {
			wantSentinel(t, "DecodeValid", err)
		}
		return
	}
	if decErr != nil {
		t.Fatalf("DecodeValid passed but DecodeZone failed: %v", decErr)
	}
	if !bytes.Equal(valid.Signed(), data) {
		t.Fatal("DecodeValid's zone does not carry the input bytes")
	}
	if err := MatchOwner(valid.Claim, valid); err != nil {
		t.Fatalf("valid zone does not match its own claim: %v", err)
	}
	if err := CheckSuccession(&Lineage{Claim: valid.Claim, Steps: []*Rotation{}}, valid.Lineage()); err != nil {
		t.Fatalf("a valid zone's chain does not extend its own claim: %v", err)
	}
	if i, err := v.Select(key, [][]byte{data}); err != nil || i != 0 {
		t.Fatalf("Select of a valid zone = %d, %v", i, err)
	}
}

// checkCanonicalZone: a decoded zone value is exactly SignedZone{envelope,
// claim}, both canonical, and, when the owner is a key the seeds use, exactly
// what signing its fields again gives.
func checkCanonicalZone(t *testing.T, data []byte, z *Zone, alice crypto.PrivKey) {
	t.Helper()
	if !bytes.Equal(z.Signed(), data) {
		t.Fatal("Signed() differs from the decoded bytes")
	}
	fs := wireFields(t, data)
	canon := []byte{}
	if len(fs) >= 2 {
		canon = zoneValue(fs[0].val, fs[1].val)
		for _, f := range fs[2:] {
			canon = join(canon, bytesField(fSignedSteps, f.val))
		}
	}
	if len(fs) < 2 || fs[0].num != fSignedEnvelope || fs[1].num != fSignedClaim || len(fs)-2 != len(z.Rotations) ||
		!bytes.Equal(data, canon) {
		t.Fatalf("accepted zone is not SignedZone{envelope, claim, rotations} in canonical form: %x", data)
	}
	checkCanonicalEnvelope(t, fs[0].val)
	if !bytes.Equal(z.SignedClaim(), fs[1].val) {
		t.Fatal("SignedClaim() differs from the embedded claim")
	}
	checkCanonicalClaim(t, fs[1].val, z.Claim, alice)
	if !z.Owner.Equals(alice.GetPublic()) {
		return
	}
	fresh := &Zone{Name: z.Name, Seq: z.Seq, Expiry: z.Expiry, TTL: z.TTL, Records: z.Records, Claim: z.Claim, Rotations: z.Rotations}
	if again, err := fresh.Sign(alice); err != nil || !bytes.Equal(again, data) {
		t.Fatalf("accepted zone differs from the owner's signing of its fields: %v", err)
	}
}

// TestWriteFuzzSeeds regenerates the committed seed corpora (the seed-*
// files; regress-* files are kept):
//
//	go test ./core/names/ -run TestWriteFuzzSeeds -write-fuzz-seeds
func TestWriteFuzzSeeds(t *testing.T) {
	if !*writeFuzzSeeds {
		t.Skip("run with -write-fuzz-seeds to rewrite testdata/fuzz")
	}
	for _, target := range []string{"FuzzParse", "FuzzClaim", "FuzzClaimEnvelope", "FuzzZone", "FuzzZoneEnvelope"} {
		old, err := filepath.Glob(filepath.Join("testdata", "fuzz", target, "seed-*"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range old {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	parse := map[string]string{
		"dotted": "einstein.avtr", "sub": "api.coolblog.code", "deep": "a.b.coolblog.code",
		"upper": "CoolBlog.Code", "alternet": "an://coolblog:code", "alternet-sub": "an://api.coolblog:code",
		"no-topic": "foo", "hyphen": "-x.avtr", "kelvin": "\u212Aelvin.avtr",
	}
	for name, s := range parse {
		writeSeed(t, "FuzzParse", name, fmt.Sprintf("string(%q)", s))
	}
	claims := claimSeeds(t)
	for name, b := range claims {
		writeSeed(t, "FuzzClaim", name, fmt.Sprintf("[]byte(%q)", b))
	}
	for name, b := range claims {
		if name == "witness-field" {
			continue // not an envelope problem
		}
		writeSeed(t, "FuzzClaimEnvelope", name, fmt.Sprintf("[]byte(%q)", wireValue(t, b, fSignedEnvelope)))
	}
	zones := zoneSeeds(t)
	for name, b := range zones {
		writeSeed(t, "FuzzZone", name, fmt.Sprintf("[]byte(%q)", b))
	}
	for name, b := range zones {
		if name == "padded" {
			continue // the padding is outside the envelope
		}
		writeSeed(t, "FuzzZoneEnvelope", name,
			fmt.Sprintf("[]byte(%q)\n[]byte(%q)", wireValue(t, b, fSignedEnvelope), wireValue(t, b, fSignedClaim)))
	}
}

// claimSeeds are claim values: valid ones, and genuine ones made invalid the
// ways an attacker would try (the envelope padded or re-encoded, the old
// witness field added).
func claimSeeds(t *testing.T) map[string][]byte {
	alice := testKey(t, 1)
	bare := marshal(t, mintAt(t, "einstein.avtr", alice, 8, testNow))
	env := wireValue(t, bare, fSignedEnvelope)
	return map[string][]byte{
		"bare":            bare,
		"weak":            marshal(t, mintAt(t, "einstein.avtr", alice, 2, testNow)),
		"padded-envelope": claimValue(join(env, bytesField(99, []byte("junk")))),
		"reordered":       claimValue(wireRaw(t, env, fEnvSignature, fEnvPayload, fEnvPayloadType, fEnvPublicKey)),
		"witness-field":   join(bare, bytesField(fSignedClaim, legacyWitness(t, testKey(t, 10)))),
	}
}

// zoneSeeds are zone values, valid and invalid.
func zoneSeeds(t *testing.T) map[string][]byte {
	alice := testKey(t, 1)
	c := mintAt(t, "coolblog.code", alice, 8, testNow)
	full := testZone(t, c, 3,
		Record{Type: TypeROOT, Value: testCID},
		Record{Type: TypeHOST, Value: testPeerID(t, 40)},
		Record{Type: TypeA, Label: "api", Value: "/ip4/192.0.2.1/tcp/4001"},
		Record{Type: TypeCNAME, Label: "www", Value: "einstein.avtr"},
		Record{Type: TypeTXT, Label: "a.b", Value: "hello"})
	expired := testZone(t, c, 1)
	expired.Expiry = testNow.Add(-time.Hour)
	empty := sign(t, testZone(t, c, 1), alice)
	other := marshal(t, mintAt(t, "coolblog.code", alice, 8, testNow.Add(time.Second)))
	// A name rotated to another key, and one claimed with a hybrid key
	// and a recovery commitment.
	bob := testKey(t, 2)
	step, err := Rotate(&Lineage{Claim: c, Steps: []*Rotation{}}, alice, bob, nil)
	if err != nil {
		t.Fatal(err)
	}
	rotated := testZone(t, c, 4, Record{Type: TypeTXT, Value: "rotated"})
	rotated.Rotations = []*Rotation{step}
	pq := hybridKey(t)
	recoverable, err := MintClaimWithRecovery(context.Background(), mustParse(t, "coolblog.code"), pq, commitment(t, bob), 8, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		"rotated":       sign(t, rotated, bob),
		"hybrid":        sign(t, testZone(t, recoverable, 1, Record{Type: TypeTXT, Value: "pq"}), pq),
		"full":          sign(t, full, alice),
		"empty":         empty,
		"expired":       sign(t, expired, alice),
		"swapped-claim": zoneValue(wireValue(t, empty, fSignedEnvelope), other),
		"padded":        join(empty, bytesField(99, []byte("junk"))),
	}
}

func writeSeed(t *testing.T, target, name, literal string) {
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := "go test fuzz v1\n" + literal + "\n"
	if err := os.WriteFile(filepath.Join(dir, "seed-"+strings.ReplaceAll(name, " ", "-")), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// readSeed returns the []byte arguments of a committed corpus file.
func readSeed(t *testing.T, file string) [][]byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "fuzz", file))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) < 2 || lines[0] != "go test fuzz v1" {
		t.Fatalf("%s: not a fuzz corpus file", file)
	}
	var args [][]byte
	for _, l := range lines[1:] {
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(l, "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		args = append(args, []byte(s))
	}
	return args
}

// TestFuzzSeedsStillValid fails when a wire format change left the committed
// seeds stale, so the fuzzers would only explore the refusal paths, or when a
// seed meant to be refused is refused for another reason.
func TestFuzzSeedsStillValid(t *testing.T) {
	claim := func(args [][]byte) error { return fuzzValidator().Validate("/avtr-claim/einstein.avtr", args[0]) }
	claimEnv := func(args [][]byte) error { return claim([][]byte{claimValue(args[0])}) }
	zone := func(args [][]byte) error { return fuzzZoneValidator().Validate("/avtr-zone/coolblog.code", args[0]) }
	zoneEnv := func(args [][]byte) error { return zone([][]byte{zoneValue(args[0], args[1])}) }
	tests := []struct {
		file     string
		validate func([][]byte) error
		want     error
	}{
		{"FuzzClaim/seed-bare", claim, nil},
		{"FuzzClaim/seed-weak", claim, ErrInsufficientWork},
		{"FuzzClaim/seed-padded-envelope", claim, ErrMalformed},
		{"FuzzClaim/seed-reordered", claim, ErrMalformed},
		{"FuzzClaim/seed-witness-field", claim, ErrMalformed},
		{"FuzzClaimEnvelope/seed-bare", claimEnv, nil},
		{"FuzzClaimEnvelope/seed-padded-envelope", claimEnv, ErrMalformed},
		{"FuzzClaimEnvelope/seed-reordered", claimEnv, ErrMalformed},
		{"FuzzZone/seed-full", zone, nil},
		{"FuzzZone/seed-empty", zone, nil},
		{"FuzzZone/seed-expired", zone, ErrExpired},
		{"FuzzZone/seed-swapped-claim", zone, ErrWrongOwner},
		{"FuzzZone/seed-padded", zone, ErrMalformed},
		{"FuzzZoneEnvelope/seed-full", zoneEnv, nil},
		{"FuzzZoneEnvelope/seed-swapped-claim", zoneEnv, ErrWrongOwner},
	}
	for _, tt := range tests {
		err := tt.validate(readSeed(t, tt.file))
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("%s: got %v, want %v; after a wire format change run go test ./core/names/ -run TestWriteFuzzSeeds -write-fuzz-seeds", tt.file, err, tt.want)
		}
	}
}
