package naming

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	record "github.com/libp2p/go-libp2p-record"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

const (
	// putWait bounds a put's walk, and each peer's answer, as kad-dht's.
	putWait = 30 * time.Second
	// holdersFresh is how long the peers that took a key's put are put to
	// first next time; holdersKept bounds the keys remembered.
	holdersFresh = 30 * time.Minute
	holdersKept  = 4096
	// spreadsAtOnce bounds the puts roles and tools ask for in flight,
	// those going on in the background after their caller had its answer
	// included: a role putting records with short deadlines cannot pile
	// them up.
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
// peers it named have answered; a walk that finds no peer is the call's
// error unless the remembered peers already stored the value. Either way the walk
// goes on to its end in the background, every peer it names gets the
// value, and the ones that stored it are remembered for the key's next
// put. A remembered peer no longer among the closest got a copy it did not
// need.
func (s *Service) putValue(ctx context.Context, key string, value []byte) error {
	return s.put(ctx, key, value, putHow{remember: true})
}

// putHow says how a put behaves beyond putValue's defaults.
type putHow struct {
	// waitAll answers only once every peer the walk named has answered, as
	// kad-dht's PutValue does: for the background jobs (re-puts,
	// republishes), which nobody waits on and whose next round counts on
	// this one having reached every holder.
	waitAll bool
	// remember keeps the peers that stored the value for the key's next
	// put: this node's own records, not the ones it re-puts for others,
	// which would push them out.
	remember bool
	// bounded takes one of spreadsAtOnce slots for the whole put, the
	// background part included: for puts that roles and tools ask for,
	// so that those cannot pile up, nor hold up the owner's own.
	bounded bool
	// glue rides beside the value: a zone's hosts' signed peer records
	// (glue.go).
	glue [][]byte
}

func (s *Service) put(ctx context.Context, key string, value []byte, how putHow) error {
	if s.values == nil {
		return s.dht.PutValue(ctx, key, value)
	}
	// Validated here for the validator's own error; the store's check
	// again costs little (a signature is checked once per node).
	if err := s.dht.Validator.Validate(key, value); err != nil {
		return err
	}
	rec := record.MakePutRecord(key, value)
	setGlue(rec, how.glue)
	if err := s.storeHere(ctx, rec); err != nil {
		return err
	}
	messenger, err := pb.NewProtocolMessenger(s.dht.MessageSender())
	if err != nil {
		return err
	}
	if how.bounded {
		select {
		case s.spreads <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if !s.startSpread() {
		if how.bounded {
			<-s.spreads
		}
		return fmt.Errorf("put %s: the name service is closed", key)
	}
	early, _ := s.holders.Get(key)
	sp := &spread{s: s, key: key, rec: rec, messenger: messenger, early: early, how: how,
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

// storeHere stores the record in this node's DHT store, as kad-dht's put
// does first: a value ranked below the one held is refused, the same value
// again (a re-put) is not.
func (s *Service) storeHere(ctx context.Context, rec *recpb.Record) error {
	key, value := string(rec.GetKey()), rec.GetValue()
	// Its own lock, not the DHT's: a peer's put of the same key racing this
	// one can leave the older of the two here, until the owner's next put.
	for try := 0; ; try++ {
		err := s.values.Put(ctx, key, rec)
		if !errors.Is(err, records.ErrOldRecord) {
			return err
		}
		held, gerr := s.values.Get(ctx, key)
		switch {
		case gerr != nil:
			return gerr
		case held != nil && bytes.Equal(held.GetValue(), value):
			return nil
		case held != nil || try > 0:
			return errOlderValue
		}
		// The record that ranked higher had expired; reading it dropped it.
	}
}

// startSpread counts a put's background work in, unless the service is
// closing: Close waits for what was counted.
func (s *Service) startSpread() bool {
	s.spreadMu.Lock()
	defer s.spreadMu.Unlock()
	if s.life.Err() != nil {
		return false
	}
	s.spreading.Add(1)
	return true
}

type putAnswer struct {
	id     peer.ID
	stored bool
}

// spread is one put's work after the local store: its puts, its walk, and
// when to tell the caller. It runs on the service's context, not the
// caller's: the puts and the walk the caller no longer waits for still
// reach their peers.
type spread struct {
	s         *Service
	key       string
	rec       *recpb.Record
	messenger *pb.ProtocolMessenger
	how       putHow
	early     []peer.ID // the peers that took the key's last put
	closest   []peer.ID // what the walk found, once it has ended
	walked    bool

	answers chan putAnswer
	sent    map[peer.ID]bool
	pending int              // puts sent and not answered
	stored  map[peer.ID]bool // the peers that answered: whether they stored the value
	done    chan error       // the caller's answer, sent once
	told    bool
}

func (sp *spread) run() {
	defer sp.s.spreading.Done()
	if sp.how.bounded {
		defer func() { <-sp.s.spreads }()
	}
	for _, id := range sp.early {
		sp.put(id)
	}
	type walkResult struct {
		closest []peer.ID
		err     error
	}
	walked := make(chan walkResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(sp.s.life, putWait)
		defer cancel()
		closest, err := sp.s.dht.GetClosestPeers(ctx, sp.key)
		walked <- walkResult{closest, err}
	}()
	for !sp.walked || sp.pending > 0 {
		select {
		case a := <-sp.answers:
			sp.pending--
			sp.stored[a.id] = a.stored
		case w := <-walked:
			// A walk cut short by its deadline still names the closest
			// peers it found, and those get the value; one that found
			// none leaves nobody to put to.
			sp.walked, sp.closest = true, w.closest
			if w.err != nil && len(w.closest) == 0 && !sp.earlyEnough() {
				sp.tell(fmt.Errorf("put %s: %w", sp.key, w.err))
			}
			for _, id := range w.closest {
				sp.put(id)
			}
		}
		if !sp.how.waitAll && (sp.earlyEnough() || sp.walkEnough()) {
			sp.tell(nil)
		}
	}
	var took []peer.ID
	for _, id := range sp.closest {
		if sp.stored[id] {
			took = append(took, id)
		}
	}
	if sp.how.remember && len(took) > 0 {
		sp.s.holders.Add(sp.key, took)
	}
	sentEarly := countIn(sp.early, took)
	sp.s.metrics.putPeers.WithLabelValues("early").Add(float64(sentEarly))
	sp.s.metrics.putPeers.WithLabelValues("walked").Add(float64(len(took) - sentEarly))
	sp.tell(nil)
}

// put sends the value to one peer, with a time of its own: a walk that
// took long leaves the puts after it their whole wait.
func (sp *spread) put(id peer.ID) {
	if sp.sent[id] || id == sp.s.host.ID() {
		return
	}
	sp.sent[id] = true
	sp.pending++
	go func() {
		ctx, cancel := context.WithTimeout(sp.s.life, putWait)
		defer cancel()
		sp.answers <- putAnswer{id: id, stored: sp.messenger.PutValue(ctx, id, sp.rec) == nil}
	}()
}

// earlyEnough reports whether all but a tenth of the remembered peers
// stored the value.
func (sp *spread) earlyEnough() bool {
	stored := 0
	for _, id := range sp.early {
		if sp.stored[id] {
			stored++
		}
	}
	return len(sp.early) > 0 && stored >= atLeast(len(sp.early))
}

// walkEnough reports whether the walk found peers and all but a tenth of
// them answered (stored the value or failed, as kad-dht's put waits for).
func (sp *spread) walkEnough() bool {
	answered := 0
	for _, id := range sp.closest {
		if _, ok := sp.stored[id]; ok {
			answered++
		}
	}
	return len(sp.closest) > 0 && answered >= atLeast(len(sp.closest))
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
