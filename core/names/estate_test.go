package names

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"

	"github.com/avnode/avnode/core/names/pb"
)

func testEstate(t testing.TB, key crypto.PrivKey, seq uint64, hosts ...byte) (*Estate, []byte) {
	t.Helper()
	e := &Estate{Seq: seq, Expiry: testNow.Add(time.Hour), TTL: time.Minute}
	for _, h := range hosts {
		id, _ := peer.Decode(testPeerID(t, h))
		e.Hosts = append(e.Hosts, id)
	}
	e.Hosts = SortHosts(e.Hosts)
	b, err := e.Sign(key)
	if err != nil {
		t.Fatal(err)
	}
	return e, b
}

func estateValidator() EstateValidator { return EstateValidator{Now: fixedNow} }

func TestEstateRoundTrip(t *testing.T) {
	key := testKey(t, 40)
	e, b := testEstate(t, key, 3, 1, 2)
	got, err := estateValidator().DecodeValid(EstateKey(e.ID()), b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 3 || len(got.Hosts) != 2 || !got.Key.Equals(key.GetPublic()) || !bytes.Equal(got.Signed(), b) {
		t.Fatalf("decoded %+v", got)
	}
	id, pub, err := ParseEstateID(e.ID())
	if err != nil || id != e.ID() || !pub.Equals(key.GetPublic()) {
		t.Fatalf("ParseEstateID(%s) = %s, %v", e.ID(), id, err)
	}
}

// What a holder refuses: another key's record under an estate's ID, a
// forged signature, an expired or non-canonical record, a bad provider, too
// many hosts; and what it keeps: the highest seq against a rolled-back copy.
func TestEstateValidatorRefuses(t *testing.T) {
	v := estateValidator()
	owner, thief := testKey(t, 41), testKey(t, 42)
	e, good := testEstate(t, owner, 5, 1)
	key := EstateKey(e.ID())

	_, stolen := testEstate(t, thief, 99, 3)
	if err := v.Validate(key, stolen); !errors.Is(err, ErrWrongOwner) {
		t.Errorf("another key's record under the estate's ID: %v; want ErrWrongOwner", err)
	}
	forged := bytes.Clone(good)
	forged[len(forged)-1] ^= 1
	if err := v.Validate(key, forged); !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrMalformed) {
		t.Errorf("forged signature: %v", err)
	}
	// A payload signed by the thief naming the owner's key.
	p := &pb.EstatePayload{EstateKey: mustMarshalKey(t, owner.GetPublic()), Seq: 100, ExpiryUnix: testNow.Add(time.Hour).Unix()}
	env, err := record.Seal(&estateRecord{p: p}, thief)
	if err != nil {
		t.Fatal(err)
	}
	signedByThief, _ := env.Marshal()
	if err := v.Validate(key, signedByThief); !errors.Is(err, ErrWrongOwner) {
		t.Errorf("the owner's key signed by another: %v; want ErrWrongOwner", err)
	}
	if err := (EstateValidator{Now: func() time.Time { return testNow.Add(2 * time.Hour) }}).Validate(key, good); !errors.Is(err, ErrExpired) {
		t.Errorf("expired: %v", err)
	}
	if err := v.Validate(EstateKey(KeyID(thief.GetPublic())), good); !errors.Is(err, ErrWrongOwner) {
		t.Errorf("under another estate's key: %v", err)
	}
	if err := v.Validate("/avtr-estate/K51"+e.ID()[3:], good); err == nil {
		t.Error("a non-canonical spelling of the ID was accepted")
	}
	if err := v.Validate(key, append(bytes.Clone(good), 0)); err == nil {
		t.Error("trailing bytes accepted")
	}

	_, older := testEstate(t, owner, 4, 2)
	for _, vals := range [][][]byte{{good, older}, {older, good}, {stolen, good, older}} {
		i, err := v.Select(key, vals)
		if err != nil || !bytes.Equal(vals[i], good) {
			t.Errorf("Select picked %d (%v); want the seq 5 record", i, err)
		}
	}

	for _, bad := range []*Estate{
		{Seq: 1, Expiry: testNow.Add(time.Hour), Provider: "acme.avtr"},
		{Seq: 1, Expiry: testNow.Add(time.Hour), Provider: "a.acme.node"},
		{Seq: 1, Expiry: testNow.Add(time.Hour), Hosts: make([]peer.ID, MaxEstateHosts+1)},
	} {
		if _, err := bad.Sign(owner); err == nil {
			t.Errorf("signed %+v", bad)
		}
	}
	for _, bad := range []*Estate{
		{Seq: MaxEstateSeq + 1, Expiry: testNow.Add(time.Hour)},
		{Seq: 1, Expiry: testNow.Add(time.Hour), TTL: MaxEstateTTL + time.Second},
		{Seq: 1, Expiry: testNow.Add(time.Hour), TTL: 1500 * time.Millisecond},
	} {
		if _, err := bad.Sign(owner); !errors.Is(err, ErrBadRecord) {
			t.Errorf("signed seq %d TTL %s: %v", bad.Seq, bad.TTL, err)
		}
	}
	farOff := &Estate{Seq: 1, Expiry: testNow.Add(10 * 365 * 24 * time.Hour)}
	b, err := farOff.Sign(owner)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(key, b); !errors.Is(err, ErrBadRecord) {
		t.Errorf("an expiry ten years ahead: %v; want ErrBadRecord", err)
	}
	withProvider := &Estate{Seq: 1, Expiry: testNow.Add(time.Hour), Provider: "acme.node"}
	b, err = withProvider.Sign(owner)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := v.DecodeValid(key, b); err != nil || got.Provider != "acme.node" {
		t.Errorf("provider acme.node: %+v %v", got, err)
	}
}

