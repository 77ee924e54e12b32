package policy

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/avnode/avnode/core/backoff"
)

// Restart backoff, for workers that die of themselves: with no call in
// flight (a broken start, a crash at rest) a worker that keeps dying is
// started ever more slowly, and one that stayed up for stableAfter starts
// the count again. A worker lost to a call (killed stuck, or dead while
// calls ran: a memory bomb) is replaced after minBackoff: the call's input
// is to blame, not the worker, and a doubling backoff there would let
// whoever sends such inputs keep every hook on its fallback.
const (
	minBackoff  = 250 * time.Millisecond
	maxBackoff  = 30 * time.Second
	stableAfter = time.Minute
)

var errWorkerDown = errors.New("policy worker is down and restarting")

// workerConfig is what every worker of a Policy is started with.
type workerConfig struct {
	memoryMB  int
	budget    time.Duration
	grace     time.Duration // past the budget before a call's worker counts as stuck
	log       *slog.Logger
	restarted func()          // counts a restart attempt
	spares    func(delta int) // counts spares coming (+1) and going (-1)
}

// A supervisor keeps one worker serving calls with one set of scripts, and a
// second one loaded and idle, the spare. When the serving worker is stuck in
// a call or dies, the spare takes over at once, so honest calls are answered
// while a new spare starts. A Reload makes a new supervisor rather than
// changing this one's scripts.
type supervisor struct {
	cfg       workerConfig
	sources   []scriptSource
	ctx       context.Context // cancelled by close: stops a restart mid-way
	cancel    context.CancelFunc
	closeOnce sync.Once
	wg        sync.WaitGroup
	wake      chan struct{} // the spare is gone: start another

	mu      sync.Mutex
	cur     *proc // nil while no worker is up
	spare   *proc // loaded, serving nothing yet; nil while one starts
	stale   bool  // cur is stuck in a call: replace it as soon as a spare is up
	wait    time.Duration
	backoff *backoff.Doubling
	closed  bool
}

// startSupervisor starts a worker with sources and returns once they have
// loaded. The load results come back even on failure, to say what failed.
// The spare starts in the background.
func startSupervisor(ctx context.Context, cfg workerConfig, sources []scriptSource) (*supervisor, []loadResult, error) {
	p, results, err := launch(ctx, cfg, sources)
	if err != nil {
		return nil, results, err
	}
	s := &supervisor{cfg: cfg, sources: sources, cur: p, wake: make(chan struct{}, 1),
		backoff: backoff.New(minBackoff, maxBackoff)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.watch(p)
	s.wg.Add(1)
	go s.keepAlive()
	return s, results, nil
}

// launch starts a worker and loads the scripts into it; on any failure the
// worker is killed.
func launch(ctx context.Context, cfg workerConfig, sources []scriptSource) (*proc, []loadResult, error) {
	p, err := spawn(cfg.memoryMB, cfg.log)
	if err != nil {
		return nil, nil, err
	}
	results, err := p.load(ctx, sources, cfg.budget)
	if err == nil {
		err = loadFailure(results)
	}
	if err != nil {
		p.kill()
		<-p.exited
		return nil, results, err
	}
	return p, results, nil
}

// watch replaces p when it exits.
func (s *supervisor) watch(p *proc) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-p.exited:
			s.replace(p)
		case <-s.ctx.Done():
		}
	}()
}

// keepAlive keeps a spare ready, until close.
func (s *supervisor) keepAlive() {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		need, wait := s.spare == nil, s.wait
		s.mu.Unlock()
		if need {
			if !s.sleep(wait) {
				return
			}
			s.startSpare()
			continue
		}
		select {
		case <-s.wake:
		case <-s.ctx.Done():
			return
		}
	}
}

func (s *supervisor) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// startSpare launches a worker and makes it the spare, or the serving
// worker if none is up or the serving one is stuck.
func (s *supervisor) startSpare() {
	p, _, err := launch(s.ctx, s.cfg, s.sources)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.wait = s.backoff.Grow()
		if s.ctx.Err() == nil {
			s.cfg.log.Warn("policy worker start failed", "err", err, "retry_in", s.wait)
		}
		return
	}
	s.wait = 0
	var stuck *proc
	switch {
	case s.closed:
		p.close(0)
		return
	case s.cur == nil:
		s.cur = p
	case s.stale:
		stuck, s.cur, s.stale = s.cur, p, false
		s.cfg.restarted()
	default:
		s.setSpare(p)
	}
	s.watch(p)
	if stuck != nil {
		s.retire(stuck)
	}
}

// setSpare makes p the spare (nil: none) and counts it. Called with s.mu held.
func (s *supervisor) setSpare(p *proc) {
	switch {
	case s.spare == nil && p != nil:
		s.cfg.spares(1)
	case s.spare != nil && p == nil:
		s.cfg.spares(-1)
	}
	s.spare = p
}

// retire lets p finish the calls it has, for up to a budget and the grace,
// then kills it. Called with s.mu held, before close.
func (s *supervisor) retire(p *proc) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		p.close(s.cfg.budget + s.cfg.grace)
	}()
}

// replace is called when p died or got stuck in a call. If p is the serving
// worker, the spare takes over and p is retired: it finishes the calls it
// has, for up to a budget and the grace, then is killed. A stuck worker with
// no spare to take over keeps serving on its other Lua states until one is
// up.
func (s *supervisor) replace(p *proc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return
	case s.spare == p:
		s.setSpare(nil)
	case s.cur != p:
		return // retired already
	case s.spare != nil:
		s.cur, s.stale = s.spare, false
		s.setSpare(nil)
		if !p.dead() {
			s.retire(p)
		}
	case p.dead():
		s.cur = nil
	default:
		s.stale = true
		return // a spare is on its way, and will take over
	}
	s.cfg.restarted()
	if p.lostToCall() || time.Since(p.started) >= stableAfter {
		s.wait = s.backoff.Reset()
	} else {
		s.wait = s.backoff.Grow()
	}
	s.cfg.log.Warn("policy worker lost; the spare takes over", "err", p.lossReason(), "next_spare_in", s.wait)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// call asks the serving worker; while none is up the call fails at once.
// A call that outlives its budget and the grace leaves its worker stuck in
// one long Go operation: the spare takes over and the stuck one is retired.
// A call that raced a swap, sent to a worker retired a moment before, is
// asked again of the one that took over.
func (s *supervisor) call(ctx context.Context, hook string, input []byte, budget time.Duration) (result, error) {
	var tried *proc
	for {
		s.mu.Lock()
		p, closed := s.cur, s.closed
		s.mu.Unlock()
		switch {
		case closed:
			return result{}, errRetired
		case p == nil:
			return result{}, errWorkerDown
		case p == tried:
			return result{}, errRetired
		}
		res, err := p.call(ctx, hook, input, budget, s.cfg.grace)
		if errors.Is(err, errStuck) {
			s.replace(p)
		}
		if !errors.Is(err, errRetired) || tried != nil {
			return res, err
		}
		tried = p
	}
}

// close stops restarts and lets the workers finish their calls for up to
// wait before killing them.
func (s *supervisor) close(wait time.Duration) {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		p, spare := s.cur, s.spare
		s.cur = nil
		s.setSpare(nil)
		s.mu.Unlock()
		s.cancel()
		if spare != nil {
			spare.close(0)
		}
		if p != nil {
			p.close(wait)
		}
		s.wg.Wait()
	})
}

// current is the serving worker, nil while none is up.
func (s *supervisor) current() *proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}
