package naming

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"

	"github.com/avnode/avnode/core/names"
)

// EstateInfo is one estate a resolve went through: the machines its record
// names now. Error says why it gave no hosts.
type EstateInfo struct {
	ID       string    `json:"id"`
	Seq      uint64    `json:"seq,omitempty"`
	Hosts    []string  `json:"hosts"`
	Provider string    `json:"provider,omitempty"`
	Expires  time.Time `json:"expires,omitzero"`
	Error    string    `json:"error,omitempty"`
}

// maxCachedEstates is where the estate cache starts dropping stale entries.
const maxCachedEstates = 4096

type cachedEstate struct {
	estate  *names.Estate
	fetched time.Time
}

// estateIDs are the distinct estates the HOST records among rs name, in order.
func estateIDs(rs []names.Record) []string {
	var ids []string
	for _, r := range rs {
		if id, ok := names.EstateOfHost(r.Value); ok && r.Type == names.TypeHOST && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// resolveEstates looks the estates up in parallel (each from the cache
// while its record's TTL lasts) and returns them with the distinct
// machines they name, in order.
func (s *Service) resolveEstates(ctx context.Context, ids []string) ([]EstateInfo, []peer.ID) {
	if len(ids) > MaxHostLookups {
		ids = ids[:MaxHostLookups]
	}
	infos := make([]EstateInfo, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			infos[i] = EstateInfo{ID: id, Hosts: []string{}}
			e, err := s.Estate(ctx, id)
			if err != nil {
				infos[i].Error = err.Error()
				return
			}
			infos[i].Seq, infos[i].Provider, infos[i].Expires = e.Seq, e.Provider, e.Expiry
			for _, h := range e.Hosts {
				infos[i].Hosts = append(infos[i].Hosts, h.String())
			}
		})
	}
	wg.Wait()
	var hosts []peer.ID
	for _, info := range infos {
		for _, h := range info.Hosts {
			if id, err := peer.Decode(h); err == nil && !slices.Contains(hosts, id) {
				hosts = append(hosts, id)
			}
		}
	}
	return infos, hosts
}

// Estate returns an estate's current record: from the cache while its TTL
// lasts, else from the DHT, refusing a sequence lower than one seen before.
func (s *Service) Estate(ctx context.Context, id string) (*names.Estate, error) {
	id, _, err := names.ParseEstateID(id)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	c, ok := s.estateCache[id]
	s.mu.Unlock()
	if ok && time.Since(c.fetched) < c.estate.TTL && time.Now().Before(c.estate.Expiry) {
		s.metrics.cacheHits.Inc()
		return c.estate, nil
	}
	data, err := s.dht.GetValue(ctx, names.EstateKey(id), dhtQuorum(s.cfg.Names.ResolveQuorum))
	if err != nil {
		if errors.Is(err, routing.ErrNotFound) || errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("estate %s: %w", id, ErrNotFound)
		}
		return nil, fmt.Errorf("estate %s: %w", id, err)
	}
	e, err := names.EstateValidator{}.DecodeValid(names.EstateKey(id), data)
	if err != nil {
		return nil, err
	}
	seen, _ := s.estateHighWater(ctx, id)
	if ok {
		seen = max(seen, c.estate.Seq)
	}
	if e.Seq < seen {
		return nil, fmt.Errorf("estate %s: seq %d is lower than seq %d seen before; a peer served an old copy: %w", id, e.Seq, seen, names.ErrRolledBack)
	}
	if e.Seq > seen {
		s.setEstateHighWater(ctx, id, e.Seq)
	}
	s.cacheEstate(e)
	return e, nil
}

// estateSeqPrefix keeps, on disk, the highest sequence seen per estate: a
// restarted node refuses older records too.
var estateSeqPrefix = ds.NewKey("/estateseq")

func (s *Service) estateHighWater(ctx context.Context, id string) (uint64, error) {
	b, ok, err := s.get(ctx, estateSeqPrefix.ChildString(id))
	if err != nil || !ok || len(b) != 8 {
		return 0, err
	}
	return binary.BigEndian.Uint64(b), nil
}

func (s *Service) setEstateHighWater(ctx context.Context, id string, seq uint64) {
	if err := s.store.Put(ctx, estateSeqPrefix.ChildString(id), binary.BigEndian.AppendUint64(nil, seq)); err != nil {
		s.log.Warn("keep an estate's high-water mark", "estate", id, "err", err)
	}
}

func (s *Service) cacheEstate(e *names.Estate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.estateCache[e.ID()]; ok && old.estate.Seq > e.Seq {
		return
	}
	if len(s.estateCache) >= maxCachedEstates { // drop the stale; their floors are on disk
		for id, c := range s.estateCache {
			if time.Since(c.fetched) > c.estate.TTL {
				delete(s.estateCache, id)
			}
		}
	}
	s.estateCache[e.ID()] = cachedEstate{estate: e, fetched: time.Now()}
}
