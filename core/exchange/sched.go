package exchange

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/avnode/avnode/core/content"
)

// hedgeAfter is how long a block may be outstanding at one source before an
// idle source is also asked for it: a source that died without closing its
// connection must not hold the fetch back until its timeout.
const hedgeAfter = time.Second

// sched is the shared state of one fetch: wanted blocks, which source has
// which block in flight, who lacks what, which sources are still usable.
type sched struct {
	bs       *content.Blockstore
	window   int
	progress func(Stats)
	shallow  bool // fetch the blocks asked for, not their links
	root     cid.Cid
	// maxBytes bounds the root's declared size and the bytes fetched (-1: none).
	maxBytes int64

	mu        sync.Mutex
	cond      *sync.Cond
	queue     []cid.Cid                         // wanted, asked of no source
	seen      map[cid.Cid]bool                  // in the DAG, wanted or here
	done      map[cid.Cid]bool                  // fetched in this run
	declared  map[cid.Cid]int64                 // the size a parent declares for a block
	admitted  int64                             // bytes of blocks checked and on their way to the store
	asked     map[cid.Cid]map[peer.ID]time.Time // in flight: at which sources, since when
	perSource map[peer.ID]int                   // requests in flight per source
	lacking   map[cid.Cid]map[peer.ID]bool      // sources that said they do not have it
	live      map[peer.ID]bool                  // sources still in use
	spares    []peer.ID                         // sources not yet used, in order
	launch    func(peer.ID)                     // starts fetching from a source
	err       error
	stopped   bool
	stats     Stats
	writes    chan verifiedBlock // to the store writers
}

// verifiedBlock is a block that matched its CID, on its way to the store.
type verifiedBlock struct {
	c    cid.Cid
	data []byte
	from peer.ID
	buf  *[]byte // data's memory, for blockBuffers once the block is stored
}

// storeLoop writes verified blocks until the fetch is over. A failed write
// (a full disk) ends the fetch with that error; the block stays wanted.
func (s *sched) storeLoop() {
	for b := range s.writes {
		err := s.complete(b.c, b.data, b.from)
		blockBuffers.Put(b.buf) // complete keeps nothing of data: the links it returned are copies
		if err != nil {
			s.abort(err)
			s.mu.Lock()
			s.giveBack(b.c, b.from)
			s.mu.Unlock()
		}
	}
}

func newSched(bs *content.Blockstore, window int, progress func(Stats)) *sched {
	s := &sched{
		bs: bs, window: window, progress: progress,
		maxBytes: -1, declared: map[cid.Cid]int64{},
		seen: map[cid.Cid]bool{}, done: map[cid.Cid]bool{}, asked: map[cid.Cid]map[peer.ID]time.Time{},
		perSource: map[peer.ID]int{}, lacking: map[cid.Cid]map[peer.ID]bool{}, live: map[peer.ID]bool{},
		stats: Stats{Sources: map[string]int{}},
	}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// add wants c; blocks already here are walked locally instead of fetched.
func (s *sched) add(c cid.Cid) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addLocked(c)
}

func (s *sched) addLocked(root cid.Cid) error {
	stack := []cid.Cid{root}
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if s.seen[c] {
			continue
		}
		s.seen[c] = true
		s.stats.Blocks++
		data, err := s.bs.Get(c)
		if errors.Is(err, content.ErrNotFound) {
			s.queue = append(s.queue, c)
			continue
		}
		if err != nil {
			return fmt.Errorf("read local block %s: %w", c, err)
		}
		s.stats.Present++
		size, links, err := content.Sizes(c, data)
		if err != nil {
			return fmt.Errorf("local block %s: %w", c, err)
		}
		if err := s.checkSizes(c, size, links); err != nil {
			return err
		}
		if s.shallow {
			continue
		}
		for _, l := range links {
			stack = append(stack, l.CID)
		}
	}
	s.cond.Broadcast()
	return nil
}

// take hands source p its next block: a queued one it has not said it
// lacks, within its fair share; or, when p is idle, a block that has been
// outstanding elsewhere for too long.
func (s *sched) take(p peer.ID) (cid.Cid, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.stopped || s.err != nil || !s.live[p] || s.finishedLocked() {
			return cid.Undef, false
		}
		if s.perSource[p] < s.fairShare() {
			for i, c := range s.queue {
				if !s.lacking[c][p] {
					s.queue = append(s.queue[:i], s.queue[i+1:]...)
					s.markAsked(c, p)
					return c, true
				}
			}
		}
		if s.perSource[p] == 0 {
			if c, ok := s.overdue(p); ok {
				s.markAsked(c, p)
				return c, true
			}
		}
		s.cond.Wait()
	}
}

