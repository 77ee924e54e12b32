package policy

import (
	"context"
	"fmt"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// Limits of one Lua state. gopher-lua cannot cap memory, so these bound what
// it can: Lua call depth and the value stack. Deeper recursion or a larger
// stack is an ordinary Lua error, not a crash.
const (
	callStackSize   = 200
	registrySize    = 1024 * 4
	registryMaxSize = 1024 * 64
)

// protected is what getmetatable returns for tables a script must not change
// (its input, the libraries, its globals' fallback). A __metatable field also
// makes setmetatable refuse them.
const protected = "protected"

// A logSink receives a script's avnode.log and print lines.
type logSink func(level, script, msg string)

// A sandbox is one Lua state set up for policy scripts. It is not safe for
// concurrent use; the engine pools them. Nothing a script does in one call
// survives into the next: every call gets a fresh global table, and what the
// state shares between calls (libraries, the string metatable) is read-only.
type sandbox struct {
	L        *lua.LState
	base     *lua.LTable    // what a call's globals fall back to; never reachable by scripts
	envMeta  *lua.LTable    // metatable of a call's global table
	readOnly *lua.LFunction // __newindex of every read-only table; also marks them
	length   *lua.LFunction // __len of every read-only table
	next     *lua.LFunction // next that reads through read-only tables; pairs returns it
	inext    *lua.LFunction // ipairs' iterator
	sink     logSink

	script string // the script now running, for its log lines
	logged int    // log lines emitted by the current call
}

func newSandbox(sink logSink) *sandbox {
	L := lua.NewState(lua.Options{
		SkipOpenLibs:    true,
		CallStackSize:   callStackSize,
		RegistrySize:    registrySize,
		RegistryMaxSize: registryMaxSize,
	})
	sb := &sandbox{L: L, sink: sink}
	sb.readOnly = L.NewFunction(refuseWrite)
	sb.length = L.NewFunction(sb.proxyLen)
	sb.base = sb.buildBase(openLibs(L))
	// Only now empty the state's own globals: the libraries were opened into
	// them, and buildBase has taken the few functions scripts may use.
	clearTable(L.G.Global)
	sb.envMeta = L.CreateTable(0, 2)
	sb.envMeta.RawSetString("__index", sb.base)
	sb.envMeta.RawSetString("__metatable", lua.LString(protected))
	return sb
}

// openLibs opens gopher-lua's libraries only to take functions from them.
func openLibs(L *lua.LState) map[string]*lua.LTable {
	opens := []struct {
		name string
		open lua.LGFunction
	}{
		{"_G", lua.OpenBase},
		{lua.StringLibName, lua.OpenString},
		{lua.TabLibName, lua.OpenTable},
		{lua.MathLibName, lua.OpenMath},
		{lua.OsLibName, lua.OpenOs},
	}
	libs := make(map[string]*lua.LTable, len(opens))
	for _, lib := range opens {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 1)
		libs[lib.name] = L.Get(-1).(*lua.LTable)
		L.Pop(1)
	}
	return libs
}

// buildBase assembles the globals scripts see. Left out on purpose: load,
// loadstring, loadfile, dofile, require, module (code from outside the
// compiled script), getfenv, setfenv (reach other environments), rawget,
// rawset (bypass read-only tables), collectgarbage, newproxy, string.dump,
// math.randomseed (state shared between calls), and the io, debug, package,
// coroutine and channel libraries. os keeps only time, clock and date.
func (sb *sandbox) buildBase(libs map[string]*lua.LTable) *lua.LTable {
	L := sb.L
	g := libs["_G"]
	base := L.CreateTable(0, 32)
	for _, name := range []string{"_VERSION", "assert", "error", "getmetatable", "pcall",
		"rawequal", "select", "tonumber", "tostring", "type", "xpcall"} {
		base.RawSetString(name, g.RawGetString(name))
	}
	sb.next = L.NewFunction(sb.readThrough(goFunc(g, "next")))
	sb.inext = L.NewFunction(sb.ipairsIter)
	base.RawSetString("next", sb.next)
	base.RawSetString("pairs", L.NewFunction(sb.pairs))
	base.RawSetString("ipairs", L.NewFunction(sb.ipairs))
	base.RawSetString("unpack", L.NewFunction(sb.readThrough(goFunc(g, "unpack"))))
	base.RawSetString("setmetatable", L.NewFunction(tablesOnly(goFunc(g, "setmetatable"))))
	base.RawSetString("print", L.NewFunction(sb.print))

	base.RawSetString("string", sb.readOnlyTable(sb.stringLib(libs[lua.StringLibName])))
	base.RawSetString("table", sb.readOnlyTable(sb.tableLib(libs[lua.TabLibName])))
	base.RawSetString("math", sb.readOnlyTable(copyExcept(L, libs[lua.MathLibName], "randomseed")))
	base.RawSetString("os", sb.readOnlyTable(copyOnly(L, libs[lua.OsLibName], "time", "clock", "date")))
	base.RawSetString("avnode", sb.readOnlyTable(sb.avnodeLib()))
	return base
}

