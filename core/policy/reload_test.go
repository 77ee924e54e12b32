package policy

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func version(v string) string {
	return `return { mirror = function(n) return { allow = true, reason = "` + v + `" } end }`
}

func TestReload(t *testing.T) {
	path := writeScript(t, "v.lua", version("v1"))
	p := start(t, Options{Scripts: []string{path}})
	reason := func() string { return p.Decide(context.Background(), HookMirror, map[string]any{}).Reason }
	first := p.Scripts()[0]
	if reason() != "v1" || first.SHA256 == "" || first.LoadedAt.IsZero() {
		t.Fatalf("v1: %q %+v", reason(), first)
	}

	writeFile(t, path, version("v2"))
	if err := p.Reload(); err != nil || reason() != "v2" {
		t.Fatalf("Reload to v2: %v, reason %q", err, reason())
	}
	second := p.Scripts()[0]
	if second.SHA256 == first.SHA256 || !second.LoadedAt.After(first.LoadedAt) {
		t.Fatalf("Scripts() after reload: %+v", second)
	}

	writeFile(t, path, "return { mirror = function(n) return { allow = true }\n") // missing end
	err := p.Reload()
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Reload of a broken script: %v", err)
	}
	if reason() != "v2" {
		t.Fatalf("the broken script replaced v2: reason %q", reason())
	}
	if info := p.Scripts()[0]; info.SHA256 != second.SHA256 || !strings.Contains(info.LastError, path) {
		t.Fatalf("Scripts() after a failed reload: %+v", info)
	}
}

// TestReloadUnderTraffic: calls in flight while workers are swapped get an
// answer from one version or the other, never a fallback.
func TestReloadUnderTraffic(t *testing.T) {
	path := writeScript(t, "v.lua", version("v0"))
	p := start(t, Options{Scripts: []string{path}})
	var stop atomic.Bool
	var wg sync.WaitGroup
	var calls atomic.Int64
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if v := p.Decide(context.Background(), HookMirror, map[string]any{}); v.Fallback {
					t.Errorf("fallback during reloads: %+v", v)
					return
				}
				calls.Add(1)
			}
		}()
	}
	for i := 1; i <= 5; i++ {
		writeFile(t, path, version("v"+string(rune('0'+i))))
		if err := p.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if v := p.Decide(context.Background(), HookMirror, map[string]any{}); v.Reason != "v5" {
		t.Fatalf("after the reloads: %+v", v)
	}
	t.Logf("%d calls across 5 reloads", calls.Load())
}

func TestWatchReloads(t *testing.T) {
	path := writeScript(t, "w.lua", version("before"))
	p := start(t, Options{Scripts: []string{path}, WatchInterval: 20 * time.Millisecond})
	reason := func() string { return p.Decide(context.Background(), HookMirror, map[string]any{}).Reason }
	writeFile(t, path, version("after the edit"))
	eventually(t, "the edited script is in use", func() bool { return reason() == "after the edit" })

	writeFile(t, path, "this is not lua")
	eventually(t, "the failed reload shows", func() bool { return p.Scripts()[0].LastError != "" })
	if reason() != "after the edit" {
		t.Fatalf("a broken edit replaced the script: %q", reason())
	}
}
