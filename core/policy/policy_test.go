package policy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestNilAndEmptyPolicies(t *testing.T) {
	var nilPolicy *Policy
	if v := nilPolicy.Decide(context.Background(), HookStoreRecord, record("x.avtr")); v.Decided || v.Fallback {
		t.Fatalf("nil policy decided: %+v", v)
	}
	if nilPolicy.Has(HookStoreRecord) || nilPolicy.Scripts() != nil || nilPolicy.Reload() != nil {
		t.Fatal("nil policy is not inert")
	}
	nilPolicy.Close()

	p := start(t, Options{})
	if p.Has(HookMirror) || p.sup != nil {
		t.Fatal("a policy without scripts has hooks or a worker")
	}
	if v := p.Decide(context.Background(), HookMirror, map[string]any{}); v.Decided || v.Fallback {
		t.Fatalf("empty policy decided: %+v", v)
	}
}

// TestScriptOrder: the first script with an opinion decides; nil falls
// through to the next; no opinion at all leaves the caller's default.
func TestScriptOrder(t *testing.T) {
	first := writeScript(t, "first.lua", `return {
  store_record = function(r)
    if r.name == "first.avtr" then return { allow = false, reason = "first says no" } end
    return nil
  end,
}`)
	second := writeScript(t, "second.lua", `return {
  store_record = function(r)
    if r.name == "nobody.avtr" then return nil end
    return { allow = true, reason = "second says yes" }
  end,
  mirror = function(n) return { allow = true } end,
}`)
	p := start(t, Options{Scripts: []string{first, second}})
	for _, tc := range []struct {
		name, script, reason string
		decided, allow       bool
	}{
		{"first.avtr", first, "first says no", true, false},
		{"other.avtr", second, "second says yes", true, true},
		{"nobody.avtr", "", "", false, false},
	} {
		v := p.Decide(context.Background(), HookStoreRecord, record(tc.name))
		if v.Decided != tc.decided || v.Allow != tc.allow || v.Script != tc.script || v.Reason != tc.reason || v.Fallback {
			t.Errorf("%s: %+v; want decided=%v allow=%v by %q", tc.name, v, tc.decided, tc.allow, tc.script)
		}
	}
	if !p.Has(HookMirror) || !p.Has(HookStoreRecord) || p.Has(HookRelayReserve) {
		t.Errorf("Has: hooks are %v", p.hooksSorted())
	}
	if v := p.Decide(context.Background(), HookRelayReserve, map[string]any{}); v.Decided || v.Fallback {
		t.Errorf("a hook no script defines: %+v", v)
	}
	if v := p.Decide(context.Background(), "no_such_hook", map[string]any{}); !v.Fallback || v.Decided {
		t.Errorf("an unknown hook: %+v", v)
	}
}

