package names

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	recordpb "github.com/libp2p/go-libp2p/core/record/pb"
	"google.golang.org/protobuf/proto"

	"github.com/avnode/avnode/core/names/pb"
)

const testCID = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"

func TestZoneRoundTrip(t *testing.T) {
	owner := testKey(t, 1)
	c := mint(t, "coolblog.code", owner)
	z := testZone(t, c, 7,
		Record{Type: TypeROOT, Value: testCID},
		Record{Type: TypeHOST, Value: testPeerID(t, 40)},
		Record{Type: TypeA, Label: "api", Value: "/ip4/192.0.2.1/tcp/4001"},
		Record{Type: TypeCNAME, Label: "www", Value: "einstein.avtr"},
		Record{Type: TypeTXT, Label: "a.b", Value: "héllo"},
	)
	b := sign(t, z, owner)
	got, err := DecodeZone(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != z.Name || !got.Owner.Equals(owner.GetPublic()) || got.Seq != 7 ||
		!got.Expiry.Equal(z.Expiry) || got.TTL != time.Hour || len(got.Records) != 5 || got.Claim.Work() != c.Work() {
		t.Fatalf("decoded %+v, want %+v", got, z)
	}
	for i, r := range z.Records {
		if got.Records[i] != r {
			t.Fatalf("record %d = %+v, want %+v", i, got.Records[i], r)
		}
	}
	if rs := got.RecordsFor("api"); len(rs) != 1 || rs[0].Type != TypeA {
		t.Fatalf("RecordsFor(api) = %+v", rs)
	}
	if err := testZoneValidator().Validate("/avtr-zone/coolblog.code", b); err != nil {
		t.Fatal(err)
	}
	if err := MatchOwner(c, got); err != nil {
		t.Fatal(err)
	}
	if z.Key() != "/avtr-zone/coolblog.code" || ZoneKey(mustParse(t, "api.coolblog.code")) != z.Key() {
		t.Fatalf("zone key = %q", z.Key())
	}
	// A carrier (a mirror) gets back exactly what the owner signed.
	if !bytes.Equal(got.Signed(), b) || !bytes.Equal(z.Signed(), b) {
		t.Fatal("Signed() differs from the signed bytes")
	}
	if again, err := DecodeClaim(got.SignedClaim()); err != nil || !again.Owner.Equals(owner.GetPublic()) {
		t.Fatalf("SignedClaim() does not decode to the owner's claim: %v", err)
	}
	if !bytes.Equal(got.SignedClaim(), marshal(t, c)) || !bytes.Equal(wireValue(t, b, fSignedClaim), marshal(t, c)) {
		t.Fatal("the zone must carry the owner's claim bytes unchanged")
	}
}

// TestZoneWireFormat pins what the owner signs: payload type 0x300a03 and
// claim_hash = sha256 of the embedded SignedClaim bytes.
func TestZoneWireFormat(t *testing.T) {
	owner := testKey(t, 1)
	c := mint(t, "coolblog.code", owner)
	b := sign(t, testZone(t, c, 1), owner)
	env := wireValue(t, b, fSignedEnvelope)
	if got, want := wireValue(t, env, fEnvPayloadType), binary.AppendUvarint(nil, 0x300a03); !bytes.Equal(got, want) {
		t.Fatalf("zone payload type %x, want %x", got, want)
	}
	var p pb.ZonePayload
	if err := proto.Unmarshal(wireValue(t, env, fEnvPayload), &p); err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(wireValue(t, b, fSignedClaim)); !bytes.Equal(p.GetClaimHash(), want[:]) {
		t.Fatalf("claim_hash %x, want sha256 of the embedded claim %x", p.GetClaimHash(), want)
	}
	if got, want := wireValue(t, wireValue(t, b, fSignedClaim), fSignedEnvelope), wireValue(t, marshal(t, c), fSignedEnvelope); !bytes.Equal(got, want) {
		t.Fatal("embedded claim envelope differs from the claim's")
	}
}

func TestCopiesWanted(t *testing.T) {
	c := mint(t, "coolblog.code", testKey(t, 1))
	txt := func(label, v string) Record { return Record{Type: TypeTXT, Label: label, Value: v} }
	for _, tc := range []struct {
		records []Record
		want    int
	}{
		{nil, 0},
		{[]Record{txt("", "copies=5")}, 5},
		{[]Record{txt("", "copies=2"), txt("", "copies=7"), txt("", "hello")}, 7},
		{[]Record{txt("api", "copies=5")}, 0}, // only the registered name sets it
		{[]Record{txt("", "copies=-3"), txt("", "copies=lots")}, 0},
		{[]Record{{Type: TypeA, Value: "copies=4"}}, 0},
	} {
		if got := testZone(t, c, 1, tc.records...).CopiesWanted(); got != tc.want {
			t.Errorf("%+v: CopiesWanted() = %d, want %d", tc.records, got, tc.want)
		}
	}
}

func TestZoneRecords(t *testing.T) {
	host := testPeerID(t, 40)
	tests := []struct {
		name string
		r    Record
		ok   bool
	}{
		{"root", Record{Type: TypeROOT, Value: testCID}, true},
		{"root on a label", Record{Type: TypeROOT, Label: "blog", Value: testCID}, true},
		{"root empty", Record{Type: TypeROOT}, false},
		{"root with space", Record{Type: TypeROOT, Value: "bafy x"}, false},
		{"root with control char", Record{Type: TypeROOT, Value: "bafy\n"}, false},
		{"root not a CID", Record{Type: TypeROOT, Value: "notacid"}, false},
		{"root CIDv0", Record{Type: TypeROOT, Value: "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n"}, true},
		{"root CIDv1 in base36, not canonical", Record{Type: TypeROOT, Value: "k2jmtxw8rjh1z69c6not3wtdxb0u3urbzhyll1t9jg6ox26dhi5sfi1m"}, false},
		{"host", Record{Type: TypeHOST, Value: host}, true},
		{"host as CID", Record{Type: TypeHOST, Value: KeyID(testKey(t, 40).GetPublic())}, true},
		{"host not a peer", Record{Type: TypeHOST, Value: "12D3KooWnotapeer"}, false},
		{"host multiaddr", Record{Type: TypeHOST, Value: "/ip4/192.0.2.1/tcp/1"}, false},
		{"satellite", Record{Type: TypeSAT, Value: host}, true},
		{"satellite not a peer", Record{Type: TypeSAT, Value: "my-phone"}, false},
		{"A peer", Record{Type: TypeA, Label: "api", Value: host}, true},
		{"A multiaddr", Record{Type: TypeA, Label: "api", Value: "/dns4/example.org/udp/4001/quic-v1"}, true},
		{"A junk", Record{Type: TypeA, Label: "api", Value: "192.0.2.1"}, false},
		{"CNAME other zone", Record{Type: TypeCNAME, Label: "www", Value: "einstein.avtr"}, true},
		{"CNAME sibling label", Record{Type: TypeCNAME, Label: "www", Value: "api.coolblog.code"}, true},
		{"CNAME to itself", Record{Type: TypeCNAME, Label: "www", Value: "www.coolblog.code"}, false},
		{"CNAME apex to itself", Record{Type: TypeCNAME, Value: "coolblog.code"}, false},
		{"CNAME label to its zone", Record{Type: TypeCNAME, Label: "www", Value: "coolblog.code"}, false},
		{"CNAME not a name", Record{Type: TypeCNAME, Label: "www", Value: "nowhere"}, false},
		{"CNAME not canonical", Record{Type: TypeCNAME, Label: "www", Value: "Einstein.avtr"}, false},
		{"TXT", Record{Type: TypeTXT, Value: "v=1 hello"}, true},
		{"TXT 1 KiB", Record{Type: TypeTXT, Value: strings.Repeat("x", MaxTXTLen)}, true},
		{"TXT too long", Record{Type: TypeTXT, Value: strings.Repeat("x", MaxTXTLen+1)}, false},
		{"TXT bad UTF-8", Record{Type: TypeTXT, Value: "\xff"}, false},
		{"bad label", Record{Type: TypeTXT, Label: "-x", Value: "t"}, false},
		{"upper-case label", Record{Type: TypeTXT, Label: "API", Value: "t"}, false},
		{"label too long for the name", Record{Type: TypeTXT, Label: strings.Repeat("abcdefgh.", 27) + "x", Value: "t"}, false},
		{"unknown type", Record{Type: 99, Value: "x"}, false},
		{"unspecified type", Record{Value: "x"}, false},
	}
	zone := mustParse(t, "coolblog.code")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkRecords(zone, []Record{tt.r})
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrBadRecord)) {
				t.Fatalf("got %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestCNAMEMustBeAlone(t *testing.T) {
	zone := mustParse(t, "coolblog.code")
	rs := []Record{{Type: TypeCNAME, Label: "www", Value: "einstein.avtr"}, {Type: TypeTXT, Label: "www", Value: "x"}}
	if err := checkRecords(zone, rs); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("CNAME beside TXT: got %v", err)
	}
	rs[1].Label = "api"
	if err := checkRecords(zone, rs); err != nil {
		t.Fatalf("CNAME and TXT on different labels: %v", err)
	}
}