// stringLib is the string library without string.dump. It also becomes the
// strings' metatable __index, so ("x"):upper() works, and that metatable is
// protected: getmetatable("") cannot hand a script the shared table.
func (sb *sandbox) stringLib(lib *lua.LTable) *lua.LTable {
	L := sb.L
	str := copyExcept(L, lib, "dump", "__index")
	mt := L.CreateTable(0, 2)
	mt.RawSetString("__index", str)
	mt.RawSetString("__metatable", lua.LString(protected))
	L.SetMetatable(lua.LString(""), mt)
	return str
}

// tableLib reads through read-only tables and refuses to change them: its
// functions work on raw table contents, which would bypass __newindex.
func (sb *sandbox) tableLib(lib *lua.LTable) *lua.LTable {
	L := sb.L
	t := L.CreateTable(0, 6)
	for _, name := range []string{"concat", "getn", "maxn"} {
		t.RawSetString(name, L.NewFunction(sb.readThrough(goFunc(lib, name))))
	}
	for _, name := range []string{"insert", "remove", "sort"} {
		t.RawSetString(name, L.NewFunction(sb.refuseReadOnly("table."+name, goFunc(lib, name))))
	}
	return t
}

func goFunc(lib *lua.LTable, name string) lua.LGFunction {
	return lib.RawGetString(name).(*lua.LFunction).GFunction
}

func copyExcept(L *lua.LState, lib *lua.LTable, drop ...string) *lua.LTable {
	out := L.NewTable()
	lib.ForEach(func(k, v lua.LValue) {
		if name, ok := k.(lua.LString); ok && !contains(drop, string(name)) {
			out.RawSetH(k, v)
		}
	})
	return out
}

