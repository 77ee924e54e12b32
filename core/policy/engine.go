package policy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// Limits on scripts, checked before gopher-lua sees them.
const (
	maxScriptBytes = 256 << 10
	maxScripts     = 16
)

// minLoadBudget is the least time a script's top level gets when it is
// loaded. It also runs within the budget of every call, but a load that
// fails on a momentarily busy machine would stop the node from starting;
// a top level slower than a call's budget only draws a warning.
const minLoadBudget = time.Second

// An engine runs loaded scripts' hooks in a bounded pool of sandboxes. It
// lives in the worker process; nothing in the node runs Lua.
type engine struct {
	sink  logSink
	slots chan struct{} // one per call allowed to run at once
	idle  chan *sandbox // sandboxes ready for reuse
	// stuck, when set, is called if a script's top level runs past its
	// budget plus overrunGrace: it is stuck in one Go operation that the
	// Lua deadline cannot interrupt. The worker exits then.
	stuck func(script string)

	mu      sync.RWMutex
	scripts []*compiled
}

// compiled is a script parsed and compiled once; its prototype is shared by
// every sandbox, which gopher-lua allows.
type compiled struct {
	name  string
	proto *lua.FunctionProto
	hooks map[string]bool
}

func newEngine(sink logSink, concurrency int) *engine {
	return &engine{
		sink:  sink,
		slots: make(chan struct{}, concurrency),
		idle:  make(chan *sandbox, concurrency),
	}
}

// A scriptError is a problem in a script's source, on a line when known.
type scriptError struct {
	Line int
	Msg  string
}

