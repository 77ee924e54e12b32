package policy

import (
	"context"
	"strings"
	"testing"
)

// probeScript runs the probe named by the record's name. A probe escapes
// the sandbox if it runs without error and returns something true.
const probeScript = `
local probes = {
  ["os.execute"]          = function() return os.execute("true") end,
  ["os.exit"]             = function() return os.exit(3) end,
  ["os.getenv"]           = function() return os.getenv("PATH") end,
  ["os.remove"]           = function() return os.remove("/tmp/x") end,
  ["io.open"]             = function() return io.open("/etc/passwd") end,
  ["io via _G"]           = function() return _G.io.open end,
  ["require"]             = function() return require("os") end,
  ["dofile"]              = function() return dofile("/etc/passwd") end,
  ["loadfile"]            = function() return loadfile("/etc/passwd") end,
  ["load"]                = function() return load(function() return nil end) end,
  ["loadstring"]          = function() return loadstring("return 1") end,
  ["getfenv(0).os"]       = function() return getfenv(0).os.execute end,
  ["setfenv"]             = function() return setfenv(1, {}) end,
  ["string.dump"]         = function() return string.dump(function() end) end,
  ["dump as method"]      = function() return ("x").dump(function() end) end,
  ["debug"]               = function() return debug.getregistry() end,
  ["package"]             = function() return package.loaded end,
  ["module"]              = function() return module("x") end,
  ["collectgarbage"]      = function() return collectgarbage("count") end,
  ["newproxy"]            = function() return newproxy(true) end,
  ["coroutine"]           = function() return coroutine.create(print) end,
  ["rawset input"]        = function(r) rawset(r, "name", "x"); return r.name == "x" end,
  ["rawget library"]      = function() return rawget(string, "rep") end,
  ["write input"]         = function(r) r.name = "changed"; return true end,
  ["write new key"]       = function(r) r.extra = 1; return true end,
  ["write nested input"]  = function(r) r.tags[1] = "changed"; return true end,
  ["setmetatable input"]  = function(r) setmetatable(r, nil); r.name = "x"; return true end,
  ["getmetatable input"]  = function(r) local mt = getmetatable(r); mt.__newindex = nil; return true end,
  ["table.insert input"]  = function(r) table.insert(r.tags, "x"); return true end,
  ["table.remove input"]  = function(r) table.remove(r.tags); return true end,
  ["table.sort input"]    = function(r) table.sort(r.tags); return true end,
  ["pairs state"]         = function(r) local _, s = pairs(r); s.name = "x"; return true end,
  ["string metatable"]    = function() getmetatable("").__index.upper = nil; return true end,
  ["write string lib"]    = function() string.upper = nil; return true end,
  ["write os lib"]        = function() os.execute = print; return true end,
  ["math.randomseed"]     = function() math.randomseed(1); return true end,
  ["number metatable"]    = function() setmetatable(1, { __index = {} }); return true end,
  ["globals metatable"]   = function() setmetatable(_G, nil); return true end,
  ["avnode write"]        = function() avnode.now = nil; return true end,
  ["control"]             = function(r) return os.time() > 0 and r.name end,
}
return {
  store_record = function(r)
    local probe = probes[r.name]
    if not probe then error("no probe " .. r.name) end
    local ok, res = pcall(probe, r)
    if ok and res then return { allow = true, reason = "escaped: " .. tostring(res) } end
    return { allow = false, reason = tostring(res) }
  end,
}`

func TestSandboxProbes(t *testing.T) {
	p := start(t, Options{Scripts: []string{writeScript(t, "probe.lua", probeScript)}})
	names := []string{"os.execute", "os.exit", "os.getenv", "os.remove", "io.open", "io via _G",
		"require", "dofile", "loadfile", "load", "loadstring", "getfenv(0).os", "setfenv",
		"string.dump", "dump as method", "debug", "package", "module", "collectgarbage", "newproxy",
		"coroutine", "rawset input", "rawget library", "write input", "write new key",
		"write nested input", "setmetatable input", "getmetatable input", "table.insert input",
		"table.remove input", "table.sort input", "pairs state", "string metatable",
		"write string lib", "write os lib", "math.randomseed", "number metatable",
		"globals metatable", "avnode write"}
	control := p.Decide(context.Background(), HookStoreRecord, record("control"))
	if !control.Allow {
		t.Fatalf("the control probe, which uses only allowed things, did not get through: %+v", control)
	}
	for _, name := range names {
		in := record(name)
		in["tags"] = []any{"b", "a"}
		v := p.Decide(context.Background(), HookStoreRecord, in)
		if v.Fallback || !v.Decided {
			t.Errorf("probe %s: the hook itself failed: %+v", name, v)
			continue
		}
		if v.Allow {
			t.Errorf("probe %s escaped the sandbox: %s", name, v.Reason)
		}
		t.Logf("%-20s %s", name, v.Reason)
	}
	// The failed writes changed nothing the next call sees.
	v := p.Decide(context.Background(), HookStoreRecord, record("no such probe"))
	if !v.Fallback || !strings.Contains(v.Err, "no probe no such probe") {
		t.Fatalf("after the probes: %+v", v)
	}
}

// TestNoStateLeaks checks that globals, upvalues and library changes made in
// one call are gone in the next, on the same pooled Lua states.
func TestNoStateLeaks(t *testing.T) {
	p := start(t, Options{Scripts: []string{writeScript(t, "leak.lua", `
local calls = 0
return {
  mirror = function(n)
    calls = calls + 1
    local seen = counter
    counter = (counter or 0) + 1
    rawequal = nil
    _G.marker = "set"
    pcall(setmetatable, _G, { __index = function() return "leaked" end })
    if seen ~= nil or calls ~= 1 or leftover ~= nil then
      return { allow = true, reason = "state survived: " .. tostring(seen) .. " " .. calls }
    end
    leftover = true
    return { allow = false, reason = "fresh" }
  end,
}`)}})
	for i := 0; i < 50; i++ {
		v := p.Decide(context.Background(), HookMirror, map[string]any{"name": "x.avtr"})
		if v.Fallback || v.Allow || v.Reason != "fresh" {
			t.Fatalf("call %d: %+v", i, v)
		}
	}
}
