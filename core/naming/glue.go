package naming

import (
	"bytes"
	"context"
	"slices"
	"time"

	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/record"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/avnode/avnode/core/names"
)

// Glue, as in DNS: the addresses of a zone's hosts, carried beside the zone
// so that a resolve need not walk the DHT a second time to find them. Each
// piece of glue is a host's own signed peer record (the envelope libp2p's
// identify exchanges), signed by the host's key, not the owner's: the zone
// says which hosts, each host says where it is, and the holder that serves
// both can forge neither. The owner attaches the records it has (its own,
// and those of hosts it is connected to) when it puts the zone.
//
// Glue rides in a field of the DHT's Record message that the libp2p record
// schema does not use. kad-dht keeps fields it does not know (protobuf
// does), so holders store and answer it as it came, avnode or not. A
// holder running avnode keeps only well-formed glue within bounds
// (keepOnlyGlue); a resolver checks each record's signature and uses only
// those of the hosts the zone names, then dials them before it lists their
// addresses: a record replayed from before a host moved costs one failed
// dial, and the resolve falls back to the DHT's peer routing.

const (
	// glueField is the Record message's field that carries glue, one
	// envelope per occurrence: far above the schema's own (1 to 5).
	glueField protowire.Number = 100
	// maxGlue bounds the envelopes a record carries: one per host a
	// resolve looks up.
	maxGlue = MaxHostLookups
	// maxGlueEnvelope bounds one envelope's bytes; an honest peer record
	// with a few dozen addresses fits well within it.
	maxGlueEnvelope = 2048
	// maxGlueChecked bounds the distinct envelopes one resolve checks the
	// signature of, whatever the holders that voted sent.
	maxGlueChecked = 2 * maxGlue
	// glueDialWait bounds the dial to a host at its glued addresses;
	// hostWait's lookup follows when it fails.
	glueDialWait = hostWait / 2
	// peerRecordsKept bounds the peers whose signed records this node
	// keeps from identify; peerRecordsFresh is how long one is kept
	// (identify brings a new one whenever the peer's addresses change).
	peerRecordsKept  = 1024
	peerRecordsFresh = time.Hour
)

// setGlue replaces whatever rec carries beyond the record schema with the
// envelopes given, as glue.
func setGlue(rec *recpb.Record, envelopes [][]byte) {
	var b []byte
	for _, e := range envelopes {
		b = protowire.AppendTag(b, glueField, protowire.BytesType)
		b = protowire.AppendBytes(b, e)
	}
	rec.ProtoReflect().SetUnknown(b)
}

// glueOf returns the glue rec carries: at most maxGlue envelopes of at most
// maxGlueEnvelope bytes each. Other unknown fields, longer envelopes and
// the rest of a malformed tail are ignored.
func glueOf(rec *recpb.Record) [][]byte {
	if rec == nil {
		return nil
	}
	b := rec.ProtoReflect().GetUnknown()
	var out [][]byte
	for len(b) > 0 && len(out) < maxGlue {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			break
		}
		b = b[n:]
		if num == glueField && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				break
			}
			if len(v) <= maxGlueEnvelope {
				out = append(out, bytes.Clone(v))
			}
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			break
		}
		b = b[m:]
	}
	return out
}

// keepOnlyGlue drops from rec whatever it carries beyond the record schema
// except well-formed glue within bounds: a peer's PUT must not make this
// node store and serve bytes nobody checks.
func keepOnlyGlue(rec *recpb.Record) { setGlue(rec, glueOf(rec)) }

// keepPeerRecords keeps the signed peer records identify brings, until
// ctx ends: identify checks them and takes their addresses but does not
// keep the records themselves.
func (s *Service) keepPeerRecords(ctx context.Context) {
	sub, err := s.host.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		s.log.Warn("no glue for other hosts: cannot follow identify", "err", err)
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer sub.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case e := <-sub.Out():
				if id := e.(event.EvtPeerIdentificationCompleted); id.SignedPeerRecord != nil {
					s.peerRecords.Add(id.Peer, id.SignedPeerRecord)
				}
			}
		}
	}()
}

// glueFor is the glue this node can attach to z: the signed peer records
// it holds of the hosts z names (its own among them), up to maxGlue.
func (s *Service) glueFor(z *names.Zone) [][]byte {
	var out [][]byte
	for _, id := range hostIDs(z.Records) {
		if len(out) == maxGlue {
			break
		}
		env := s.peerRecord(id)
		if env == nil {
			continue
		}
		if b, err := env.Marshal(); err == nil && len(b) <= maxGlueEnvelope {
			out = append(out, b)
		}
	}
	return out
}

// peerRecord is id's signed peer record as this node holds it: its own
// from the host, another's from identify.
func (s *Service) peerRecord(id peer.ID) *record.Envelope {
	if id == s.host.ID() {
		if book, ok := peerstore.GetCertifiedAddrBook(s.host.Peerstore()); ok {
			return book.GetPeerRecord(id)
		}
		return nil
	}
	env, _ := s.peerRecords.Get(id)
	return env
}

// checkGlue returns the addresses the glue signs for each of hosts: only
// envelopes whose signature holds and whose record is signed by the peer
// it is about, the newest record of each host.
func checkGlue(glue [][]byte, hosts []peer.ID) map[peer.ID][]ma.Multiaddr {
	if len(glue) == 0 || len(hosts) == 0 {
		return nil
	}
	best := map[peer.ID]*peer.PeerRecord{}
	for _, b := range glue[:min(len(glue), maxGlueChecked)] {
		env, r, err := record.ConsumeEnvelope(b, peer.PeerRecordEnvelopeDomain)
		if err != nil {
			continue
		}
		rec, ok := r.(*peer.PeerRecord)
		if !ok || !slices.Contains(hosts, rec.PeerID) || len(rec.Addrs) == 0 {
			continue
		}
		if signer, err := peer.IDFromPublicKey(env.PublicKey); err != nil || signer != rec.PeerID {
			continue
		}
		if had := best[rec.PeerID]; had == nil || rec.Seq > had.Seq {
			best[rec.PeerID] = rec
		}
	}
	out := make(map[peer.ID][]ma.Multiaddr, len(best))
	for id, rec := range best {
		out[id] = rec.Addrs
	}
	return out
}

// distinctGlue gathers the glue the votes for value carried, each envelope
// once, at most maxGlueChecked.
func distinctGlue(votes []vote, value []byte) [][]byte {
	var out [][]byte
	for _, v := range votes {
		if !bytes.Equal(v.value, value) {
			continue
		}
		for _, g := range v.glue {
			if len(out) == maxGlueChecked {
				return out
			}
			if !slices.ContainsFunc(out, func(o []byte) bool { return bytes.Equal(o, g) }) {
				out = append(out, g)
			}
		}
	}
	return out
}

// dialGlued connects to id at the addresses its glue signed, within
// glueDialWait, and returns them if it could: the addresses are the host's
// own, and current. It dials through the network, not the host: the node's
// host would look the peer up in the DHT when the dial fails, the walk the
// glue is there to spare, which the caller starts itself if need be.
func (s *Service) dialGlued(ctx context.Context, id peer.ID, addrs []ma.Multiaddr) ([]string, bool) {
	ctx, cancel := context.WithTimeout(ctx, glueDialWait)
	defer cancel()
	s.host.Peerstore().AddAddrs(id, addrs, peerstore.TempAddrTTL)
	if _, err := s.host.Network().DialPeer(ctx, id); err != nil {
		return nil, false
	}
	return addrStrings(addrs), true
}