func copyOnly(L *lua.LState, lib *lua.LTable, keep ...string) *lua.LTable {
	out := L.NewTable()
	for _, name := range keep {
		out.RawSetString(name, lib.RawGetString(name))
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func clearTable(t *lua.LTable) {
	var keys []lua.LValue
	t.ForEach(func(k, _ lua.LValue) { keys = append(keys, k) })
	for _, k := range keys {
		t.RawSet(k, lua.LNil)
	}
}

// readOnlyTable wraps t in an empty proxy whose metatable reads from t and
// refuses writes. Scripts never see t itself.
func (sb *sandbox) readOnlyTable(t *lua.LTable) *lua.LTable {
	mt := sb.L.CreateTable(0, 4)
	mt.RawSetString("__index", t)
	mt.RawSetString("__newindex", sb.readOnly)
	mt.RawSetString("__len", sb.length)
	mt.RawSetString("__metatable", lua.LString(protected))
	proxy := sb.L.NewTable()
	proxy.Metatable = mt
	return proxy
}

// unwrap returns the table behind a read-only proxy, or t itself. The
// readOnly function is the mark: scripts cannot reach it to forge one.
func (sb *sandbox) unwrap(t *lua.LTable) *lua.LTable {
	mt, ok := t.Metatable.(*lua.LTable)
	if !ok || mt.RawGetString("__newindex") != lua.LValue(sb.readOnly) {
		return t
	}
	if inner, ok := mt.RawGetString("__index").(*lua.LTable); ok {
		return inner
	}
	return t
}

func refuseWrite(L *lua.LState) int {
	key := L.Get(2)
	if s, ok := key.(lua.LString); ok {
		L.RaiseError("cannot set %q: this table is read-only; copy what you need into a table of your own", string(s))
	}
	L.RaiseError("cannot set a %s key: this table is read-only; copy what you need into a table of your own", key.Type())
	return 0
}

func (sb *sandbox) proxyLen(L *lua.LState) int {
	L.Push(lua.LNumber(sb.unwrap(L.CheckTable(1)).Len()))
	return 1
}

// readThrough lets a library function that reads raw table contents see
// through a read-only proxy. It only returns values, never the inner table.
func (sb *sandbox) readThrough(fn lua.LGFunction) lua.LGFunction {
	return func(L *lua.LState) int {
		if t, ok := L.Get(1).(*lua.LTable); ok {
			L.Replace(1, sb.unwrap(t))
		}
		return fn(L)
	}
}

func (sb *sandbox) refuseReadOnly(name string, fn lua.LGFunction) lua.LGFunction {
	return func(L *lua.LState) int {
		if t, ok := L.Get(1).(*lua.LTable); ok && sb.unwrap(t) != t {
			L.RaiseError("%s: this table is read-only; copy it into a table of your own first", name)
		}
		return fn(L)
	}
}

// tablesOnly keeps setmetatable to tables, as in Lua 5.1. gopher-lua would
// otherwise set the shared metatable of all numbers, booleans or functions,
// which would outlive the call.
func tablesOnly(fn lua.LGFunction) lua.LGFunction {
	return func(L *lua.LState) int {
		L.CheckTable(1)
		return fn(L)
	}
}

// pairs hands the proxy, not the inner table, to the loop: the loop's state
// is visible to the script (local f, s = pairs(t)).
func (sb *sandbox) pairs(L *lua.LState) int {
	t := L.CheckTable(1)
	L.Push(sb.next)
	L.Push(t)
	L.Push(lua.LNil)
	return 3
}

func (sb *sandbox) ipairs(L *lua.LState) int {
	t := L.CheckTable(1)
	L.Push(sb.inext)
	L.Push(t)
	L.Push(lua.LNumber(0))
	return 3
}

func (sb *sandbox) ipairsIter(L *lua.LState) int {
	t := sb.unwrap(L.CheckTable(1))
	i := L.CheckInt(2) + 1
	v := t.RawGetInt(i)
	if v == lua.LNil {
		return 0
	}
	L.Push(lua.LNumber(i))
	L.Push(v)
	return 2
}

// print goes to the node's log, never to the worker's stdout, which carries
// the protocol.
func (sb *sandbox) print(L *lua.LState) int {
	parts := make([]string, L.GetTop())
	for i := range parts {
		parts[i] = L.ToStringMeta(L.Get(i + 1)).String()
	}
	sb.emit("info", strings.Join(parts, "\t"))
	return 0
}

// Per-call limits on what a script may log, so a loop around avnode.log
// cannot flood the node's log.
const (
	maxLogLines = 20
	maxLogBytes = 4096
)

func (sb *sandbox) emit(level, msg string) {
	sb.logged++
	switch {
	case sb.logged == maxLogLines+1:
		sb.sink("warn", sb.script, fmt.Sprintf("more than %d log lines in one call; dropping the rest", maxLogLines))
		return
	case sb.logged > maxLogLines:
		return
	}
	if len(msg) > maxLogBytes {
		msg = msg[:maxLogBytes] + "…"
	}
	sb.sink(level, sb.script, msg)
}

// begin prepares the state for one call: its deadline and a fresh log quota.
func (sb *sandbox) begin(ctx context.Context) {
	sb.L.SetContext(ctx)
	sb.logged = 0
}

func (sb *sandbox) end() {
	sb.L.RemoveContext()
	sb.script = ""
}

// newEnv is a call's global table: empty, falling back to the shared base.
// Globals a script sets land here and are gone after the call.
func (sb *sandbox) newEnv() *lua.LTable {
	env := sb.L.CreateTable(0, 4)
	env.RawSetString("_G", env)
	env.Metatable = sb.envMeta
	return env
}

// instantiate runs a script's top level in a fresh environment and returns
// the table of hooks it returns.
func (sb *sandbox) instantiate(s *compiled) (*lua.LTable, error) {
	sb.script = s.name
	fn := sb.L.NewFunctionFromProto(s.proto)
	fn.Env = sb.newEnv()
	ret, err := sb.pcall(fn)
	if err != nil {
		return nil, err
	}
	t, ok := ret.(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("the script returned a %s; it must end with return { hook_name = function(input) … end }", ret.Type())
	}
	return sb.unwrap(t), nil
}

func (sb *sandbox) pcall(fn *lua.LFunction, args ...lua.LValue) (lua.LValue, error) {
	L := sb.L
	L.Push(fn)
	for _, a := range args {
		L.Push(a)
	}
	if err := L.PCall(len(args), 1, nil); err != nil {
		return nil, err
	}
	ret := L.Get(-1)
	L.Pop(1)
	return ret, nil
}

func (sb *sandbox) close() { sb.L.Close() }
