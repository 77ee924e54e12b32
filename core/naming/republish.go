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
		if err := s.dht.PutValue(ctx, names.ClaimKey(n), data); err != nil {
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
			err := s.dht.PutValue(pctx, string(rec.GetKey()), rec.GetValue())
			cancel()
			s.metrics.reput(err)
		}
	}
}
