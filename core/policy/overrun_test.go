package policy

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stuckFilter is an ordinary-looking filter whose pattern, on a name of
// 1,500 labels, backtracks over every four dots: hours inside one
// string.find, which no Lua deadline interrupts.
const stuckFilter = `return {
  store_record = function(r)
    if string.find(r.name, "^(.-)%.(.-)%.(.-)%.(.-)%.spam$") then
      return { allow = false, reason = "deep spam" }
    end
    return { allow = true, reason = "fine" }
  end,
}`

var poisonName = strings.Repeat("a.", 1500) + "x"

// A call stuck in one Go operation costs that call only: the spare takes
// over, and calls from other callers, running all along, are answered by
// the scripts, never by the fallback.
func TestStuckCallCostsOnlyThatCall(t *testing.T) {
	path := writeScript(t, "stuck.lua", stuckFilter)
	p := start(t, Options{Scripts: []string{path}, Budget: time.Second})
	spareUp := func() bool { return p.sup.haveSpare() }
	eventually(t, "the spare is up", spareUp)

	const poisons = 3
	var honest, refused atomic.Int64
	var lastRefusal atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				v := p.Decide(context.Background(), HookStoreRecord, record("fine.avtr"))
				honest.Add(1)
				if v.Fallback || !v.Allow {
					refused.Add(1)
					lastRefusal.Store(v.Err)
				}
			}
		}()
	}
	for i := range poisons {
		v := p.Decide(context.Background(), HookStoreRecord, record(poisonName))
		if !v.Fallback || v.Allow || !strings.Contains(v.Err, "its worker is replaced") {
			t.Fatalf("poison %d: %+v; want the deny fallback of a stuck call", i, v)
		}
		eventually(t, "a new spare is up", spareUp)
	}
	close(stop)
	wg.Wait()
	t.Logf("honest calls %d, refused %d; workers replaced %d", honest.Load(), refused.Load(), p.restarts.Load())
	if refused.Load() != 0 {
		t.Fatalf("%d of %d honest calls took the fallback while poisons ran (last: %v)", refused.Load(), honest.Load(), lastRefusal.Load())
	}
	if honest.Load() == 0 {
		t.Fatal("no honest call ran")
	}
	if n := p.restarts.Load(); n != poisons {
		t.Fatalf("workers replaced %d times for %d stuck calls", n, poisons)
	}
}

// A worker lost to calls is replaced at once, however often: the backoff
// grows only for workers that die of themselves.
func TestBackoffStaysShortForWorkersLostToCalls(t *testing.T) {
	path := writeScript(t, "stuck.lua", stuckFilter)
	p := start(t, Options{Scripts: []string{path}, Budget: 200 * time.Millisecond})
	for i := range 6 {
		eventually(t, "the spare is up", p.sup.haveSpare)
		if v := p.Decide(context.Background(), HookStoreRecord, record(poisonName)); !v.Fallback {
			t.Fatalf("poison %d: %+v", i, v)
		}
	}
	p.sup.mu.Lock()
	backoff := p.sup.backoff.Current()
	p.sup.mu.Unlock()
	if backoff != minBackoff {
		t.Fatalf("after 6 workers lost to stuck calls the backoff is %v, want %v", backoff, minBackoff)
	}
}

// A peer whose records keep making the scripts fail gets the fallback at
// once, for its records only; other peers' records are still decided.
func TestPeerBudgetOnRecordHooks(t *testing.T) {
	path := writeScript(t, "fussy.lua", `return {
  store_record = function(r)
    if r.name == "bad.avtr" then error("cannot read this record") end
    if r.name == "slow.avtr" then while true do end end
    return { allow = true, reason = "fine" }
  end,
}`)
	p := start(t, Options{Scripts: []string{path}, Budget: 200 * time.Millisecond, grace: time.Minute})
	ctx := context.Background()
	for _, tc := range []struct{ peer, bad string }{{"12D3KooWErrors", "bad.avtr"}, {"12D3KooWOverruns", "slow.avtr"}} {
		for i := range peerFailureBurst {
			if v := p.DecideFor(ctx, HookStoreRecord, tc.peer, record(tc.bad)); !v.Fallback || v.Allow {
				t.Fatalf("%s failure %d: %+v", tc.peer, i, v)
			}
		}
		v := p.DecideFor(ctx, HookStoreRecord, tc.peer, record("good.avtr"))
		if !v.Fallback || v.Allow || !strings.Contains(v.Err, "records from peer "+tc.peer) {
			t.Fatalf("%s past its budget, a good record: %+v; want the fallback without running", tc.peer, v)
		}
	}
	if v := p.DecideFor(ctx, HookStoreRecord, "12D3KooWHonest", record("good.avtr")); v.Fallback || !v.Allow {
		t.Fatalf("another peer's record: %+v", v)
	}
	if v := p.Decide(ctx, HookStoreRecord, record("good.avtr")); v.Fallback || !v.Allow {
		t.Fatalf("a record with no peer: %+v", v)
	}
}

// The budget refills: one more failure is allowed per peerFailureEvery.
func TestPeerBudgetRefills(t *testing.T) {
	b := newPeerBudget()
	for range peerFailureBurst {
		if err := b.spent("p"); err != nil {
			t.Fatal(err)
		}
		b.failed("p")
	}
	if b.spent("p") == nil || b.spent("q") != nil {
		t.Fatal("the budget is not per peer")
	}
	l, _ := b.peers.Get("p")
	if l.TokensAt(time.Now().Add(peerFailureEvery)) < 1 {
		t.Fatalf("no failure allowed again after %v", peerFailureEvery)
	}
}

// haveSpare reports whether a loaded spare waits to take over.
func (s *supervisor) haveSpare() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spare != nil
}
