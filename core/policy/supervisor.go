package policy

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Restart backoff: a worker that keeps dying is restarted ever more slowly,
// and one that stayed up for stableAfter starts the count again.
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
	restarted func() // counts a restart attempt
}

// A supervisor keeps one worker running with one set of scripts. A Reload
// makes a new supervisor rather than changing this one's scripts.
type supervisor struct {
	cfg       workerConfig
	sources   []scriptSource
	ctx       context.Context // cancelled by close: stops a restart mid-way
	cancel    context.CancelFunc
	closeOnce sync.Once
	wg        sync.WaitGroup

	mu     sync.Mutex
	cur    *proc // nil while the worker is down
	closed bool
}

// startSupervisor starts a worker with sources and returns once they have
// loaded. The load results come back even on failure, to say what failed.
func startSupervisor(ctx context.Context, cfg workerConfig, sources []scriptSource) (*supervisor, []loadResult, error) {
	p, results, err := launch(ctx, cfg, sources)
	if err != nil {
		return nil, results, err
	}
	s := &supervisor{cfg: cfg, sources: sources, cur: p}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.keepAlive(p)
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

// keepAlive restarts the worker whenever it dies, until close.
func (s *supervisor) keepAlive(p *proc) {
	defer s.wg.Done()
	backoff := minBackoff
	for {
		select {
		case <-p.exited:
		case <-s.ctx.Done():
			return
		}
		s.mu.Lock()
		if s.cur == p {
			s.cur = nil
		}
		s.mu.Unlock()
		if time.Since(p.started) >= stableAfter {
			backoff = minBackoff
		}
		s.cfg.log.Warn("policy worker died; hooks take their fallbacks until it is back",
			"err", p.exitErr, "restart_in", backoff)
		if p, backoff = s.restart(backoff); p == nil {
			return
		}
	}
}

// restart waits out the backoff and starts a new worker, retrying until one
// loads or the supervisor closes. It returns the new worker and the next
// backoff.
func (s *supervisor) restart(backoff time.Duration) (*proc, time.Duration) {
	for {
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			return nil, 0
		}
		backoff = min(2*backoff, maxBackoff)
		s.cfg.restarted()
		p, _, err := launch(s.ctx, s.cfg, s.sources)
		if err != nil {
			s.cfg.log.Warn("policy worker restart failed", "err", err, "retry_in", backoff)
			continue
		}
		s.mu.Lock()
		closed := s.closed
		if !closed {
			s.cur = p
		}
		s.mu.Unlock()
		if closed {
			p.close(0)
			return nil, 0
		}
		s.cfg.log.Info("policy worker restarted")
		return p, backoff
	}
}

// call asks the current worker; while it is down the call fails at once.
func (s *supervisor) call(ctx context.Context, hook string, input []byte, budget time.Duration) (result, error) {
	s.mu.Lock()
	p, closed := s.cur, s.closed
	s.mu.Unlock()
	switch {
	case closed:
		return result{}, errRetired
	case p == nil:
		return result{}, errWorkerDown
	}
	return p.call(ctx, hook, input, budget, s.cfg.grace)
}

// close stops restarts and lets the worker finish its calls for up to
// wait before killing it.
func (s *supervisor) close(wait time.Duration) {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		p := s.cur
		s.cur = nil
		s.mu.Unlock()
		s.cancel()
		if p != nil {
			p.close(wait)
		}
		s.wg.Wait()
	})
}

// current is the running worker, nil while it is down.
func (s *supervisor) current() *proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}
