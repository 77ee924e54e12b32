package names

import (
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/avnode/avnode/core/names/pb"
)

// Glue is a host's signed peer record carried beside a zone, as DNS carries
// glue beside a delegation: the addresses of a peer the zone's HOST records
// name, signed by that peer's own key. With it a resolver has the hosts'
// addresses from the one DHT walk that found the zone. It is outside the
// owner's signature (the owner cannot vouch for another machine's
// addresses, the machine can), so anyone carrying the zone may drop it or
// pass an older one: a resolver without glue looks the host up as before,
// and between two copies of one zone the fresher glue wins (ZoneAhead).
type Glue struct {
	PeerID   peer.ID
	Addrs    []ma.Multiaddr
	Seq      uint64           // the peer record's, increasing with each new record
	Envelope *record.Envelope // to hand to a peerstore (CertifiedAddrBook)
}

const (
	// MaxGlue bounds the peer records one zone value carries.
	MaxGlue = 4
	// maxGlueSize bounds one signed peer record: an Ed25519 key, a few
	// dozen addresses.
	maxGlueSize = 4096
)

// WithGlue returns the signed zone value (as Sign returns it) with the given
// signed peer records as its glue, replacing any it had. DecodeZone checks
// them; a glue set that does not fit is an error, and the caller puts the
// zone without it.
func WithGlue(signedZone []byte, glue [][]byte) ([]byte, error) {
	var sz pb.SignedZone
	if err := unmarshalStrict(signedZone, &sz); err != nil {
		return nil, fmt.Errorf("zone: %w", err)
	}
	sz.HostRecords = glue
	b, err := marshalCanonical(&sz)
	if err != nil {
		return nil, err
	}
	return b, checkSize("zone with glue", b)
}

// decodeGlue checks each signed peer record: its signature, that the key
// that signed it is the peer it speaks for, and that the zone names that
// peer in a HOST record; at most one per peer, at most MaxGlue.
func decodeGlue(z *Zone, raw [][]byte) ([]Glue, error) {
	if len(raw) > MaxGlue {
		return nil, fmt.Errorf("zone %s: %d host records as glue, at most %d: %w", z.Name, len(raw), MaxGlue, ErrBadRecord)
	}
	var out []Glue
	for i, b := range raw {
		g, err := decodeOneGlue(b)
		if err != nil {
			return nil, fmt.Errorf("zone %s: glue %d: %v: %w", z.Name, i, err, ErrBadRecord)
		}
		if !z.hosts(g.PeerID) {
			return nil, fmt.Errorf("zone %s: glue %d is for %s, which no HOST record names: %w", z.Name, i, g.PeerID, ErrBadRecord)
		}
		if slices.ContainsFunc(out, func(o Glue) bool { return o.PeerID == g.PeerID }) {
			return nil, fmt.Errorf("zone %s: two glue records for %s: %w", z.Name, g.PeerID, ErrBadRecord)
		}
		out = append(out, g)
	}
	return out, nil
}

func decodeOneGlue(b []byte) (Glue, error) {
	if len(b) > maxGlueSize {
		return Glue{}, fmt.Errorf("%d bytes, at most %d", len(b), maxGlueSize)
	}
	env, rec, err := record.ConsumeEnvelope(b, peer.PeerRecordEnvelopeDomain)
	if err != nil {
		return Glue{}, fmt.Errorf("not a signed peer record: %v", err)
	}
	pr, ok := rec.(*peer.PeerRecord)
	if !ok {
		return Glue{}, fmt.Errorf("not a peer record")
	}
	if !pr.PeerID.MatchesPublicKey(env.PublicKey) {
		return Glue{}, fmt.Errorf("the record speaks for %s but is signed by another key", pr.PeerID)
	}
	return Glue{PeerID: pr.PeerID, Addrs: pr.Addrs, Seq: pr.Seq, Envelope: env}, nil
}

// hosts reports whether a HOST record of the zone, under any label, names id.
func (z *Zone) hosts(id peer.ID) bool {
	for _, r := range z.Records {
		if r.Type == TypeHOST && r.Value == id.String() {
			return true
		}
	}
	return false
}

// glueSeq is the newest peer record among the zone's glue, 0 without glue.
func (z *Zone) glueSeq() uint64 {
	var newest uint64
	for _, g := range z.Glue {
		newest = max(newest, g.Seq)
	}
	return newest
}