func (e *scriptError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

// compile checks a script's size and nesting, then parses and compiles it.
// The nesting check must come first: gopher-lua's parser recurses per level.
func compile(name string, src []byte) (*lua.FunctionProto, error) {
	if len(src) > maxScriptBytes {
		return nil, &scriptError{Msg: fmt.Sprintf("the script is %d bytes; at most %d are allowed", len(src), maxScriptBytes)}
	}
	if err := checkNesting(src, maxNesting); err != nil {
		return nil, err
	}
	chunk, err := parse.Parse(bytes.NewReader(src), name)
	if err != nil {
		var perr *parse.Error
		if errors.As(err, &perr) {
			return nil, &scriptError{Line: max(perr.Pos.Line, 0), Msg: syntaxMessage(perr)}
		}
		return nil, &scriptError{Msg: err.Error()}
	}
	proto, err := lua.Compile(chunk, name)
	if err != nil {
		var cerr *lua.CompileError
		if errors.As(err, &cerr) {
			return nil, &scriptError{Line: cerr.Line, Msg: cerr.Message}
		}
		return nil, &scriptError{Msg: err.Error()}
	}
	return proto, nil
}

// load compiles the scripts and runs each top level once, to learn its
// hooks. The engine takes the scripts only if every one loads.
func (e *engine) load(ctx context.Context, sources []scriptSource, budget time.Duration) []loadResult {
	results := make([]loadResult, len(sources))
	scripts := make([]*compiled, 0, len(sources))
	for i, src := range sources {
		s, err := e.loadOne(ctx, src, budget, &results[i])
		results[i].Name = src.Name
		if err != nil {
			results[i].Error = err.Error()
			var serr *scriptError
			if errors.As(err, &serr) {
				results[i].Error, results[i].Line = serr.Msg, serr.Line
			}
			continue
		}
		scripts = append(scripts, s)
	}
	if len(scripts) == len(sources) {
		e.mu.Lock()
		e.scripts = scripts
		e.mu.Unlock()
	}
	return results
}

func (e *engine) loadOne(ctx context.Context, src scriptSource, budget time.Duration, res *loadResult) (*compiled, error) {
	proto, err := compile(src.Name, src.Source)
	if err != nil {
		return nil, err
	}
	s := &compiled{name: src.Name, proto: proto}
	limit := max(budget, minLoadBudget)
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	sb, err := e.acquire(ctx)
	if err != nil {
		return nil, err
	}
	if e.stuck != nil {
		watchdog := time.AfterFunc(limit+overrunGrace, func() { e.stuck(src.Name) })
		defer watchdog.Stop()
	}
	sb.begin(ctx)
	began := time.Now()
	hooks, err := sb.instantiate(s)
	took := time.Since(began)
	if err == nil {
		s.hooks, res.Warnings, err = hooksOf(hooks)
	} else {
		err = explain(ctx, err, src.Name, limit)
	}
	if err == nil && took > budget {
		res.Warnings = append(res.Warnings, fmt.Sprintf("the top level took %v, more than the %v budget of a call; it runs on every call, so keep it to settings and functions", took.Round(time.Millisecond), budget))
	}
	sb.end()
	e.release(sb, err == nil)
	if err != nil {
		return nil, err
	}
	for name := range s.hooks {
		res.Hooks = append(res.Hooks, name)
	}
	sort.Strings(res.Hooks)
	return s, nil
}

// hooksOf checks the table a script returned: known hooks must be functions;
// unknown names are only warned about, so a script written for a newer node
// still loads.
func hooksOf(t *lua.LTable) (map[string]bool, []string, error) {
	hooks := map[string]bool{}
	var warnings []string
	var err error
	t.ForEach(func(k, v lua.LValue) {
		name, isString := k.(lua.LString)
		_, known := hookSpecs[string(name)]
		switch {
		case !isString:
			warnings = append(warnings, fmt.Sprintf("the hooks table has a %s key, which is ignored", k.Type()))
		case !known:
			warnings = append(warnings, fmt.Sprintf("unknown hook %q is ignored; hooks are %s", string(name), hookNames()))
		case v.Type() != lua.LTFunction:
			err = &scriptError{Msg: fmt.Sprintf("hook %s is a %s; it must be a function", string(name), v.Type())}
		default:
			hooks[string(name)] = true
		}
	})
	if err == nil && len(hooks) == 0 {
		warnings = append(warnings, "the script defines no hooks, so it is never called")
	}
	sort.Strings(warnings)
	return hooks, warnings, err
}

// call runs hook through the scripts that define it, in order, until one
// has an opinion. Any error ends the call: the node applies the fallback.
func (e *engine) call(ctx context.Context, hook string, input []byte, budget time.Duration) result {
	spec, ok := hookSpecs[hook]
	if !ok {
		return result{Err: fmt.Sprintf("unknown hook %q", hook)}
	}
	scripts := e.defining(hook)
	if len(scripts) == 0 {
		return result{}
	}
	data, err := decodeInput(input)
	if err != nil {
		return result{Err: err.Error()}
	}
	sb, err := e.acquire(ctx)
	if err != nil {
		return result{Err: err.Error(), Busy: true}
	}
	res, clean := e.run(ctx, sb, spec, hook, data, scripts, budget)
	e.release(sb, clean)
	return res
}

func (e *engine) defining(hook string) []*compiled {
	e.mu.RLock()
	defer e.mu.RUnlock()
	var out []*compiled
	for _, s := range e.scripts {
		if s.hooks[hook] {
			out = append(out, s)
		}
	}
	return out
}

// run calls the hook in each script; clean is false when a script failed,
// so the sandbox is not reused.
func (e *engine) run(ctx context.Context, sb *sandbox, spec hookSpec, hook string, data map[string]any, scripts []*compiled, budget time.Duration) (res result, clean bool) {
	sb.begin(ctx)
	defer sb.end()
	input := sb.toLua(data)
	for _, s := range scripts {
		ret, err := sb.callHook(s, hook, input)
		if err == nil && ctx.Err() != nil {
			err = ctx.Err() // the answer came too late to count
		}
		if err != nil {
			return result{Script: s.name, Err: describe(s.name, explain(ctx, err, s.name, budget))}, false
		}
		if ret == lua.LNil {
			continue
		}
		res, err := sb.verdict(spec, hook, ret)
		if err != nil {
			return result{Script: s.name, Err: fmt.Sprintf("%s: %v", s.name, err)}, true
		}
		res.Script = s.name
		if spec.order {
			res.Order = completeOrder(res.Order, data)
		}
		return res, true
	}
	return result{}, true
}

// callHook runs the script's top level afresh, so nothing from an earlier
// call (globals, upvalues) survives, then calls the hook.
func (sb *sandbox) callHook(s *compiled, hook string, input lua.LValue) (lua.LValue, error) {
	hooks, err := sb.instantiate(s)
	if err != nil {
		return nil, err
	}
	fn, ok := hooks.RawGetString(hook).(*lua.LFunction)
	if !ok {
		return lua.LNil, nil // this run of the script did not define it: no opinion
	}
	return sb.pcall(fn, input)
}

func (e *engine) acquire(ctx context.Context) (*sandbox, error) {
	select {
	case e.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, errors.New("no Lua state came free within the budget; the worker is overloaded")
	}
	select {
	case sb := <-e.idle:
		return sb, nil
	default:
		return newSandbox(e.sink), nil
	}
}

// release returns a sandbox to the pool. One whose call failed is closed
// instead: an error may have left it mid-way (a grown stack, say).
func (e *engine) release(sb *sandbox, reuse bool) {
	if !reuse {
		sb.close()
	} else {
		select {
		case e.idle <- sb:
		default:
			sb.close()
		}
	}
	<-e.slots
}

// luaPos finds "name:LINE:" at the start of a Lua error message.
var luaPos = regexp.MustCompile(`^(.*?):(\d+):\s*`)

// explain turns a Lua failure into a scriptError, naming a budget overrun
// as such rather than as gopher-lua's "context deadline exceeded".
func explain(ctx context.Context, err error, name string, budget time.Duration) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &scriptError{Msg: fmt.Sprintf("ran past its %v budget", budget)}
	}
	var serr *scriptError
	if errors.As(err, &serr) {
		return serr
	}
	msg := err.Error()
	var aerr *lua.ApiError
	if errors.As(err, &aerr) {
		msg = aerr.Object.String()
	}
	msg = strings.TrimSpace(msg)
	if m := luaPos.FindStringSubmatch(msg); m != nil && m[1] == name {
		line, _ := strconv.Atoi(m[2])
		return &scriptError{Line: line, Msg: msg[len(m[0]):]}
	}
	return &scriptError{Msg: msg}
}

// describe formats a script's error as "name:line: message".
func describe(name string, err error) string {
	var serr *scriptError
	if errors.As(err, &serr) && serr.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", name, serr.Line, serr.Msg)
	}
	if errors.As(err, &serr) {
		return fmt.Sprintf("%s: %s", name, serr.Msg)
	}
	return fmt.Sprintf("%s: %v", name, err)
}

// syntaxMessage says a parse error once: gopher-lua's message is most
// often the bare words "syntax error", which said next to the token read
// `syntax error near "=": syntax error`.
func syntaxMessage(e *parse.Error) string {
	msg := strings.TrimSpace(e.Message)
	at := fmt.Sprintf("unexpected %q", e.Token)
	if e.Token == "" || e.Token == "<eof>" {
		at = "unexpected end of the script"
	}
	if msg == "" || msg == "syntax error" {
		return "syntax error: " + at
	}
	return fmt.Sprintf("syntax error, %s: %s", at, msg)
}