func TestFallbacks(t *testing.T) {
	path := writeScript(t, "broken.lua", `return {
  store_record    = function(r) error("store broke") end,
  accept_record   = function(r) error("accept broke") end,
  mirror          = function(n) error("mirror broke") end,
  relay_reserve   = function(p) return { allow = "maybe" } end,
  order_providers = function(c) error("order broke") end,
}`)
	p := start(t, Options{Scripts: []string{path}, Fallbacks: map[string]string{HookMirror: FallbackDefault}})
	for _, tc := range []struct {
		hook, err      string
		decided, allow bool
	}{
		{HookStoreRecord, "store broke", true, false},
		{HookAcceptRecord, "accept broke", true, true},
		{HookMirror, "mirror broke", false, false},
		{HookRelayReserve, "allow must be true or false", true, false},
		{HookOrderProviders, "order broke", false, false},
	} {
		v := p.Decide(context.Background(), tc.hook, candidates("a"))
		if !v.Fallback || v.Decided != tc.decided || v.Allow != tc.allow || !strings.Contains(v.Err, tc.err) || v.Script != path {
			t.Errorf("%s: %+v; want fallback decided=%v allow=%v err %q", tc.hook, v, tc.decided, tc.allow, tc.err)
		}
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, opts := range []Options{
		{Fallbacks: map[string]string{"stor_record": "deny"}},
		{Fallbacks: map[string]string{HookMirror: "maybe"}},
		{Fallbacks: map[string]string{HookOrderHosts: "allow"}},
		{MemoryMB: -1},
		{Budget: -time.Second},
	} {
		if _, err := Start(context.Background(), opts); err == nil {
			t.Errorf("Start accepted %+v", opts)
		}
	}
	if _, err := Start(context.Background(), Options{Scripts: []string{"/no/such/script.lua"}}); err == nil || !strings.Contains(err.Error(), "/no/such/script.lua") {
		t.Errorf("missing script: %v", err)
	}
}

func TestStartNamesFileAndLine(t *testing.T) {
	good := writeScript(t, "good.lua", `return { mirror = function() return nil end }`)
	bad := writeScript(t, "bad.lua", "local x = 1\nlocal y = nil + 1\nreturn {}")
	_, err := Start(context.Background(), Options{Scripts: []string{good, bad}, Logger: testLogger(t)})
	var le *LoadError
	if !errors.As(err, &le) || le.Path != bad || le.Line != 2 || !strings.Contains(err.Error(), bad+":2:") {
		t.Fatalf("Start: %v; want a LoadError at %s:2", err, bad)
	}
}

// TestInfiniteLoops: SetContext stops a spinning script within its budget,
// every time, without the worker being restarted.
func TestInfiniteLoops(t *testing.T) {
	path := writeScript(t, "spin.lua", `return {
  store_record = function(r) while true do end end,
  accept_record = function(r) return { allow = false, reason = "still fine" } end,
}`)
	// A long grace: an answer that comes at all, however late on a busy
	// machine, shows the Lua deadline stopped the loop; the node's kill
	// would come only after the grace, and count a restart.
	p := start(t, Options{Scripts: []string{path}, Budget: 5 * time.Millisecond, grace: time.Minute})
	const calls, callers = 1000, 4
	var wg sync.WaitGroup
	errs := make(chan string, calls)
	begin := time.Now()
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < calls/callers; i++ {
				v := p.Decide(context.Background(), HookStoreRecord, record("spin.avtr"))
				stopped := strings.Contains(v.Err, "ran past its 5ms budget") || strings.Contains(v.Err, "no Lua state came free")
				if !v.Fallback || !v.Decided || v.Allow || !stopped {
					errs <- v.Err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatalf("a spinning call was not stopped by its budget and given the deny fallback: %s", e)
	}
	if took := time.Since(begin); took > time.Minute {
		t.Fatalf("%d spinning calls took %v", calls, took)
	}
	if n := p.restarts.Load(); n != 0 {
		t.Fatalf("the worker was restarted %d times; the Lua deadline alone should stop loops", n)
	}
	if v := p.Decide(context.Background(), HookAcceptRecord, record("x.avtr")); v.Fallback || v.Reason != "still fine" {
		t.Fatalf("after the loops: %+v", v)
	}
}

func TestCallerContext(t *testing.T) {
	path := writeScript(t, "slow.lua", `return { mirror = function() while true do end end }`)
	p := start(t, Options{Scripts: []string{path}, Budget: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	begin := time.Now()
	v := p.Decide(ctx, HookMirror, map[string]any{})
	if !v.Fallback || time.Since(begin) > 3*time.Second {
		t.Fatalf("a caller's deadline shorter than the budget was not honoured: %+v after %v", v, time.Since(begin))
	}
	if n := p.restarts.Load(); n != 0 {
		t.Fatalf("restarts = %d", n)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	path := writeScript(t, "m.lua", `return {
  mirror = function(n) if n.public then return { allow = true } end return { allow = false } end,
  relay_reserve = function() error("x") end,
}`)
	p := start(t, Options{Scripts: []string{path}, Registerer: reg})
	ctx := context.Background()
	p.Decide(ctx, HookMirror, map[string]any{"public": true})
	p.Decide(ctx, HookMirror, map[string]any{"public": false})
	p.Decide(ctx, HookRelayReserve, map[string]any{})
	if err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	// A second Policy in the same registry shares the collectors.
	start(t, Options{Registerer: reg})
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += " " + l.GetValue()
			}
			got[key] = m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	for key, want := range map[string]float64{
		"avnode_policy_calls_total mirror allow":           1,
		"avnode_policy_calls_total mirror deny":            1,
		"avnode_policy_calls_total relay_reserve fallback": 1,
		"avnode_policy_call_seconds mirror":                2,
		"avnode_policy_reloads_total ok":                   1,
		"avnode_policy_worker_restarts_total":              0,
	} {
		if got[key] != want {
			t.Errorf("%s = %v; want %v (all: %v)", key, got[key], want, got)
		}
	}
}

func TestCheckFile(t *testing.T) {
	path := writeScript(t, "c.lua", `return { mirror = function() end, mirro = function() end }`)
	info, warnings, err := CheckFile(context.Background(), path)
	if err != nil || len(info.Hooks) != 1 || info.Hooks[0] != HookMirror || len(warnings) != 1 || len(info.SHA256) != 64 {
		t.Fatalf("CheckFile: %+v %q %v", info, warnings, err)
	}
	bad := writeScript(t, "bad.lua", "return {\n  mirror = function( end\n}")
	if _, _, err := CheckFile(context.Background(), bad); err == nil || !strings.Contains(err.Error(), bad+":2:") {
		t.Fatalf("CheckFile on a syntax error: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

func TestRefusalsAreKeptNewestFirst(t *testing.T) {
	var r refusals
	for i := range maxRefusals + 5 {
		r.add(Refusal{Reason: fmt.Sprint(i)})
	}
	got := r.latest()
	if len(got) != maxRefusals || got[0].Reason != fmt.Sprint(maxRefusals+4) || got[len(got)-1].Reason != "5" {
		t.Fatalf("%d kept, newest %q, oldest %q", len(got), got[0].Reason, got[len(got)-1].Reason)
	}
}
