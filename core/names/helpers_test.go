package names

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
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

// witnessed adds witnesses made by node keys with the given seeds.
func witnessed(t testing.TB, c *Claim, seeds ...byte) *Claim {
	t.Helper()
	for _, s := range seeds {
		if err := c.AddWitness(testKey(t, s), testNow.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	return c
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
	return ClaimValidator{MinDifficulty: testDifficulty, Quorum: 3, Now: fixedNow}
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
