package naming

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	record "github.com/libp2p/go-libp2p-record"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

const (
	// putWait bounds a put's walk and its peers' answers (kad-dht gives
	// each peer as long).
	putWait = 30 * time.Second
	// holdersFresh is how long the peers that took a key's put are put to
	// first next time; holdersKept bounds the keys remembered.
	holdersFresh = 30 * time.Minute
	holdersKept  = 4096
	// spreadsAtOnce bounds the puts in flight, those going on in the
	// background after their caller had its answer included: a role or
	// script putting records with short deadlines cannot pile them up.
	spreadsAtOnce = 64
)

// errOlderValue is kad-dht's answer to a put of a value its store ranks
// below the one it holds.
var errOlderValue = errors.New("can't replace a newer value with an older value")

// putValue stores a record here and on its key's closest peers, as
// kad-dht's PutValue does, but without making every put wait on a walk of
// the DHT. The peers that took this node's last put of the key (in the
// last holdersFresh) get the value at once, while the walk that finds the
// key's closest peers runs; a name's holders change slowly, so an owner's
// next change usually reaches all of them in one round trip. The call
// returns as soon as all but a tenth of those peers (18 of 20) have stored
// it, or, failing that, once the walk has ended and all but a tenth of the
// peers it named have answered. Either way the walk goes on to its end in
// the background, every peer it names gets the value, and the ones that
// stored it are remembered for the key's next put. A remembered peer no
// longer among the closest got a copy it did not need.
func (s *Service) putValue(ctx context.Context, key string, value []byte) error {
	return s.put(ctx, key, value, false)
}

// putValueAll is putValue answering only once every peer the walk named has
// answered, as kad-dht's PutValue does: for the background jobs (re-puts,
// republishes), which nobody waits on and whose next round counts on this
// one having reached every holder.
func (s *Service) putValueAll(ctx context.Context, key string, value []byte) error {
	return s.put(ctx, key, value, true)
}

func (s *Service) put(ctx context.Context, key string, value []byte, waitAll bool) error {
	if s.values == nil {
		return s.dht.PutValue(ctx, key, value)
	}
	if err := s.dht.Validator.Validate(key, value); err != nil {
		return err
	}
	rec := record.MakePutRecord(key, value)
	// Its own lock, not the DHT's: a peer's put of the same key racing this
	// one can leave the older of the two here, until the owner's next put.
	if err := s.values.Put(ctx, key, rec); errors.Is(err, records.ErrOldRecord) {
		// The same value again (a re-put) ranks no higher than itself.
		if held, _ := s.values.Get(ctx, key); !bytes.Equal(held.GetValue(), value) {
			return errOlderValue
		}
	} else if err != nil {
		return err
	}
	messenger, err := pb.NewProtocolMessenger(s.dht.MessageSender())
	if err != nil {
		return err
	}
	select {
	case s.spreads <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	early, _ := s.holders.Get(key)
	// The service's context, not the caller's: the puts and the walk the
	// caller no longer waits for still reach their peers.
	sp := &spread{s: s, key: key, rec: rec, messenger: messenger, early: early, waitAll: waitAll,
		answers: make(chan putAnswer, len(early)+s.dht.BucketSize()), sent: map[peer.ID]bool{},
		stored: map[peer.ID]bool{}, done: make(chan error, 1)}
	go sp.run()
	select {
	case err := <-sp.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

type putAnswer struct {
	id     peer.ID
	stored bool
}

// spread is one putValue's work after the local store: its puts, its walk,
// and when to tell the caller.
type spread struct {
	s         *Service
	key       string
	rec       *recpb.Record
	messenger *pb.ProtocolMessenger
	early     []peer.ID // the peers that took the key's last put
	waitAll   bool      // answer the caller only at the end
	closest   []peer.ID // what the walk found, once it has ended
	walked    bool

	answers chan putAnswer
	sent    map[peer.ID]bool
	pending int              // puts sent and not answered
	stored  map[peer.ID]bool // the peers that stored the value
	done    chan error       // the caller's answer, sent once
	told    bool
}

func (sp *spread) run() {
	defer func() { <-sp.s.spreads }()
	ctx, cancel := context.WithTimeout(sp.s.life, putWait)
	defer cancel()
	for _, id := range sp.early {
		sp.put(ctx, id)
	}
	type walkResult struct {
		closest []peer.ID
		err     error
	}
	walked := make(chan walkResult, 1)
	go func() {
		closest, err := sp.s.dht.GetClosestPeers(ctx, sp.key)
		walked <- walkResult{closest, err}
	}()
	for !sp.walked || sp.pending > 0 {
		select {
		case a := <-sp.answers:
			sp.pending--
			sp.stored[a.id] = a.stored
		case w := <-walked:
			sp.walked = true
			if w.err != nil && !sp.enough() {
				sp.tell(w.err)
			}
			sp.closest = w.closest
			for _, id := range w.closest {
				sp.put(ctx, id)
			}
		}
		if !sp.waitAll && sp.enough() {
			sp.tell(nil)
		}
	}
	var took []peer.ID
	for _, id := range sp.closest {
		if sp.stored[id] {
			took = append(took, id)
		}
	}
	if len(took) > 0 {
		sp.s.holders.Add(sp.key, took)
	}
	sentEarly := countIn(sp.early, took)
	sp.s.metrics.putPeers.WithLabelValues("early").Add(float64(sentEarly))
	sp.s.metrics.putPeers.WithLabelValues("walked").Add(float64(len(took) - sentEarly))
	sp.tell(nil)
}

func (sp *spread) put(ctx context.Context, id peer.ID) {
	if sp.sent[id] || id == sp.s.host.ID() {
		return
	}
	sp.sent[id] = true
	sp.pending++
	go func() {
		sp.answers <- putAnswer{id: id, stored: sp.messenger.PutValue(ctx, id, sp.rec) == nil}
	}()
}

// enough reports whether the caller can have its answer: all but a tenth
// of the early peers stored the value, or the walk has ended and all but a
// tenth of the peers it named answered (stored it or failed, as kad-dht's
// put waits for).
func (sp *spread) enough() bool {
	stored, answered := 0, 0
	for _, id := range sp.early {
		if sp.stored[id] {
			stored++
		}
	}
	for _, id := range sp.closest {
		if _, ok := sp.stored[id]; ok {
			answered++
		}
	}
	return len(sp.early) > 0 && stored >= atLeast(len(sp.early)) ||
		sp.walked && answered >= atLeast(len(sp.closest))
}

// atLeast is all but a tenth of n: 18 of 20.
func atLeast(n int) int { return n - n/10 }

func (sp *spread) tell(err error) {
	if !sp.told {
		sp.told = true
		sp.done <- err
	}
}

// countIn counts the peers of some that are in all.
func countIn(some, all []peer.ID) int {
	n := 0
	for _, id := range some {
		if slices.Contains(all, id) {
			n++
		}
	}
	return n
}
