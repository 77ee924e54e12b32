package naming

import (
	"context"
	"errors"
	"time"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"google.golang.org/protobuf/proto"

	"github.com/avnode/avnode/core/names"
)

// republishOwned re-signs each owned zone with a fresh expiry (and the next
// sequence) and re-puts its claim, so the owner's names never expire.
func (s *Service) republishOwned(ctx context.Context) {
	results, err := s.store.Query(ctx, dsq.Query{Prefix: ownedPrefix.String(), KeysOnly: true})
	if err != nil {
		s.log.Warn("republish: list owned names", "err", err)
		return
	}
	entries, _ := results.Rest()
	for _, e := range entries {
		n, err := names.Parse(ds.RawKey(e.Key).BaseNamespace())
		if err != nil {
			continue
		}
		err = s.republishName(ctx, n)
		s.metrics.republished(err)
		if err != nil {
			s.notePublished(n, err)
		}
		if errors.Is(err, names.ErrRotated) {
			// The name moved to a key this node does not hold (rotated
			// or recovered elsewhere): its new owner republishes it.
			s.log.Info("not republished: the name's key is not in this keystore", "name", n, "err", err)
			continue
		}
		if err != nil {
			s.log.Warn("republish failed", "name", n, "err", err)
		}
	}
}

func (s *Service) republishName(ctx context.Context, n names.Name) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if c, _ := s.owners.Known(ctx, n); c != nil {
		data, err := c.Marshal()
		if err != nil {
			return err
		}
		if err := s.put(ctx, names.ClaimKey(n), data, putHow{waitAll: true, remember: true}); err != nil {
			return err
		}
	}
	_, err := s.updateZone(ctx, n, func(*names.Zone) error { return nil })
	return err
}

// reputHeld re-puts the name records this node holds for others to the
// current closest peers: when holders leave, the records reach their
// replacements before the owner's next republish.
func (s *Service) reputHeld(ctx context.Context) {
	for _, ns := range []string{names.ClaimNamespace, names.ZoneNamespace, names.EstateNamespace} {
		results, err := s.raw.Query(ctx, dsq.Query{Prefix: "/dht/" + ns})
		if err != nil {
			s.log.Warn("re-put: list held records", "err", err)
			return
		}
		entries, _ := results.Rest()
		for _, e := range entries {
			var rec recpb.Record
			if proto.Unmarshal(e.Value, &rec) != nil {
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, time.Minute)
			err := s.put(pctx, string(rec.GetKey()), rec.GetValue(), putHow{waitAll: true, glue: glueOf(&rec)})
			cancel()
			s.metrics.reput(err)
		}
	}
}

// OwnedName is a name this node owns, and how keeping it alive goes.
type OwnedName struct {
	Name string
	Key  string // the keystore's name for the key that claimed it
	Seq  uint64 // of the zone last signed here (0: none yet)
	// Expires is that zone's expiry: the network forgets the zone unless
	// it is republished before.
	Expires time.Time
	// Published is when a zone of the name last reached the network from
	// this node (a publish, a record change or a republish) since it
	// started; zero when none has.
	Published time.Time
	// Failed and Err are the last failed attempt since start, when the
	// latest attempt failed.
	Failed time.Time
	Err    string
	// Health sums it up: ok, failing, expired, or pending (nothing sent
	// since the node started; the republish loop will).
	Health string
}

// publishResult is the last attempt to put a name's zone on the network.
type publishResult struct {
	at       time.Time // the last success
	failedAt time.Time // the last failure, with err
	err      error
}

// notePublished records how putting n's zone on the network went, for
// OwnedNames.
func (s *Service) notePublished(n names.Name, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.published == nil {
		s.published = map[string]publishResult{}
	}
	key := n.Registered().String()
	last := s.published[key]
	if err == nil {
		last.at, last.err = time.Now(), nil
		s.published[key] = last
		return
	}
	last.err = err
	last.failedAt = time.Now()
	s.published[key] = last
}

// OwnedNames lists the names this node owns, with the zone it last signed
// for each and how republishing it goes.
func (s *Service) OwnedNames(ctx context.Context) ([]OwnedName, error) {
	results, err := s.store.Query(ctx, dsq.Query{Prefix: ownedPrefix.String()})
	if err != nil {
		return nil, err
	}
	entries, err := results.Rest()
	if err != nil {
		return nil, err
	}
	out := make([]OwnedName, 0, len(entries))
	for _, e := range entries {
		n, err := names.Parse(ds.RawKey(e.Key).BaseNamespace())
		if err != nil {
			continue
		}
		o := OwnedName{Name: n.String(), Key: string(e.Value)}
		if data, ok, _ := s.get(ctx, nameKey(zonePrefix, n)); ok {
			if z, err := s.owners.zoneV.Decode(data); err == nil {
				o.Seq, o.Expires = z.Seq, z.Expiry
			}
		}
		s.mu.Lock()
		last := s.published[n.String()]
		s.mu.Unlock()
		o.Published, o.Failed = last.at, last.failedAt
		if last.err != nil {
			o.Err = last.err.Error()
		}
		o.Health = healthOf(o, time.Now())
		out = append(out, o)
	}
	return out, nil
}

func healthOf(o OwnedName, now time.Time) string {
	switch {
	case o.Err != "" && o.Failed.After(o.Published):
		return "failing"
	case !o.Expires.IsZero() && now.After(o.Expires):
		return "expired"
	case o.Published.IsZero():
		return "pending"
	}
	return "ok"
}
