package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// testEngine is the in-process engine, for checks that need no worker.
type testEngine struct {
	*engine
	mu   sync.Mutex
	logs []string
}

func newTestEngine(t testing.TB, srcs ...string) *testEngine {
	t.Helper()
	te := &testEngine{}
	te.engine = newEngine(func(level, script, msg string) {
		te.mu.Lock()
		te.logs = append(te.logs, level+" "+msg)
		te.mu.Unlock()
	}, 4)
	sources := make([]scriptSource, len(srcs))
	for i, src := range srcs {
		sources[i] = scriptSource{Name: fmt.Sprintf("s%d.lua", i+1), Source: []byte(src)}
	}
	for _, r := range te.load(context.Background(), sources, time.Second) {
		if r.Error != "" {
			t.Fatalf("load %s: line %d: %s", r.Name, r.Line, r.Error)
		}
	}
	return te
}

func (te *testEngine) run(t testing.TB, hook string, input any) result {
	t.Helper()
	raw, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return te.call(ctx, hook, raw, time.Second)
}

func TestReadOnlyInputStillReads(t *testing.T) {
	te := newTestEngine(t, `
return { order_providers = function(c)
  local n, keys, peers = #c.candidates, 0, {}
  for k in pairs(c) do keys = keys + 1 end
  for i, cand in ipairs(c.candidates) do peers[i] = cand.peer end
  local first = unpack(c.candidates)
  local k1 = next(c)
  local roles = table.concat(c.candidates[2].roles, ",")
  assert(n == 3 and keys == 2 and first.peer == "a" and k1 ~= nil, "reads")
  assert(roles == "mirror,relay", roles)
  assert(table.getn(c.candidates) == 3 and table.maxn(c.candidates) == 3)
  return { order = { peers[3], peers[2] }, reason = "reversed " .. n }
end }`)
	res := te.run(t, HookOrderProviders, candidates("a", "b", "c"))
	if res.Err != "" {
		t.Fatal(res.Err)
	}
	if got := strings.Join(res.Order, " "); got != "c b a" || res.Reason != "reversed 3" {
		t.Fatalf("order %q reason %q; want \"c b a\", \"reversed 3\"", got, res.Reason)
	}
}

func candidates(peers ...string) map[string]any {
	list := make([]any, len(peers))
	for i, p := range peers {
		list[i] = map[string]any{"peer": p, "addrs": []any{"/ip4/10.0.0.1/tcp/4001"},
			"latency_ms": float64(10 * (i + 1)), "success_rate": 0.9, "roles": []any{"mirror", "relay"}}
	}
	return map[string]any{"cid": "bafy", "candidates": list}
}

func TestOrderIsCompleted(t *testing.T) {
	te := newTestEngine(t, `return { order_hosts = function(c)
  return { order = { "ghost", "c", "c", "a" } }
end }`)
	res := te.run(t, HookOrderHosts, candidates("a", "b", "c", "d"))
	if got := strings.Join(res.Order, " "); got != "c a b d" {
		t.Fatalf("order %q; want listed known ids first, unknown and repeated ones dropped, the rest after: \"c a b d\"", got)
	}
}

func TestBadVerdicts(t *testing.T) {
	for _, tc := range []struct{ hook, ret, want string }{
		{HookMirror, `true`, "returned a boolean"},
		{HookMirror, `{ allow = "yes" }`, "allow must be true or false"},
		{HookMirror, `{ allow = true, reason = {} }`, "reason is a table"},
		{HookOrderHosts, `{ allow = true }`, "order is a nil"},
		{HookOrderHosts, `{ order = { 1 } }`, "order[1] is a number"},
	} {
		te := newTestEngine(t, `return { `+tc.hook+` = function() return `+tc.ret+` end }`)
		res := te.run(t, tc.hook, candidates("a"))
		if !strings.Contains(res.Err, tc.want) {
			t.Errorf("%s returning %s: err %q; want it to mention %q", tc.hook, tc.ret, res.Err, tc.want)
		}
	}
}

