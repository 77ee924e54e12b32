package names

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var writeFuzzSeeds = flag.Bool("write-fuzz-seeds", false,
	"rewrite testdata/fuzz seed corpora from freshly made records (after a wire format change)")

// fuzzValidator accepts the cheap proof of work of the seeds, at the seeds' clock.
func fuzzValidator() ClaimValidator {
	return ClaimValidator{MinDifficulty: 4, Quorum: 3, Now: fixedNow}
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

func FuzzClaim(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		v := fuzzValidator()
		c, decErr := DecodeClaim(data)
		key := "/avtr-claim/einstein.avtr"
		if decErr == nil {
			key = c.Key()
			_ = CertifiedBy(c)
		}
		if err := v.Validate(key, data); err != nil {
			return
		}
		if decErr != nil {
			t.Fatalf("Validate passed but DecodeClaim failed: %v", decErr)
		}
		again, err := c.Marshal()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("valid claim does not re-encode to the same bytes: %v", err)
		}
		if err := HolderCheck(data, data); err != nil {
			t.Fatalf("HolderCheck of a claim against itself: %v", err)
		}
		if i, err := v.Select(key, [][]byte{data, data}); err != nil || i != 0 {
			t.Fatalf("Select of a valid claim = %d, %v", i, err)
		}
	})
}

func FuzzZone(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		v := ZoneValidator{Now: fixedNow, Claims: fuzzValidator()}
		z, decErr := DecodeZone(data)
		key := "/avtr-zone/coolblog.code"
		if decErr == nil {
			key = z.Key()
		}
		if err := v.Validate(key, data); err != nil {
			return
		}
		if decErr != nil {
			t.Fatalf("Validate passed but DecodeZone failed: %v", decErr)
		}
		if err := MatchOwner(z.Claim, z); err != nil {
			t.Fatalf("valid zone does not match its own claim: %v", err)
		}
		if i, err := v.Select(key, [][]byte{data}); err != nil || i != 0 {
			t.Fatalf("Select of a valid zone = %d, %v", i, err)
		}
	})
}

// TestWriteFuzzSeeds regenerates the committed seed corpora:
//
//	go test ./core/names/ -run TestWriteFuzzSeeds -write-fuzz-seeds
func TestWriteFuzzSeeds(t *testing.T) {
	if !*writeFuzzSeeds {
		t.Skip("run with -write-fuzz-seeds to rewrite testdata/fuzz")
	}
	parse := map[string]string{
		"dotted": "einstein.avtr", "sub": "api.coolblog.code", "deep": "a.b.coolblog.code",
		"upper": "CoolBlog.Code", "alternet": "an://coolblog:code", "alternet-sub": "an://api.coolblog:code",
		"no-topic": "foo", "hyphen": "-x.avtr", "kelvin": "\u212Aelvin.avtr",
	}
	for name, s := range parse {
		writeSeed(t, "FuzzParse", name, fmt.Sprintf("string(%q)", s))
	}
	for name, b := range claimSeeds(t) {
		writeSeed(t, "FuzzClaim", name, fmt.Sprintf("[]byte(%q)", b))
	}
	for name, b := range zoneSeeds(t) {
		writeSeed(t, "FuzzZone", name, fmt.Sprintf("[]byte(%q)", b))
	}
}

func claimSeeds(t *testing.T) map[string][]byte {
	alice := testKey(t, 1)
	forged := mintAt(t, "einstein.avtr", alice, 8, testNow)
	forged.Witnesses = []Witness{{Key: testKey(t, 9).GetPublic(), Time: testNow, Signature: make([]byte, 64)}}
	return map[string][]byte{
		"bare":      marshal(t, mintAt(t, "einstein.avtr", alice, 8, testNow)),
		"certified": marshal(t, witnessed(t, mintAt(t, "einstein.avtr", alice, 8, testNow), 10, 11, 12)),
		"forged":    marshal(t, forged),
		"weak":      marshal(t, mintAt(t, "einstein.avtr", alice, 2, testNow)),
	}
}

func zoneSeeds(t *testing.T) map[string][]byte {
	alice := testKey(t, 1)
	c := witnessed(t, mintAt(t, "coolblog.code", alice, 8, testNow), 10, 11, 12)
	full := testZone(t, c, 3,
		Record{Type: TypeROOT, Value: testCID},
		Record{Type: TypeHOST, Value: testPeerID(t, 40)},
		Record{Type: TypeA, Label: "api", Value: "/ip4/192.0.2.1/tcp/4001"},
		Record{Type: TypeCNAME, Label: "www", Value: "einstein.avtr"},
		Record{Type: TypeTXT, Label: "a.b", Value: "hello"})
	expired := testZone(t, c, 1)
	expired.Expiry = testNow.Add(-time.Hour)
	return map[string][]byte{
		"full":    sign(t, full, alice),
		"empty":   sign(t, testZone(t, mintAt(t, "coolblog.code", alice, 8, testNow), 1), alice),
		"expired": sign(t, expired, alice),
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

// TestFuzzSeedsStillValid fails when a wire format change left the committed
// seeds stale, so the fuzzers would only explore the refusal paths.
func TestFuzzSeedsStillValid(t *testing.T) {
	valid := map[string]func([]byte) error{
		"FuzzClaim/seed-bare":      func(b []byte) error { return fuzzValidator().Validate("/avtr-claim/einstein.avtr", b) },
		"FuzzClaim/seed-certified": func(b []byte) error { return fuzzValidator().Validate("/avtr-claim/einstein.avtr", b) },
		"FuzzZone/seed-full": func(b []byte) error {
			return ZoneValidator{Now: fixedNow, Claims: fuzzValidator()}.Validate("/avtr-zone/coolblog.code", b)
		},
	}
	for file, validate := range valid {
		raw, err := os.ReadFile(filepath.Join("testdata", "fuzz", file))
		if err != nil {
			t.Fatal(err)
		}
		lit := strings.TrimSpace(strings.TrimPrefix(string(raw), "go test fuzz v1\n"))
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lit, "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if err := validate([]byte(s)); err != nil {
			t.Errorf("%s no longer validates (%v); run go test ./core/names/ -run TestWriteFuzzSeeds -write-fuzz-seeds", file, err)
		}
	}
}