func TestZoneSignRefuses(t *testing.T) {
	alice, bob := testKey(t, 1), testKey(t, 2)
	c := mint(t, "coolblog.code", alice)
	tests := []struct {
		name string
		z    *Zone
		key  int
		want error
	}{
		{"no claim", &Zone{Name: c.Name, Expiry: testNow}, 1, ErrWrongOwner},
		{"someone else's claim", testZone(t, c, 1), 2, ErrWrongOwner},
		{"claim of another name", &Zone{Name: mustParse(t, "other.code"), Claim: c}, 1, ErrNameMismatch},
		{"sub name", &Zone{Name: mustParse(t, "api.coolblog.code"), Claim: c}, 1, ErrBadName},
		{"bad record", testZone(t, c, 1, Record{Type: TypeHOST, Value: "nope"}), 1, ErrBadRecord},
		{"negative TTL", &Zone{Name: c.Name, Claim: c, TTL: -time.Second}, 1, ErrBadRecord},
		{"too large", testZone(t, c, 1, manyTXT(MaxRecordSize/MaxTXTLen+1)...), 1, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := alice
			if tt.key == 2 {
				key = bob
			}
			if _, err := tt.z.Sign(key); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func manyTXT(n int) []Record {
	rs := make([]Record, n)
	for i := range rs {
		rs[i] = Record{Type: TypeTXT, Value: strings.Repeat("x", MaxTXTLen)}
	}
	return rs
}

// zoneEnvelope digs the owner's envelope out of a zone value.
func zoneEnvelope(t *testing.T, value []byte) (*pb.SignedZone, *recordpb.Envelope) {
	t.Helper()
	var sz pb.SignedZone
	var env recordpb.Envelope
	if err := proto.Unmarshal(value, &sz); err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(sz.Envelope, &env); err != nil {
		t.Fatal(err)
	}
	return &sz, &env
}

func TestZoneValidate(t *testing.T) {
	alice, bob := testKey(t, 1), testKey(t, 2)
	ca := mint(t, "coolblog.code", alice)
	good := sign(t, testZone(t, ca, 1, Record{Type: TypeROOT, Value: testCID}), alice)
	expired := testZone(t, ca, 1)
	expired.Expiry = testNow
	weakClaim := mintAt(t, "coolblog.code", alice, testDifficulty-2, testNow)
	bobZoneAliceClaim := func() []byte {
		sz, _ := zoneEnvelope(t, sign(t, testZone(t, mint(t, "coolblog.code", bob), 9), bob))
		sz.Claim = marshal(t, ca)
		b, _ := marshalCanonical(sz)
		return b
	}()
	flip := func(f func(*recordpb.Envelope)) []byte {
		sz, env := zoneEnvelope(t, good)
		f(env)
		sz.Envelope, _ = proto.Marshal(env)
		b, _ := marshalCanonical(sz)
		return b
	}
	tests := []struct {
		name  string
		key   string
		value []byte
		want  error
	}{
		{"good", "/avtr-zone/coolblog.code", good, nil},
		{"other name", "/avtr-zone/newblog.code", good, ErrNameMismatch},
		{"claim namespace", "/avtr-claim/coolblog.code", good, ErrMalformed},
		{"expired", "/avtr-zone/coolblog.code", sign(t, expired, alice), ErrExpired},
		{"weak embedded claim", "/avtr-zone/coolblog.code", sign(t, testZone(t, weakClaim, 1), alice), ErrInsufficientWork},
		{"signed by someone else than the claim's owner", "/avtr-zone/coolblog.code", bobZoneAliceClaim, ErrWrongOwner},
		{"flip signature bit", "/avtr-zone/coolblog.code", flip(func(e *recordpb.Envelope) { e.Signature[0] ^= 0x80 }), ErrBadSignature},
		{"flip payload bit", "/avtr-zone/coolblog.code", flip(func(e *recordpb.Envelope) { e.Payload[5] ^= 1 }), ErrBadSignature},
		{"claim envelope in zone", "/avtr-zone/coolblog.code", flip(func(e *recordpb.Envelope) { e.PayloadType = claimCodec }), ErrMalformed},
		{"old zone payload type 0x300a02", "/avtr-zone/coolblog.code", flip(func(e *recordpb.Envelope) { e.PayloadType = binary.AppendUvarint(nil, 0x300a02) }), ErrMalformed},
		{"oversized", "/avtr-zone/coolblog.code", make([]byte, MaxRecordSize+1), ErrTooLarge},
		{"malformed", "/avtr-zone/coolblog.code", []byte{0x0a, 0xff}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := testZoneValidator().Validate(tt.key, tt.value)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestZoneEveryBitFlip(t *testing.T) {
	owner := testKey(t, 1)
	good := sign(t, testZone(t, mint(t, "coolblog.code", owner), 1, Record{Type: TypeTXT, Value: "hi"}), owner)
	v := testZoneValidator()
	for i := range len(good) * 8 {
		b := bytes.Clone(good)
		b[i/8] ^= 1 << (i % 8)
		if err := v.Validate("/avtr-zone/coolblog.code", b); err == nil {
			t.Fatalf("flipping bit %d still validates", i)
		}
	}
}

// TestZoneSelect: the owner is the key of the embedded claim with the lower
// work hash; among the zones on that exact claim the highest seq, then the
// later expiry wins. Every permutation picks the same value.
func TestZoneSelect(t *testing.T) {
	alice, bob := testKey(t, 1), testKey(t, 2)
	ca := mint(t, "coolblog.code", alice)
	caWorse := mintWhere(t, "coolblog.code", alice, func(c *Claim) bool { return lowerWork(ca, c) }) // alice minted again
	cbWorse := mintWhere(t, "coolblog.code", bob, func(c *Claim) bool { return lowerWork(ca, c) })
	cbBetter := mintWhere(t, "coolblog.code", bob, func(c *Claim) bool { return lowerWork(c, ca) })
	zone := func(c *Claim, key crypto.PrivKey, seq uint64, expiry time.Duration) []byte {
		z := testZone(t, c, seq)
		z.Expiry = testNow.Add(expiry)
		return sign(t, z, key)
	}
	a1 := zone(ca, alice, 1, time.Hour)
	a2 := zone(ca, alice, 2, time.Hour)
	a2later := zone(ca, alice, 2, 2*time.Hour)
	a3worse := zone(caWorse, alice, 3, time.Hour)
	bHuge := zone(cbWorse, bob, ^uint64(0), 48*time.Hour)
	bBetter := zone(cbBetter, bob, 1, time.Hour)
	expired := zone(cbBetter, bob, 9, -time.Hour)

	tests := []struct {
		name   string
		values [][]byte
		want   []byte
	}{
		{"higher seq wins", [][]byte{a1, a2}, a2},
		{"same seq: later expiry wins", [][]byte{a2, a2later, a1}, a2later},
		// An owner is its exact claim: a zone on another claim of the same
		// key (a thief holding the first key could mint one) is a rival,
		// and the better claim's zones win whatever their seq.
		{"a zone on another claim of the same key is a rival", [][]byte{a2, a3worse}, a2},
		{"another key's higher seq cannot displace the owner", [][]byte{a1, bHuge}, a1},
		{"a lower work hash picks the owner", [][]byte{a2later, bBetter, a3worse}, bBetter},
		{"expired zones do not count", [][]byte{a1, expired, a2}, a2},
		{"all together", [][]byte{a1, bHuge, a2, a3worse, a2later}, a2later},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			permutations(len(tt.values), func(order []int) {
				shuffled := make([][]byte, len(order))
				for i, j := range order {
					shuffled[i] = tt.values[j]
				}
				i, err := testZoneValidator().Select("/avtr-zone/coolblog.code", shuffled)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(shuffled[i], tt.want) {
					t.Fatalf("order %v picked value %d", order, i)
				}
			})
		})
	}
	if _, err := testZoneValidator().Select("/avtr-zone/coolblog.code", [][]byte{[]byte("x")}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Select of only invalid values: %v", err)
	}
}

func TestZoneDecodeValid(t *testing.T) {
	owner := testKey(t, 1)
	c := mint(t, "coolblog.code", owner)
	b := sign(t, testZone(t, c, 4, Record{Type: TypeTXT, Value: "hi"}), owner)
	z, err := testZoneValidator().DecodeValid("/avtr-zone/coolblog.code", b)
	if err != nil {
		t.Fatal(err)
	}
	if z.Seq != 4 || !z.Owner.Equals(owner.GetPublic()) || !bytes.Equal(z.Signed(), b) || z.Claim.Work() != c.Work() {
		t.Fatalf("DecodeValid = %+v", z)
	}
	expired := testZone(t, c, 5)
	expired.Expiry = testNow
	for key, value := range map[string][]byte{
		"/avtr-zone/newblog.code":   b,
		"/avtr-claim/coolblog.code": b,
		"/avtr-zone/coolblog.code":  sign(t, expired, owner),
	} {
		z, err := testZoneValidator().DecodeValid(key, value)
		verr := testZoneValidator().Validate(key, value)
		if err == nil || z != nil || verr == nil || err.Error() != verr.Error() {
			t.Errorf("DecodeValid(%s) = %v, %v; Validate = %v", key, z, err, verr)
		}
	}
}

func TestMatchOwner(t *testing.T) {
	alice, bob := testKey(t, 1), testKey(t, 2)
	z, err := DecodeZone(sign(t, testZone(t, mint(t, "coolblog.code", bob), 1), bob))
	if err != nil {
		t.Fatal(err)
	}
	if err := MatchOwner(mint(t, "coolblog.code", alice), z); !errors.Is(err, ErrWrongOwner) {
		t.Fatalf("got %v, want ErrWrongOwner", err)
	}
	if err := MatchOwner(mint(t, "other.code", bob), z); !errors.Is(err, ErrNameMismatch) {
		t.Fatalf("got %v, want ErrNameMismatch", err)
	}
}

func TestHighWater(t *testing.T) {
	n := mustParse(t, "api.coolblog.code")
	tests := []struct {
		seen, fetched uint64
		want          error
	}{
		{0, 0, nil}, {0, 1, nil}, {5, 5, nil}, {5, 6, nil},
		{5, 4, ErrRolledBack}, {^uint64(0), 0, ErrRolledBack},
	}
	for _, tt := range tests {
		err := HighWater(n, tt.seen, tt.fetched)
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("HighWater(%d, %d) = %v, want %v", tt.seen, tt.fetched, err, tt.want)
		}
		if err != nil && !strings.Contains(err.Error(), "zone coolblog.code: seq") {
			t.Errorf("message %q must name the zone", err)
		}
	}
}

func TestParseRecordType(t *testing.T) {
	for _, s := range []string{"ROOT", "host", "A", "Cname", "txt"} {
		rt, err := ParseRecordType(s)
		if err != nil || !strings.EqualFold(rt.String(), s) {
			t.Errorf("ParseRecordType(%q) = %v, %v", s, rt, err)
		}
	}
	if _, err := ParseRecordType("MX"); !errors.Is(err, ErrBadRecord) {
		t.Errorf("MX: %v", err)
	}
	if RecordType(42).String() != "TYPE42" {
		t.Error("unknown type string")
	}
}
