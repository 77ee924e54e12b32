package naming

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"time"

	recpb "github.com/libp2p/go-libp2p-record/pb"
	cryptopb "github.com/libp2p/go-libp2p/core/crypto/pb"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
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
// holder running avnode keeps only a zone's checked glue, the newest of
// each host, merged with what it held (ShapeStored); a resolver checks the
// glue the agreeing holders sent (checkGlue) and dials the hosts there
// before it walks the DHT's peer routing for them (peerAddrs): a record
// replayed from before a host moved costs at most glueHeadStart, and
// addresses only the glue gave are never listed unless they worked.

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
	// glueDialWait bounds the dial to a host at its glued addresses.
	glueDialWait = hostWait / 2
	// glueHeadStart is how long that dial goes alone before the DHT
	// lookup starts beside it: about a round trip across the world, so
	// that a dial that works usually spares the walk, and one to an
	// address that swallows packets costs no more than this.
	glueHeadStart = 250 * time.Millisecond
	// peerRecordsKept bounds the peers whose signed records this node
	// keeps; peerRecordsFresh is how long one is kept: longer than a
	// republish, since identify brings a new one only when a connection
	// opens or the peer's addresses change, and a record kept is only
	// ever a first dial.
	peerRecordsKept  = 1024
	peerRecordsFresh = 24 * time.Hour
	// glueClockSkew is how far ahead of this node's clock a record's
	// sequence (a timestamp) may be.
	glueClockSkew = 10 * time.Minute
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
				// From the peer itself, over a live connection: current,
				// whatever sequence a record kept before carried.
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

// keepPeerRecord keeps env, a checked signed record of id that a dial has
// just reached id at, unless the one kept is newer.
func (s *Service) keepPeerRecord(id peer.ID, env *record.Envelope) {
	if held, ok := s.peerRecords.Get(id); ok && recordSeq(held) > recordSeq(env) {
		return
	}
	s.peerRecords.Add(id, env)
}

func recordSeq(env *record.Envelope) uint64 {
	if r, err := env.Record(); err == nil {
		if rec, ok := r.(*peer.PeerRecord); ok {
			return rec.Seq
		}
	}
	return 0
}

// keptRecord is id's signed record this node kept, from identify or an
// earlier resolve's glue that worked: glue for a resolve that brought none
// (a name whose owner this node knew is a plain DHT get). Nil if none.
func (s *Service) keptRecord(id peer.ID) *hostRecord {
	env, ok := s.peerRecords.Get(id)
	if !ok {
		return nil
	}
	if r, err := env.Record(); err == nil {
		if rec, ok := r.(*peer.PeerRecord); ok && rec.PeerID == id && len(rec.Addrs) > 0 {
			return &hostRecord{env: env, rec: rec}
		}
	}
	return nil
}

// glueOffer is one distinct envelope a poll's holders sent, and how many
// of them sent it.
type glueOffer struct {
	raw     []byte
	support int
}

// offersOf counts the distinct envelopes in the lists given, each list
// one holder's.
func offersOf(lists ...[][]byte) []glueOffer {
	var out []glueOffer
	for _, list := range lists {
		for _, raw := range list {
			i := slices.IndexFunc(out, func(o glueOffer) bool { return bytes.Equal(o.raw, raw) })
			if i < 0 {
				out = append(out, glueOffer{raw: raw})
				i = len(out) - 1
			}
			out[i].support++
		}
	}
	return out
}

// hostRecord is a host's record from glue, checked, with its envelope.
type hostRecord struct {
	raw []byte
	env *record.Envelope
	rec *peer.PeerRecord
}

