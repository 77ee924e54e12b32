package policy

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avnode/avnode/sdk/sdktest"
)

// TestMain lets the test binary serve as the policy worker, as the avnode
// binary does: the tests spawn real worker processes.
func TestMain(m *testing.M) {
	MaybeRunWorker()
	// Race-enabled workers would sleep a second at exit, waiting for late
	// race reports; that would only slow every Close down.
	os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	os.Exit(m.Run())
}

// writeScript writes src to a file in a fresh directory and returns its path.
func writeScript(t testing.TB, name, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// start starts a Policy on scripts, closed when the test ends.
func start(t testing.TB, opts Options) *Policy {
	t.Helper()
	if opts.WatchInterval == 0 {
		opts.WatchInterval = -1
	}
	if opts.Budget == 0 {
		// Tests about budgets set their own; the others must not fail on
		// a machine busy enough to stall a trivial hook for 50 ms.
		opts.Budget = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// testLogger sends the policy's log to the test's log, so a failing test
// shows what the worker said.
func testLogger(t testing.TB) *slog.Logger {
	t.Cleanup(func() { testDone.Store(t, true) })
	return slog.New(slog.NewTextHandler(testWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

var testDone sync.Map // tests that ended: late log lines from workers are dropped

func (w testWriter) Write(b []byte) (int, error) {
	if _, done := testDone.Load(w.t); !done {
		w.t.Log(strings.TrimRight(string(b), "\n"))
		if strings.Contains(string(b), "DATA RACE") {
			w.t.Error("the race detector found a data race in the worker; see its stderr above")
		}
	}
	return len(b), nil
}

// eventually waits, with the repository's one bounded wait, for cond.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	sdktest.Eventually(t, 15*time.Second, what, func() error {
		if cond() {
			return nil
		}
		return errors.New("not yet")
	})
}

func record(name string) map[string]any {
	return map[string]any{
		"key": "/avtr-zone/" + name, "namespace": "avtr-zone", "name": name,
		"type": "zone", "size": 512, "sequence": 7, "publisher": "12D3KooWPublisher", "owner_key": "k51owner",
	}
}

func (p *Policy) hooksSorted() []string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	var out []string
	for h := range p.hooks {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}