func (s *sched) markAsked(c cid.Cid, p peer.ID) {
	if s.asked[c] == nil {
		s.asked[c] = map[peer.ID]time.Time{}
	}
	s.asked[c][p] = time.Now()
	s.perSource[p]++
}

// overdue finds the block outstanding the longest, past hedgeAfter, that p
// may also be asked for.
func (s *sched) overdue(p peer.ID) (cid.Cid, bool) {
	var best cid.Cid
	var bestSince time.Time
	for c, at := range s.asked {
		if s.done[c] || s.lacking[c][p] {
			continue
		}
		if _, already := at[p]; already {
			continue
		}
		for _, since := range at {
			if time.Since(since) > hedgeAfter && (bestSince.IsZero() || since.Before(bestSince)) {
				best, bestSince = c, since
			}
		}
	}
	return best, !bestSince.IsZero()
}

// fairShare is how many requests one source may have in flight: the
// window, but no more than an even split of the work in sight, so that a
// fast first source does not take everything while the others stand idle.
func (s *sched) fairShare() int {
	live := 0
	for _, ok := range s.live {
		if ok {
			live++
		}
	}
	share := (len(s.queue)+len(s.asked))/max(live, 1) + 1
	return min(s.window, share)
}

// answered forgets that p had c in flight. It reports whether c is still
// wanted and asked of no other source, so the caller should queue it again.
func (s *sched) answered(c cid.Cid, p peer.ID) bool {
	if at, ok := s.asked[c]; ok {
		if _, had := at[p]; had {
			delete(at, p)
			s.perSource[p]--
		}
		if len(at) == 0 {
			delete(s.asked, c)
		}
	}
	_, elsewhere := s.asked[c]
	return !s.done[c] && !elsewhere
}

