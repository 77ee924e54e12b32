package names

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	recordpb "github.com/libp2p/go-libp2p/core/record/pb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	namespb "github.com/avnode/avnode/core/names/pb"
)

// mutations is how many bad zones TestMutatedZonesAllRefused makes.
const mutations = 10_000

// Ten thousand zones mutated from a valid one (a flipped signature bit, the
// wrong key, the wrong name, a broken or padded encoding, expired, oversized) are all
// refused by the validator every DHT holder runs, without a panic: none of
// them can be stored. The mutations come from a fixed seed, so a failure
// reproduces.
func TestMutatedZonesAllRefused(t *testing.T) {
	owner := testKey(t, 1)
	claim := mint(t, "einstein.avtr", owner)
	good := sign(t, testZone(t, claim, 7, Record{Type: TypeTXT, Value: "relativity"}), owner)
	v := testZoneValidator()
	key := ZoneKey(mustParse(t, "einstein.avtr"))
	if err := v.Validate(key, good); err != nil {
		t.Fatalf("the valid zone is refused: %v", err)
	}
	strangers := make([]crypto.PrivKey, 16)
	for i := range strangers {
		strangers[i] = testKey(t, byte(100+i))
	}
	rng := rand.New(rand.NewPCG(7, 11))
	kinds := []struct {
		name   string
		mutate func(i int) (string, []byte)
	}{
		{"flipped signature bit", func(int) (string, []byte) { return key, flipEnvelopeSignatureBit(t, good, rng) }},
		{"wrong key", func(i int) (string, []byte) {
			return key, withEnvelopeKey(t, good, strangers[i%len(strangers)].GetPublic())
		}},
		{"wrong name", func(i int) (string, []byte) { return ZoneKey(mustParse(t, fmt.Sprintf("other%d.avtr", i))), good }},
		{"bad encoding", func(int) (string, []byte) { return key, breakEncoding(t, good, rng) }},
		{"expired", func(i int) (string, []byte) {
			z := testZone(t, claim, 8, Record{Type: TypeTXT, Value: fmt.Sprint("old ", i)})
			z.Expiry = testNow.Add(-time.Duration(1+rng.IntN(1000)) * time.Minute)
			return key, sign(t, z, owner)
		}},
		{"oversized", func(i int) (string, []byte) {
			big := make([]byte, MaxRecordSize+1+rng.IntN(4096))
			copy(big, good)
			return key, big
		}},
	}
	refused := map[string]int{}
	for i := range mutations {
		kind := kinds[i%len(kinds)]
		k, value := kind.mutate(i)
		if bytes.Equal(value, good) && k == key {
			t.Fatalf("%s #%d made the valid zone again", kind.name, i)
		}
		if err := v.Validate(k, value); err == nil {
			t.Fatalf("%s #%d was accepted", kind.name, i)
		}
		if _, err := v.Select(k, [][]byte{value}); err == nil {
			t.Fatalf("%s #%d was selected", kind.name, i)
		}
		refused[kind.name]++
	}
	t.Logf("refused: %v", refused)
}

// flipEnvelopeSignatureBit flips one bit of the signature, the last 64
// bytes of the signed envelope.
func flipEnvelopeSignatureBit(t *testing.T, b []byte, rng *rand.Rand) []byte {
	t.Helper()
	var sz namespb.SignedZone
	if err := proto.Unmarshal(b, &sz); err != nil {
		t.Fatal(err)
	}
	env := bytes.Clone(sz.GetEnvelope())
	bit := rng.IntN(64 * 8)
	env[len(env)-64+bit/8] ^= 1 << (bit % 8)
	sz.Envelope = env
	out, err := proto.Marshal(&sz)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// withEnvelopeKey puts another public key in the signed envelope: the zone
// then claims to be signed by that key.
func withEnvelopeKey(t *testing.T, b []byte, pub crypto.PubKey) []byte {
	t.Helper()
	var sz namespb.SignedZone
	if err := proto.Unmarshal(b, &sz); err != nil {
		t.Fatal(err)
	}
	var env recordpb.Envelope
	if err := proto.Unmarshal(sz.GetEnvelope(), &env); err != nil {
		t.Fatal(err)
	}
	pk, err := crypto.PublicKeyToProto(pub)
	if err != nil {
		t.Fatal(err)
	}
	env.PublicKey = pk
	if sz.Envelope, err = proto.Marshal(&env); err != nil {
		t.Fatal(err)
	}
	out, err := proto.Marshal(&sz)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// breakEncoding truncates the record, overwrites any byte of it (the
// envelope is covered by the owner's signature and canonical encoding, the
// embedded claim by the claim_hash the owner signed), appends junk, or slips
// an unknown field in at a field boundary of the zone or of its envelope.
func breakEncoding(t *testing.T, b []byte, rng *rand.Rand) []byte {
	t.Helper()
	out := bytes.Clone(b)
	switch rng.IntN(4) {
	case 0:
		return out[:rng.IntN(len(out))]
	case 1:
		out[rng.IntN(len(out))] ^= byte(1 + rng.IntN(255))
		return out
	case 2:
		return append(out, []byte(strings.Repeat("\xff", 1+rng.IntN(8)))...)
	default:
		junk := bytesField(protowire.Number(6+rng.IntN(1000)), bytes.Repeat([]byte{byte(rng.IntN(256))}, rng.IntN(16)))
		env := wireValue(t, b, fSignedEnvelope)
		if rng.IntN(2) == 0 {
			return zoneValue(insertAtBoundary(t, env, junk, rng), wireValue(t, b, fSignedClaim))
		}
		return insertAtBoundary(t, b, junk, rng)
	}
}

// insertAtBoundary puts extra between two top-level fields of msg.
func insertAtBoundary(t *testing.T, msg, extra []byte, rng *rand.Rand) []byte {
	t.Helper()
	fs := wireFields(t, msg)
	at := rng.IntN(len(fs) + 1)
	var out []byte
	for i, f := range fs {
		if i == at {
			out = append(out, extra...)
		}
		out = append(out, f.raw...)
	}
	if at == len(fs) {
		out = append(out, extra...)
	}
	return out
}