func TestHookDiscovery(t *testing.T) {
	e := newEngine(func(string, string, string) {}, 1)
	for _, tc := range []struct {
		src, wantErr, wantWarning string
		line                      int
	}{
		{src: `return { store_record = function() end, stor_record = function() end }`, wantWarning: `unknown hook "stor_record"`},
		{src: `return {}`, wantWarning: "defines no hooks"},
		{src: `return { mirror = 1 }`, wantErr: "hook mirror is a number"},
		{src: `return 42`, wantErr: "returned a number"},
		{src: "local x = 1\nlocal y = = 2\nreturn {}", wantErr: "syntax error", line: 2},
		{src: "local t = nil\n\nlocal y = t.x\nreturn {}", wantErr: "attempt to index", line: 3},
		{src: "error('broken on purpose')", wantErr: "broken on purpose", line: 1},
		{src: "while true do end", wantErr: "ran past its 1s budget"},
		{src: "local t = os.clock() while os.clock() - t < 0.1 do end\nreturn { mirror = function() end }", wantWarning: "the top level took"},
		{src: strings.Repeat("(", 100000), wantErr: "nest deeper than", line: 1},
		{src: strings.Repeat("-", maxScriptBytes+1), wantErr: "at most"},
	} {
		res := e.load(context.Background(), []scriptSource{{Name: "x.lua", Source: []byte(tc.src)}}, 50*time.Millisecond)[0]
		short := tc.src[:min(len(tc.src), 40)]
		if !strings.Contains(res.Error, tc.wantErr) || (tc.wantErr == "" && res.Error != "") {
			t.Errorf("load %q: error %q; want %q", short, res.Error, tc.wantErr)
		}
		if res.Line != tc.line {
			t.Errorf("load %q: line %d; want %d", short, res.Line, tc.line)
		}
		if tc.wantWarning != "" && !strings.Contains(strings.Join(res.Warnings, "\n"), tc.wantWarning) {
			t.Errorf("load %q: warnings %q; want %q", short, res.Warnings, tc.wantWarning)
		}
	}
}

func TestAvnodeModule(t *testing.T) {
	te := newTestEngine(t, `return { relay_reserve = function(p)
  assert(avnode.cidr_match("10.0.0.0/8", p.ip))
  assert(not avnode.cidr_match("192.168.0.0/16", p.ip))
  assert(avnode.cidr_match("10.1.2.3", "::ffff:10.1.2.3"))
  assert(not avnode.cidr_match("10.0.0.0/8", "not an ip"))
  assert(not pcall(avnode.cidr_match, "10.0.0.0/99", p.ip))
  assert(avnode.match("Einstein.AVTR", "*.avtr"))
  assert(avnode.match("a.b.avtr", "*.avtr") and not avnode.match("avtr", "*.avtr"))
  assert(avnode.match("ab", "a?") and not avnode.match("abc", "a?"))
  assert(avnode.short_peer(p.peer) == "12*ABCDEF", avnode.short_peer(p.peer))
  assert(math.abs(avnode.now() - os.time()) <= 1)
  avnode.log("info", "hello " .. p.ip)
  print("printed", 1)
  assert(not pcall(avnode.log, "loud", "x"))
  for i = 1, 50 do avnode.log("debug", "spam") end
  return { allow = true }
end }`)
	res := te.run(t, HookRelayReserve, map[string]any{"peer": "12D3KooWxyzABCDEF", "ip": "10.9.8.7"})
	if res.Err != "" || !res.Allow {
		t.Fatalf("%+v", res)
	}
	logs := strings.Join(te.logs, "\n")
	for _, want := range []string{"info hello 10.9.8.7", "info printed\t1", "warn more than 20 log lines"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	if len(te.logs) != maxLogLines+1 {
		t.Errorf("%d log lines; want the per-call cap %d plus one notice", len(te.logs), maxLogLines)
	}
}

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true}, {"*", "anything.avtr", true}, {"", "", true}, {"", "x", false},
		{"*.spam", "a.spam", true}, {"*.spam", "a.spam.avtr", false}, {"casino-*.*", "casino-1.code", true},
		{"a*b*c", "aXbYc", true}, {"a*b*c", "aXbY", false}, {"??", "ab", true}, {"??", "abc", false},
		{strings.Repeat("*a", 50) + "b", strings.Repeat("a", 5000), false},
	} {
		if got := globMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v; want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func TestInputLimits(t *testing.T) {
	te := newTestEngine(t, `return { mirror = function(n) return { allow = true } end }`)
	for name, input := range map[string]any{
		"too big":    map[string]any{"name": strings.Repeat("x", maxInputBytes)},
		"long list":  map[string]any{"list": make([]any, maxInputList+1)},
		"too deep":   nest(maxInputDepth + 1),
		"not object": []any{1, 2},
	} {
		if res := te.run(t, HookMirror, input); res.Err == "" {
			t.Errorf("%s input was accepted", name)
		}
	}
	if res := te.run(t, HookMirror, nest(maxInputDepth-1)); res.Err != "" {
		t.Errorf("input nested %d deep refused: %s", maxInputDepth-1, res.Err)
	}
}

func nest(depth int) map[string]any {
	m := map[string]any{}
	for i := 1; i < depth; i++ {
		m = map[string]any{"x": m}
	}
	return m
}
