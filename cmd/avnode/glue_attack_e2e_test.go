package main

import (
	"context"
	"crypto/sha256"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/avnode/avnode/core/names"
	"github.com/avnode/avnode/core/names/pb"
)

// peerRecordBy is a libp2p signed peer record saying that id listens on
// addrs, sealed by signer: the peer's own key or anyone's.
func peerRecordBy(t *testing.T, signer crypto.PrivKey, id peer.ID, addrs ...string) []byte {
	t.Helper()
	info := peer.AddrInfo{ID: id}
	for _, a := range addrs {
		info.Addrs = append(info.Addrs, ma.StringCast(a))
	}
	env, err := record.Seal(peer.PeerRecordFromAddrInfo(info), signer)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// glueZone writes a zone of name naming host in a HOST record, signed by
// head, with the given glue beside it, all by hand from the wire format.
func (f forger) glueZone(name string, seq uint64, claim []byte, head crypto.PrivKey, host peer.ID, glue ...[]byte) []byte {
	claimHash := sha256.Sum256(claim)
	p := &pb.ZonePayload{Name: name, OwnerKey: f.pub(head), Seq: seq, ExpiryUnix: time.Now().Add(time.Hour).Unix(), TtlSeconds: 60,
		Records: []*pb.ZoneRecord{{Type: pb.RecordType_RECORD_TYPE_HOST, Value: host.String()}}, ClaimHash: claimHash[:]}
	env, err := record.Seal(handZone{p}, head)
	if err != nil {
		f.t.Fatal(err)
	}
	envBytes, err := env.Marshal()
	if err != nil {
		f.t.Fatal(err)
	}
	return f.marshal(&pb.SignedZone{Envelope: envBytes, Claim: claim, HostRecords: glue})
}

// A bare host owns a name and publishes, beside its zone, glue that would
// send resolvers to its own address for another machine: the victim node's
// record signed by the attacker, and its own record for a peer its zone
// does not name. Every node refuses both. The control: its own genuine
// record for its own HOST is taken, and a daemon's resolve gives the
// address only that glue carried.
func TestForgedGlueIsRefusedByEveryNode(t *testing.T) {
	nodes, _ := startDaemons(t, t.TempDir(), 4, nil)
	for _, d := range nodes {
		waitPeers(t, d, 2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	mallory := newAttacker(t)
	ids := mallory.connectAll(ctx, nodes)
	f := forger{t}
	hostKey := mallory.h.Peerstore().PrivKey(mallory.h.ID())
	const name = "mallory-glue.avtr"
	n, _ := names.Parse(name)
	owner := f.key()
	claim, err := names.MintClaim(ctx, n, owner, 8, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	claimBytes, _ := claim.Marshal()
	victim := ids[1]
	const trap = "/ip4/127.0.0.1/tcp/9" // the attacker's: nobody listens there

	forgeries := map[string][]byte{
		"the victim's record, signed by the attacker": f.glueZone(name, 1, claimBytes, owner, victim, peerRecordBy(t, hostKey, victim, trap)),
		"a record for a peer the zone does not name":  f.glueZone(name, 1, claimBytes, owner, victim, peerRecordBy(t, hostKey, mallory.h.ID(), trap)),
		"a record that is not a signed peer record":   f.glueZone(name, 1, claimBytes, owner, victim, []byte(trap)),
	}
	for what, value := range forgeries {
		for i, id := range ids {
			if err := mallory.put(ctx, id, names.ZoneKey(n), value); err == nil {
				t.Errorf("%s: node %d took it", what, i)
			}
		}
	}
	genuine := f.glueZone(name, 2, claimBytes, owner, mallory.h.ID(), peerRecordBy(t, hostKey, mallory.h.ID(), trap))
	for i, id := range ids {
		if err := mallory.put(ctx, id, names.ZoneKey(n), genuine); err != nil {
			t.Fatalf("node %d refused genuine glue in the hand-made format: %v", i, err)
		}
	}
	var res struct {
		Hosts []struct {
			PeerID string `json:"peer_id"`
			Addrs  []string
		}
	}
	cliJSON(t, nodes[3].repo, &res, "resolve", name)
	if len(res.Hosts) != 1 || res.Hosts[0].PeerID != mallory.h.ID().String() || !slices.Contains(res.Hosts[0].Addrs, trap) {
		t.Fatalf("resolve %s: hosts %+v; want %s with the address its own glue signed", name, res.Hosts, mallory.h.ID())
	}
}
