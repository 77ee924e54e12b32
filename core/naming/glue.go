package naming

import (
	"context"
	"slices"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/avnode/avnode/core/names"
)

// glueTTL is how long a host's addresses learned from a zone's glue stay
// in the peerstore, for the dial that usually follows a resolve.
var glueTTL = peerstore.TempAddrTTL

// withGlue returns the signed zone with the signed peer records this node
// holds for the zone's hosts (its own, and those identify brought from
// hosts it is connected to) as glue; the zone alone if it has none or they
// do not fit. The owner's node puts it so, at each change and republish.
func (s *Service) withGlue(z *names.Zone, signed []byte) []byte {
	book, ok := peerstore.GetCertifiedAddrBook(s.host.Peerstore())
	if !ok {
		return signed
	}
	var glue [][]byte
	for _, id := range hostIDs(z.Records) {
		env := book.GetPeerRecord(id)
		if env == nil || len(glue) == names.MaxGlue {
			continue
		}
		if b, err := env.Marshal(); err == nil {
			glue = append(glue, b)
		}
	}
	if len(glue) == 0 {
		return signed
	}
	glued, err := names.WithGlue(signed, glue)
	if err != nil {
		s.log.Info("zone put without glue", "name", z.Name, "err", err)
		return signed
	}
	return glued
}

// learnGlue takes the host addresses a checked zone carries: into the
// peerstore (which keeps the newest record per peer) and into the resolve
// address cache where the glue is that newest record, so that the resolve
// needs no lookup of the host.
func (s *Service) learnGlue(z *names.Zone) {
	book, ok := peerstore.GetCertifiedAddrBook(s.host.Peerstore())
	if !ok {
		return
	}
	for _, g := range z.Glue {
		if g.PeerID == s.host.ID() {
			continue
		}
		if _, err := book.ConsumePeerRecord(g.Envelope, glueTTL); err != nil {
			continue
		}
		if !holdsRecord(book, g) {
			continue // the peerstore has a newer record than this glue
		}
		addrs := make([]string, 0, len(g.Addrs))
		for _, a := range g.Addrs {
			addrs = append(addrs, a.String())
		}
		sort.Strings(addrs)
		s.mu.Lock()
		s.addrCache[g.PeerID] = cachedAddrs{addrs: slices.Compact(addrs), fetched: time.Now()}
		s.mu.Unlock()
	}
}

// holdsRecord reports whether the peerstore's record for the glue's peer is
// the glue's own (and not a newer one).
func holdsRecord(book peerstore.CertifiedAddrBook, g names.Glue) bool {
	env := book.GetPeerRecord(g.PeerID)
	if env == nil {
		return false
	}
	rec, err := env.Record()
	if err != nil {
		return false
	}
	pr, ok := rec.(*peer.PeerRecord)
	return ok && pr.Seq == g.Seq
}

// keepPeerRecords stores the signed peer record each peer sends at identify
// (go-libp2p's identify keeps only the addresses), so that this node can
// carry a host's own record as glue when it publishes a zone naming it. The
// peerstore drops a record with the peer's last addresses.
func (s *Service) keepPeerRecords(ctx context.Context) error {
	book, ok := peerstore.GetCertifiedAddrBook(s.host.Peerstore())
	if !ok {
		return nil
	}
	sub, err := s.host.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		return err
	}
	s.wg.Go(func() {
		defer sub.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				if env := e.(event.EvtPeerIdentificationCompleted).SignedPeerRecord; env != nil {
					book.ConsumePeerRecord(env, peerstore.RecentlyConnectedAddrTTL)
				}
			}
		}
	})
	return nil
}