// admit checks a verified block before it is stored: it holds the size its
// parent declares, the root declares no more than the limit, and the fetch
// stays within it. It returns the block's links and records their sizes.
func (s *sched) admit(c cid.Cid, data []byte) ([]cid.Cid, error) {
	size, links, err := content.Sizes(c, data)
	if err != nil {
		return nil, fmt.Errorf("block %s verifies but does not decode: %w", c, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkSizes(c, size, links); err != nil {
		return nil, err
	}
	if s.maxBytes >= 0 && s.admitted+int64(len(data)) > s.maxBytes {
		return nil, fmt.Errorf("fetch %s: its blocks come to over %d bytes, the limit, before it is complete: %w", s.root, s.maxBytes, content.ErrTooLarge)
	}
	s.admitted += int64(len(data))
	if s.shallow {
		return nil, nil
	}
	out := make([]cid.Cid, len(links))
	for i, l := range links {
		out[i] = l.CID
	}
	return out, nil
}

// checkSizes compares a block's size with what its parent declared, the
// root's with the limit, and records what it declares for its children.
// Called with mu held.
func (s *sched) checkSizes(c cid.Cid, size int64, links []content.Link) error {
	if want, ok := s.declared[c]; ok && want != size {
		return content.SizeMismatch(c, want, size)
	}
	if c == s.root && !s.shallow {
		if err := content.CheckDeclared(c, size, s.maxBytes); err != nil {
			return err
		}
	}
	for _, l := range links {
		if want, ok := s.declared[l.CID]; ok && want != l.Size {
			return fmt.Errorf("block %s is said to hold %d bytes by one parent and %d by another; the DAG is malformed, ask its publisher to re-publish", l.CID, want, l.Size)
		}
		s.declared[l.CID] = l.Size
	}
	return nil
}

// complete stores a verified block and wants its links. A block that
// another source delivered first is just forgotten.
func (s *sched) complete(c cid.Cid, data []byte, p peer.ID) error {
	s.mu.Lock()
	dup := s.done[c]
	s.mu.Unlock()
	var links []cid.Cid
	if !dup {
		var err error
		if links, err = s.admit(c, data); err != nil {
			return err
		}
		// readAnswers checked the bytes against c before handing them on.
		if err := s.bs.PutVerified(c, data); err != nil {
			return fmt.Errorf("store block %s: %w", c, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answered(c, p)
	if s.done[c] {
		s.cond.Broadcast()
		return nil
	}
	s.done[c] = true
	// Other sources asked for it too: their answers are now duplicates, so
	// they no longer count against those sources' windows.
	for q := range s.asked[c] {
		s.perSource[q]--
	}
	delete(s.asked, c)
	s.stats.Fetched++
	s.stats.Bytes += int64(len(data))
	s.stats.Sources[p.String()]++
	for _, l := range links {
		if err := s.addLocked(l); err != nil && s.err == nil {
			s.err = err
		}
	}
	if s.progress != nil {
		s.progress(s.copyStats())
	}
	s.cond.Broadcast()
	return nil
}

// lacks records that p does not have c; if no usable source has it, the fetch fails.
func (s *sched) lacks(c cid.Cid, p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lacking[c] == nil {
		s.lacking[c] = map[peer.ID]bool{}
	}
	s.lacking[c][p] = true
	s.giveBack(c, p)
	s.cond.Broadcast()
}

// requeue gives back a block p was handed but never asked for.
func (s *sched) requeue(c cid.Cid, p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.giveBack(c, p)
	s.cond.Broadcast()
}

func (s *sched) giveBack(c cid.Cid, p peer.ID) {
	if s.answered(c, p) {
		s.queue = append([]cid.Cid{c}, s.queue...)
		s.checkAvailable(c)
	}
}

func (s *sched) checkAvailable(c cid.Cid) {
	for q, ok := range s.live {
		if ok && !s.lacking[c][q] {
			return
		}
	}
	if s.startSpare() {
		return
	}
	if s.err == nil {
		s.err = fmt.Errorf("no source has block %s%s", c, s.droppedNote())
	}
}

func (s *sched) droppedNote() string {
	if len(s.stats.Dropped) == 0 {
		return ""
	}
	return fmt.Sprintf(" (dropped sources: %v)", s.stats.Dropped)
}

// drop stops using p and hands its unanswered requests to the others.
func (s *sched) drop(p peer.ID, reason string, pending []cid.Cid) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live[p] {
		s.live[p] = false
		s.stats.Dropped = append(s.stats.Dropped, fmt.Sprintf("%s: %s", p, reason))
		s.startSpare()
	}
	for _, c := range pending {
		s.giveBack(c, p)
	}
	if !s.finishedLocked() {
		for _, c := range s.queue {
			s.checkAvailable(c)
		}
	}
	s.cond.Broadcast()
}

// startSpare starts the next unused source, if any and if the fetch goes on.
func (s *sched) startSpare() bool {
	if len(s.spares) == 0 || s.stopped || s.err != nil {
		return false
	}
	p := s.spares[0]
	s.spares = s.spares[1:]
	s.live[p] = true
	s.launch(p)
	return true
}

func (s *sched) abort(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
	s.cond.Broadcast()
}

func (s *sched) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	s.cond.Broadcast()
}

func (s *sched) finished() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.finishedLocked()
}

func (s *sched) finishedLocked() bool { return len(s.queue) == 0 && len(s.asked) == 0 }

// wait blocks until every block is here, the fetch fails, or ctx ends. It
// wakes the sources regularly so idle ones can pick up overdue blocks.
func (s *sched) wait(ctx context.Context) error {
	tick := time.NewTicker(hedgeAfter / 4)
	defer tick.Stop()
	go func() {
		for {
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
			s.mu.Lock()
			s.cond.Broadcast()
			stopped := s.stopped || ctx.Err() != nil
			s.mu.Unlock()
			if stopped {
				return
			}
		}
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		// An interruption is reported as such, even though cancelling also
		// breaks the streams and so makes sources look failed.
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("fetch interrupted after %d of %d blocks (run it again to resume): %w", s.stats.Present+s.stats.Fetched, s.stats.Blocks, ctx.Err())
		case s.err != nil:
			return s.err
		case s.finishedLocked():
			return nil
		}
		s.cond.Wait()
	}
}

func (s *sched) copyStats() Stats {
	st := s.stats
	st.Sources = make(map[string]int, len(s.stats.Sources))
	for k, v := range s.stats.Sources {
		st.Sources[k] = v
	}
	st.Dropped = append([]string(nil), s.stats.Dropped...)
	sort.Strings(st.Dropped)
	return st
}

func (s *sched) snapshot() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.copyStats()
}
