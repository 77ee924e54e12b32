package names

import (
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	ma "github.com/multiformats/go-multiaddr"
)

// peerRecord is a libp2p signed peer record for id with one address, sealed
// by signer (the peer's own key, or a forger's).
func peerRecord(t *testing.T, id peer.ID, signer crypto.PrivKey, seq uint64, addr string) []byte {
	t.Helper()
	rec := peer.PeerRecordFromAddrInfo(peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{ma.StringCast(addr)}})
	rec.Seq = seq
	env, err := record.Seal(rec, signer)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func glued(t *testing.T, signed []byte, glue ...[]byte) []byte {
	t.Helper()
	b, err := WithGlue(signed, glue)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGlueCarriesHostAddresses(t *testing.T) {
	alice, hostKey, other := testKey(t, 1), testKey(t, 7), testKey(t, 8)
	hostID, _ := peer.IDFromPrivateKey(hostKey)
	otherID, _ := peer.IDFromPrivateKey(other)
	c := mint(t, "coolblog.code", alice)
	signed := sign(t, testZone(t, c, 1, Record{Type: TypeHOST, Value: hostID.String()}), alice)

	z, err := testZoneValidator().DecodeValid(ZoneKey(c.Name), glued(t, signed, peerRecord(t, hostID, hostKey, 5, "/ip4/192.0.2.7/tcp/4001")))
	if err != nil {
		t.Fatal(err)
	}
	if len(z.Glue) != 1 || z.Glue[0].PeerID != hostID || z.Glue[0].Seq != 5 || z.Glue[0].Addrs[0].String() != "/ip4/192.0.2.7/tcp/4001" {
		t.Fatalf("glue %+v", z.Glue)
	}
	if z, err := DecodeZone(signed); err != nil || len(z.Glue) != 0 {
		t.Fatalf("the zone without glue: %v, %d glue", err, len(z.Glue))
	}

	// Each of these is a whole value refused, as holders refuse it.
	forged := map[string][]byte{
		"signed by another key":        glued(t, signed, peerRecord(t, hostID, other, 6, "/ip4/198.51.100.1/tcp/1")),
		"for a peer no HOST names":     glued(t, signed, peerRecord(t, otherID, other, 1, "/ip4/198.51.100.1/tcp/1")),
		"twice for one host":           glued(t, signed, peerRecord(t, hostID, hostKey, 5, "/ip4/192.0.2.7/tcp/4001"), peerRecord(t, hostID, hostKey, 6, "/ip4/192.0.2.7/tcp/4002")),
		"not a signed peer record":     glued(t, signed, []byte("glue")),
		"more than MaxGlue":            glued(t, signed, make([][]byte, MaxGlue+1)...),
		"a claim's envelope, not glue": glued(t, signed, wireValue(t, marshal(t, c), fSignedEnvelope)),
	}
	for what, value := range forged {
		if _, err := testZoneValidator().DecodeValid(ZoneKey(c.Name), value); !errors.Is(err, ErrBadRecord) {
			t.Errorf("glue %s: %v; want ErrBadRecord", what, err)
		}
	}
}

// TestFresherGlueWins: two copies of one zone differ only in glue (a holder
// kept an older one, or dropped it): Select takes the newest host record,
// in any order, so that a stale copy does not stick.
func TestFresherGlueWins(t *testing.T) {
	alice, hostKey := testKey(t, 1), testKey(t, 7)
	hostID, _ := peer.IDFromPrivateKey(hostKey)
	c := mint(t, "coolblog.code", alice)
	signed := sign(t, testZone(t, c, 1, Record{Type: TypeHOST, Value: hostID.String()}), alice)
	old := glued(t, signed, peerRecord(t, hostID, hostKey, 1, "/ip4/192.0.2.7/tcp/9"))
	fresh := glued(t, signed, peerRecord(t, hostID, hostKey, 2, "/ip4/192.0.2.7/tcp/4001"))
	for _, values := range [][][]byte{{old, fresh, signed}, {fresh, signed, old}, {signed, old, fresh}} {
		i, err := testZoneValidator().Select(ZoneKey(c.Name), values)
		if err != nil || string(values[i]) != string(fresh) {
			t.Fatalf("Select picked %d (%v); want the fresher glue", i, err)
		}
	}
}