// checkGlue picks, from the offers, the newest record of each of hosts
// whose signature holds. An envelope is first read without checking it
// and dropped unless it is a peer record about one of hosts carrying that
// host's own key (a peer ID names its key: no one can make a host's
// record cost more to check than the host's own key type does). The rest
// are checked those most sent first, then newest, at most maxGlueChecked
// signatures in all: envelopes of a few holders' making do not crowd out
// what the others sent.
func checkGlue(offers []glueOffer, hosts []peer.ID) map[peer.ID]hostRecord {
	type candidate struct {
		glueOffer
		env *record.Envelope
		rec *peer.PeerRecord
	}
	var cands []candidate
	for _, o := range offers {
		if env, rec := readPeerRecord(o.raw, hosts); rec != nil {
			cands = append(cands, candidate{o, env, rec})
		}
	}
	slices.SortStableFunc(cands, func(a, b candidate) int {
		switch {
		case a.support != b.support:
			return b.support - a.support
		case a.rec.Seq > b.rec.Seq:
			return -1
		case a.rec.Seq < b.rec.Seq:
			return 1
		}
		return 0
	})
	best := map[peer.ID]hostRecord{}
	checked := 0
	for _, c := range cands {
		if had, ok := best[c.rec.PeerID]; ok && had.rec.Seq >= c.rec.Seq {
			continue // no newer: not worth a check
		}
		if checked == maxGlueChecked {
			break
		}
		checked++
		if _, err := record.ConsumeTypedEnvelope(c.raw, &peer.PeerRecord{}); err != nil {
			continue
		}
		best[c.rec.PeerID] = hostRecord{raw: c.raw, env: c.env, rec: c.rec}
	}
	return best
}

// readPeerRecord reads a peer record from an envelope without checking its
// signature: nil unless it is about one of hosts, with addresses, carries
// that host's own key, an Ed25519 one (a check costs about 50 µs; an RSA
// key chosen to be slow costs 40 times that, so hosts with other key types
// get no glue), and is not dated ahead of this node's clock by more than
// glueClockSkew (peer records' sequences are timestamps: one from the
// future would outrank every record its host signs until then).
func readPeerRecord(raw []byte, hosts []peer.ID) (*record.Envelope, *peer.PeerRecord) {
	env, err := record.UnmarshalEnvelope(raw)
	if err != nil || env.PublicKey.Type() != cryptopb.KeyType_Ed25519 ||
		!bytes.Equal(env.PayloadType, peer.PeerRecordEnvelopePayloadType) {
		return nil, nil
	}
	var rec peer.PeerRecord
	if env.TypedRecord(&rec) != nil || len(rec.Addrs) == 0 || !slices.Contains(hosts, rec.PeerID) {
		return nil, nil
	}
	if rec.Seq > uint64(time.Now().Add(glueClockSkew).UnixNano()) {
		return nil, nil
	}
	if id, err := peer.IDFromPublicKey(env.PublicKey); err != nil || id != rec.PeerID {
		return nil, nil
	}
	return env, &rec
}

// gluedAddrs is the addresses of each host checkGlue kept.
func gluedAddrs(checked map[peer.ID]hostRecord) map[peer.ID][]ma.Multiaddr {
	out := make(map[peer.ID][]ma.Multiaddr, len(checked))
	for id, h := range checked {
		out[id] = h.rec.Addrs
	}
	return out
}

// distinctGlue gathers the glue the votes for value carried.
func distinctGlue(votes []vote, value []byte) []glueOffer {
	var lists [][][]byte
	for _, v := range votes {
		if bytes.Equal(v.value, value) {
			lists = append(lists, v.glue)
		}
	}
	return offersOf(lists...)
}

