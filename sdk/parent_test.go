package sdk

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestWatchParentNoticesReparenting(t *testing.T) {
	var ppid atomic.Int64
	ppid.Store(4242)
	orphaned := make(chan struct{})
	go watchParent(context.Background(), 5*time.Millisecond, func() int { return int(ppid.Load()) }, 4242, func() { close(orphaned) })

	select {
	case <-orphaned:
		t.Fatal("orphaned while the parent is still there")
	case <-time.After(50 * time.Millisecond):
	}
	ppid.Store(1) // the node died; init adopted the plugin
	select {
	case <-orphaned:
	case <-time.After(2 * time.Second):
		t.Fatal("parent change not noticed")
	}
}

func TestWatchParentEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		watchParent(ctx, 5*time.Millisecond, func() int { return 1 }, 1, func() { t.Error("orphaned called") })
		close(done)
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("watchParent did not return after cancel")
	}
}
