package policy

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// Memory and stack bombs. gopher-lua has no memory cap: these allocate a
// gigabyte in one Go operation, double a string until memory runs out, or
// nest deep enough to overflow the Go stack while compiling. The node (this
// test process) must survive every one.
var bombs = []struct{ name, code string }{
	{"table index", `local t = {} t[67108863] = 1`},
	{"string.rep", `local s = string.rep("x", 2^30)`},
	{"concat doubling", `local s = "x" while true do s = s .. s end`},
	{"nested source", "local x = " + strings.Repeat("(", 100000) + "1" + strings.Repeat(")", 100000)},
}

const goodScript = `return {
  store_record = function(r) return { allow = true, reason = "good" } end,
  accept_record = function(r) return { allow = true, reason = "good" } end,
}`

// TestBombsAtTopLevel: a script that bombs while loading is refused by
// Reload, and the policy keeps running the previous scripts.
func TestBombsAtTopLevel(t *testing.T) {
	path := writeScript(t, "policy.lua", goodScript)
	p := start(t, Options{Scripts: []string{path}, Budget: DefaultBudget})
	for _, b := range bombs {
		t.Run(b.name, func(t *testing.T) {
			writeFile(t, path, b.code+"\n"+goodScript)
			err := p.Reload()
			if err == nil {
				t.Fatal("Reload accepted the bomb")
			}
			t.Logf("Reload: %v", err)
			if info := p.Scripts()[0]; info.LastError == "" {
				t.Errorf("Scripts() does not show the failed reload: %+v", info)
			}
			if v := p.Decide(context.Background(), HookStoreRecord, record("x.avtr")); v.Fallback || v.Reason != "good" {
				t.Fatalf("after the refused reload the previous script no longer decides: %+v", v)
			}
		})
	}
	writeFile(t, path, goodScript)
	if err := p.Reload(); err != nil || p.Scripts()[0].LastError != "" {
		t.Fatalf("Reload of the good script again: %v, %+v", err, p.Scripts()[0])
	}
}

// TestBombsInHooks: a hook that bombs takes its fallback at once; the worker
// dies or is killed and comes back, and the script's other hooks work again.
func TestBombsInHooks(t *testing.T) {
	for _, b := range bombs {
		t.Run(b.name, func(t *testing.T) {
			path := writeScript(t, "bomb.lua", `return {
  store_record = function(r) `+b.code+` return { allow = true } end,
  accept_record = function(r) return { allow = false, reason = "still here" } end,
}`)
			opts := Options{Scripts: []string{path}, Budget: DefaultBudget}
			if b.name == "nested source" {
				// Too deep to compile at all, wherever it is.
				if _, err := Start(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "nest deeper") {
					t.Fatalf("Start: %v", err)
				}
				return
			}
			p := start(t, opts)
			begin := time.Now()
			v := p.Decide(context.Background(), HookStoreRecord, record("x.avtr"))
			if !v.Fallback || !v.Decided || v.Allow {
				t.Fatalf("the bomb did not take the deny fallback: %+v", v)
			}
			if took := time.Since(begin); took > 5*time.Second {
				t.Fatalf("the fallback took %v", took)
			}
			t.Logf("bomb: %s", v.Err)
			eventually(t, "the other hook works again", func() bool {
				v := p.Decide(context.Background(), HookAcceptRecord, record("x.avtr"))
				return !v.Fallback && v.Reason == "still here"
			})
			if b.name == "table index" {
				// The spare takes over at once, or when it is up.
				eventually(t, "a gigabyte in one operation: the worker died or got stuck, and was replaced", func() bool {
					return p.restarts.Load() > 0
				})
			}
		})
	}
}

// TestMemoryLimit checks the address-space limit itself: the Go runtime
// works under a small one, and a script that allocates past it kills only
// the worker.
func TestMemoryLimit(t *testing.T) {
	path := writeScript(t, "mem.lua", `return {
  mirror = function(n)
    local s = string.rep("x", n.size_bytes)
    return { allow = #s == n.size_bytes }
  end,
}`)
	// A generous budget: this is about memory, and the race detector makes
	// copying megabytes slow.
	p := start(t, Options{Scripts: []string{path}, MemoryMB: minMemoryMB, Budget: 5 * time.Second})
	for i := 0; i < 50; i++ {
		v := p.Decide(context.Background(), HookMirror, map[string]any{"size_bytes": 4 << 20})
		if v.Fallback || !v.Allow {
			t.Fatalf("call %d, 4 MiB at a time under a %d MiB limit: %+v", i, minMemoryMB, v)
		}
	}
	v := p.Decide(context.Background(), HookMirror, map[string]any{"size_bytes": 1 << 30})
	if !v.Fallback || !strings.Contains(v.Err, "exited") {
		t.Fatalf("1 GiB under a %d MiB limit: %+v; want the worker to die of it", minMemoryMB, v)
	}
	t.Logf("over the limit: %s", v.Err)
	eventually(t, "the worker is back", func() bool {
		v := p.Decide(context.Background(), HookMirror, map[string]any{"size_bytes": 10})
		return !v.Fallback && v.Allow
	})
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