// ShapeStored is what this node keeps beside a record as it is written
// to its DHT store (node.RecordShaper): for a zone, the newest checked
// record of each host it names (up to maxGlue), from the glue the record
// came with and, when the zone is the one held already, from the glue
// held, so that nobody's re-put of the same zone strips or rolls back the
// owner's; nothing beside any other record. The glue held is checked again
// (it may have been stored by an older version, unchecked): 16 checks at
// most. A zone that does not decode keeps nothing (the validators refuse
// it).
func (s *Service) ShapeStored(ctx context.Context, rec, held *recpb.Record) {
	offered := glueOf(rec)
	setGlue(rec, nil)
	if !strings.HasPrefix(string(rec.GetKey()), "/"+names.ZoneNamespace+"/") || len(offered) == 0 && held == nil {
		return
	}
	z, err := s.owners.zoneV.Decode(rec.GetValue())
	if err != nil {
		return
	}
	lists := [][][]byte{offered}
	if held != nil && bytes.Equal(held.GetValue(), rec.GetValue()) {
		lists = append(lists, glueOf(held))
	}
	offers := offersOf(lists...)
	hosts := hostIDs(z.Records)
	hosts = hosts[:min(len(hosts), maxGlue)]
	checked := checkGlue(offers, hosts)
	var keep [][]byte
	for _, id := range hosts {
		if h, ok := checked[id]; ok {
			keep = append(keep, h.raw)
		}
	}
	setGlue(rec, keep)
}

// provenAddrs is addrs without those a glue dial to id is trying and has
// not reached the peer at: a lookup that ends while the dial is still out
// must not list addresses only the glue gave.
func (s *Service) provenAddrs(id peer.ID, addrs []ma.Multiaddr) []string {
	s.gluingMu.Lock()
	trying := s.gluing[id]
	s.gluingMu.Unlock()
	if len(trying) == 0 {
		return addrStrings(addrs)
	}
	var reached []ma.Multiaddr
	for _, c := range s.host.Network().ConnsToPeer(id) {
		reached = append(reached, c.RemoteMultiaddr())
	}
	kept := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		if !slices.ContainsFunc(trying, a.Equal) || slices.ContainsFunc(reached, a.Equal) {
			kept = append(kept, a)
		}
	}
	return addrStrings(kept)
}

// dialGlued connects to id at the addresses its glue signed, within
// glueDialWait, and returns the addresses of the connection made (nil when
// none was): those are current, whichever of the peer's addresses this node
// knew the dial went through. It dials through the network, not the host:
// the node's host would walk the DHT for the peer when the dial fails, the
// walk the glue is there to spare, which peerAddrs starts itself. Glued
// addresses the connection did not go through are forgotten again.
func (s *Service) dialGlued(ctx context.Context, id peer.ID, addrs []ma.Multiaddr) []string {
	ctx, cancel := context.WithTimeout(ctx, glueDialWait)
	defer cancel()
	book := s.host.Peerstore()
	known := book.Addrs(id)
	var added []ma.Multiaddr
	for _, a := range addrs {
		if !slices.ContainsFunc(known, a.Equal) {
			added = append(added, a)
		}
	}
	s.gluingMu.Lock()
	s.gluing[id] = added
	s.gluingMu.Unlock()
	defer func() {
		s.gluingMu.Lock()
		delete(s.gluing, id)
		s.gluingMu.Unlock()
	}()
	book.AddAddrs(id, added, peerstore.TempAddrTTL)
	if _, err := s.host.Network().DialPeer(ctx, id); err != nil {
		book.SetAddrs(id, added, 0)
		return nil
	}
	// Only this node's own dials went to an address of the peer's: an
	// inbound connection's remote address is the peer's source port.
	var reached []ma.Multiaddr
	for _, c := range s.host.Network().ConnsToPeer(id) {
		if c.Stat().Direction == network.DirOutbound {
			reached = append(reached, c.RemoteMultiaddr())
		}
	}
	var unused []ma.Multiaddr
	for _, a := range added {
		if !slices.ContainsFunc(reached, a.Equal) {
			unused = append(unused, a)
		}
	}
	book.SetAddrs(id, unused, 0)
	if len(reached) == 0 {
		return nil // connected the other way: the lookup lists what is known
	}
	return addrStrings(reached)
}

// reachedGlue reports whether one of addrs, reached by a glue dial, is
// one the glue signed: only then is the record worth keeping.
func reachedGlue(reached []string, glued []ma.Multiaddr) bool {
	for _, a := range glued {
		if slices.Contains(reached, a.String()) {
			return true
		}
	}
	return false
}
