package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/avnode/avnode/core/api"
)

// target is one network under measure with the items it resolves: names
// on avnode's network, plain keys on the bare one.
type target struct {
	net     *cluster
	items   int
	key     func(item int) string // the DHT record key of an item
	owner   func(item int) int    // the member that published it
	resolve func(ctx context.Context, member, item int) error

	// warmServer is the daemon's share of each warm resolve through the
	// control API (its Server-Timing); empty where there is no API.
	warmServer latencies

	mu       sync.Mutex
	resolved map[[2]int]bool // (member, item) pairs already resolved: no cache hit counts as cold
}

const resolveTimeout = 15 * time.Second

// coldResolver picks a live member that has never resolved the item and,
// where the network is large enough to have one, does not store its
// record: it must go to the network for it. -1 when none is left.
func (t *target) coldResolver(item int, skip map[int]bool) int {
	fresh := func(i int) bool {
		t.mu.Lock()
		seen := t.resolved[[2]int{i, item}]
		t.mu.Unlock()
		return !seen && !skip[i] && i != t.owner(item)
	}
	if m := t.net.pick(func(i int) bool { return fresh(i) && t.net.members[i].storedAt(t.key(item)).IsZero() }); m >= 0 {
		return m
	}
	return t.net.pick(fresh)
}

func (t *target) markResolved(member, item int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.resolved == nil {
		t.resolved = map[[2]int]bool{}
	}
	t.resolved[[2]int{member, item}] = true
}

func (t *target) timedResolve(ctx context.Context, member, item int) (time.Duration, error) {
	return t.timedWith(ctx, t.resolve, member, item)
}

// timedWith times one resolve of item by member with resolve.
func (t *target) timedWith(ctx context.Context, resolve func(ctx context.Context, member, item int) error, member, item int) (time.Duration, error) {
	t.markResolved(member, item)
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	start := time.Now()
	err := resolve(ctx, member, item)
	return time.Since(start), err
}

// coldOnce resolves every item once with resolve, from a member that never
// resolved it, and returns the times.
func (t *target) coldOnce(ctx context.Context, resolve func(ctx context.Context, member, item int) error) *latencies {
	out := &latencies{}
	for item := range t.items {
		if m := t.coldResolver(item, nil); m >= 0 {
			out.add(t.timedWith(ctx, resolve, m, item))
		}
	}
	return out
}

// coldAndWarm resolves every item once from a member that never saw it,
// then again from the same member.
func (t *target) coldAndWarm(ctx context.Context) (cold, warm *latencies) {
	cold, warm = &latencies{}, &latencies{}
	for item := range t.items {
		m := t.coldResolver(item, nil)
		if m < 0 {
			continue
		}
		cold.add(t.timedResolve(ctx, m, item))
		var inDaemon time.Duration
		d, err := t.timedResolve(api.WithServerTime(ctx, &inDaemon), m, item)
		warm.add(d, err)
		if inDaemon > 0 {
			t.warmServer.add(inDaemon, err)
		}
	}
	return cold, warm
}

// afterKill stops share of the members at once, then resolves every item
// from a live member that never resolved it. It returns the success ratio
// and the failures.
func (t *target) afterKill(ctx context.Context, share float64) (success float64, tried int, errs []error) {
	t.net.kill(share, nil)
	ok, errs := t.resolveEvery(ctx)
	tried = ok + len(errs)
	return float64(ok) / float64(max(tried, 1)), tried, errs
}

// resolveEvery resolves each item once, from a live member that never
// resolved it where one is left, and returns the successes and the errors.
func (t *target) resolveEvery(ctx context.Context) (ok int, errs []error) {
	for item := range t.items {
		m := t.coldResolver(item, nil)
		if m < 0 {
			m = t.net.pick(nil)
		}
		if _, err := t.timedResolve(ctx, m, item); err != nil {
			errs = append(errs, fmt.Errorf("item %d from node %d: %w", item, m, err))
			continue
		}
		ok++
	}
	return ok, errs
}

// whileRestarting keeps share of the live members restarting in a loop
// (down for a moment, back with a new port) for the given time, while four
// resolvers on the other members resolve items they never resolved. It
// returns the success ratio and the failures.
func (t *target) whileRestarting(ctx context.Context, share float64, d time.Duration) (success float64, tried int, errs []error) {
	restarting := map[int]bool{}
	for len(restarting) < int(share*float64(len(t.net.members))+0.5) {
		if i := t.net.pick(func(i int) bool { return !restarting[i] }); i >= 0 {
			restarting[i] = true
		} else {
			break
		}
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	for i := range restarting {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				t.net.setAlive(i, false)
				t.net.members[i].stop()
				sleep(ctx, 300*time.Millisecond)
				// Back up even past the deadline: the next measure needs it.
				for t.net.restart(context.Background(), i) != nil {
					time.Sleep(100 * time.Millisecond)
				}
				sleep(ctx, time.Second)
			}
		}()
	}
	var ok, all atomic.Int64
	var mu sync.Mutex
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for item, misses := 0, 0; ctx.Err() == nil && misses < t.items; item = (item + 1) % t.items {
				m := t.coldResolver(item, restarting)
				if m < 0 { // every member has resolved this one
					misses++
					continue
				}
				misses = 0
				// The resolve runs to its own end: the deadline stops the loop, not it.
				if _, err := t.timedResolve(context.Background(), m, item); err == nil {
					ok.Add(1)
				} else {
					mu.Lock()
					errs = append(errs, fmt.Errorf("item %d from node %d: %w", item, m, err))
					mu.Unlock()
				}
				all.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(ok.Load()) / float64(max(all.Load(), 1)), int(all.Load()), errs
}

// timeToReady starts a new member, links it to one live member, and
// resolves until the first success.
func (t *target) timeToReady(ctx context.Context, m member) (time.Duration, error) {
	start := time.Now()
	if err := m.start(); err != nil {
		return 0, err
	}
	t.net.mu.Lock()
	t.net.members = append(t.net.members, m)
	t.net.alive = append(t.net.alive, false)
	i := len(t.net.members) - 1
	t.net.mu.Unlock()
	other := t.net.pick(func(o int) bool { return o != i })
	if err := t.net.link(ctx, i, other); err != nil {
		return 0, err
	}
	t.net.setAlive(i, true)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for item := 0; ; item = (item + 1) % t.items {
		if _, err := t.timedResolve(ctx, i, item); err == nil {
			return time.Since(start), nil
		}
		// A pause between tries: a lookup that fails at once would spin,
		// and on a simulated network no time would pass.
		sleep(ctx, 10*time.Millisecond)
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