// A zone's HOST may name an estate by its canonical ID, and nothing else
// after "estate:".
func TestZoneHostNamesAnEstate(t *testing.T) {
	owner := testKey(t, 1)
	c := mint(t, "alice.avtr", owner)
	estate := KeyID(testKey(t, 43).GetPublic())
	z := testZone(t, c, 1, Record{Type: TypeHOST, Value: EstateHostPrefix + estate})
	if _, err := testZoneValidator().DecodeValid(z.Key(), sign(t, z, owner)); err != nil {
		t.Fatalf("HOST estate:%s: %v", estate, err)
	}
	for _, bad := range []string{"estate:", "estate:12D3KooWAbc", "estate:" + estate + "x", "estate:" + testPeerID(t, 2)} {
		z := testZone(t, c, 2, Record{Type: TypeHOST, Value: bad})
		if _, err := z.Sign(owner); !errors.Is(err, ErrBadRecord) {
			t.Errorf("HOST %q: %v; want ErrBadRecord", bad, err)
		}
	}
}

func mustMarshalKey(t testing.TB, pub crypto.PubKey) []byte {
	b, err := crypto.MarshalPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzEstate: whatever decodes is in its one canonical form, every error
// wraps a sentinel, and the validator agrees with the decoder.
func FuzzEstate(f *testing.F) {
	key := testKey(f, 44)
	_, good := testEstate(f, key, 1, 1, 2)
	f.Add(good)
	f.Add([]byte{})
	v := estateValidator()
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeEstate(data)
		if err != nil {
			wantSentinel(t, "DecodeEstate", err)
			return
		}
		again := &Estate{Seq: e.Seq, Expiry: e.Expiry, TTL: e.TTL, Hosts: e.Hosts, Provider: e.Provider}
		if e.Key.Equals(key.GetPublic()) {
			b, err := again.Sign(key)
			if err != nil || !bytes.Equal(b, data) {
				t.Fatalf("re-signing a decoded estate gives other bytes (%v)", err)
			}
		}
		if _, err := v.DecodeValid(EstateKey(e.ID()), data); err != nil {
			wantSentinel(t, "DecodeValid", err)
		}
	})
}
