package names

import (
	"bytes"
	"crypto/rand"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
)

func edKey(t testing.TB) crypto.PrivKey {
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// A1: the owner rotated K0 -> K1 because K0 leaked. The holder of the
// rotated-away K0 mints a second claim with its own recovery key and a
// RECOVER step; ZoneValidator.Select (what a node that knows no owner uses,
// and what zoneByAgreement runs on the winning owner group, grouped by key)
// picks the thief's zone; once bound, the owner's zones are refused.
func TestScratchRotatedAwayKeySecondClaim(t *testing.T) {
	k0, k1, tr, tk := testKey(t, 1), testKey(t, 2), testKey(t, 3), testKey(t, 4)
	c1 := mint(t, "einstein.avtr", k0)
	root := &Lineage{Claim: c1, Steps: []*Rotation{}}
	s, err := Rotate(root, k0, k1, nil)
	owner := extend(t, root, s, err)
	_, ownerZone, err := zoneOn(t, owner, 5, k1)
	if err != nil {
		t.Fatal(err)
	}

	c2 := mintRecoverable(t, "einstein.avtr", k0, tr) // the old key, again
	troot := &Lineage{Claim: c2, Steps: []*Rotation{}}
	ts, err := Recover(troot, tr, tk, nil)
	thief := extend(t, troot, ts, err)
	_, thiefZone, err := zoneOn(t, thief, 1, tk)
	if err != nil {
		t.Fatal(err)
	}
	for _, vals := range [][][]byte{{ownerZone, thiefZone}, {thiefZone, ownerZone}} {
		i, err := testZoneValidator().Select(ZoneKey(c1.Name), vals)
		if err != nil || !bytes.Equal(vals[i], thiefZone) {
			t.Fatalf("Select picked owner's zone (%v)", err)
		}
	}
	t.Logf("Select picks the zone signed by %s (thief), not %s (owner)", KeyID(tk.GetPublic()), KeyID(k1.GetPublic()))
	if err := CheckSuccession(nil, thief); err != nil {
		t.Fatal(err)
	}
	if err := CheckSuccession(thief, owner); err == nil {
		t.Fatal("expected the owner to be refused once the thief's claim is bound")
	} else {
		t.Logf("node that bound the thief refuses the owner: %v", err)
	}
}

// A2: the main key K0 is stolen; the owner has a recovery key and recovers.
// The thief mints a second claim by K0 with its own recovery commitment and
// grinds a RECOVER step with a lower hash: Select ranks the thief ahead of
// the genuine recovery.
func TestScratchStolenKeyBeatsRecovery(t *testing.T) {
	k0, rescue, fresh := testKey(t, 1), testKey(t, 5), testKey(t, 7)
	c1 := mintRecoverable(t, "einstein.avtr", k0, rescue)
	root := &Lineage{Claim: c1, Steps: []*Rotation{}}
	r, err := Recover(root, rescue, fresh, nil)
	recovered := extend(t, root, r, err)
	_, ownerZone, err := zoneOn(t, recovered, 9, fresh)
	if err != nil {
		t.Fatal(err)
	}
	tr := testKey(t, 8)
	c2 := mintRecoverable(t, "einstein.avtr", k0, tr)
	troot := &Lineage{Claim: c2, Steps: []*Rotation{}}
	tries := 0
	for {
		tries++
		tk := edKey(t)
		ts, err := Recover(troot, tr, tk, nil)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Compare(stepHash(ts.Signed()), stepHash(r.Signed())) >= 0 {
			continue
		}
		thief := extend(t, troot, ts, nil)
		_, thiefZone, err := zoneOn(t, thief, 1, tk)
		if err != nil {
			t.Fatal(err)
		}
		i, err := testZoneValidator().Select(ZoneKey(c1.Name), [][]byte{ownerZone, thiefZone})
		if err != nil || i != 1 {
			t.Fatalf("owner kept: %d %v", i, err)
		}
		t.Logf("thief beat the genuine recovery in Select after %d tries", tries)
		return
	}
}

// A3: recovery built after the thief's steps (the default `after` on a node
// with no zone of its own) loses to a thief fork at an earlier ROTATE step.
func TestScratchRecoverAfterThiefSteps(t *testing.T) {
	k0, rescue, fresh := testKey(t, 1), testKey(t, 5), testKey(t, 7)
	root := &Lineage{Claim: mintRecoverable(t, "einstein.avtr", k0, rescue), Steps: []*Rotation{}}
	t1k, t2k := testKey(t, 10), testKey(t, 11)
	s1, err := Rotate(root, k0, t1k, nil)
	l1 := extend(t, root, s1, err)
	s2, err := Rotate(l1, t1k, t2k, nil)
	l2 := extend(t, l1, s2, err)
	r, err := Recover(l2, rescue, fresh, nil) // after = len(known) = 2
	rec := extend(t, l2, r, err)
	for tries := 1; ; tries++ {
		alt, err := Rotate(l1, t1k, edKey(t), nil) // the thief forks at step 2
		if err != nil {
			t.Fatal(err)
		}
		fork := extend(t, l1, alt, nil)
		if CompareLineages(fork, rec) > 0 {
			t.Logf("thief fork at step 2 ranks ahead of the recovery at step 3 after %d tries", tries)
			return
		}
	}
}

// A4: cost of one maximal hybrid zone.
func BenchmarkScratchMaxHybridZone(b *testing.B) {
	keys := []crypto.PrivKey{hybridKey(b)}
	c := mint(b, "einstein.avtr", keys[0])
	l := &Lineage{Claim: c, Steps: []*Rotation{}}
	var last []byte
	for i := 0; i < MaxRotations; i++ {
		nk := hybridKey(b)
		s, err := Rotate(l, keys[len(keys)-1], nk, nil)
		if err != nil {
			b.Fatal(err)
		}
		nl, err := NewLineage(c, append(l.SignedSteps(), s.Signed()))
		if err != nil {
			b.Fatal(err)
		}
		z := testZone(b, c, 1)
		z.Rotations = nl.Steps
		zb, err := z.Sign(nk)
		if err != nil {
			break
		}
		l, keys, last = nl, append(keys, nk), zb
	}
	b.Logf("steps=%d size=%d", len(l.Steps), len(last))
	v := testZoneValidator()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := v.DecodeValid(ZoneKey(c.Name), last); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkScratchSmallEdZone(b *testing.B) {
	k := testKey(b, 1)
	c := mint(b, "einstein.avtr", k)
	zb := sign(b, testZone(b, c, 1, Record{Type: TypeTXT, Value: "v"}), k)
	v := testZoneValidator()
	for i := 0; i < b.N; i++ {
		if _, err := v.DecodeValid(ZoneKey(c.Name), zb); err != nil {
			b.Fatal(err)
		}
	}
}

var _ = time.Second
