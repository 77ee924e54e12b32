package policy

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for Options' zero values.
const (
	DefaultBudget        = 50 * time.Millisecond
	DefaultWatchInterval = 2 * time.Second
	minMemoryMB          = 128
)

// drainWait is how long a replaced or closed worker gets to finish the calls
// it has before it is killed.
const drainWait = 5 * time.Second

// Options configure a Policy.
type Options struct {
	Scripts       []string          // script file paths, in order: the first with an opinion decides
	Budget        time.Duration     // per hook call, all scripts together; default 50ms
	MemoryMB      int               // address space the worker may add to what the Go runtime maps; default 512, at least 128
	Fallbacks     map[string]string // hook -> "allow" | "deny" | "default"; unset hooks keep their defaults
	WatchInterval time.Duration     // poll the scripts' mtime and size and reload on change; 0 = 2s; negative = off
	Logger        *slog.Logger
	Registerer    prometheus.Registerer // may be nil

	// grace overrides overrunGrace, for tests that must tell a loop the Lua
	// deadline stopped from one the node killed, on a machine too busy for
	// 250 ms to be enough.
	grace time.Duration
}

var errInputTooLarge = errors.New("input too large")

// A Verdict is a policy's answer to one hook call.
type Verdict struct {
	Decided  bool     `json:"decided"`          // false: no script had an opinion, or fallback "default": the caller's built-in default applies
	Allow    bool     `json:"allow"`            // for allow/deny hooks
	Order    []string `json:"order,omitempty"`  // for ordering hooks: every candidate's peer id, preferred ones first
	Reason   string   `json:"reason,omitempty"` // the script's reason, or why the fallback was taken
	Script   string   `json:"script,omitempty"` // which script decided ("" when none)
	Fallback bool     `json:"fallback"`         // the hook errored or overran and its fallback was taken
	Err      string   `json:"err,omitempty"`    // why, when Fallback
}

// ScriptInfo describes one configured script.
type ScriptInfo struct {
	Path      string    `json:"path"`
	SHA256    string    `json:"sha256"` // of the version in use
	Hooks     []string  `json:"hooks"`
	Warnings  []string  `json:"warnings,omitempty"`
	LoadedAt  time.Time `json:"loaded_at"`
	LastError string    `json:"last_error,omitempty"` // why the latest reload of this file failed; "" if it did not
}

// A LoadError says which script failed to load, and where.
type LoadError struct {
	Path string
	Line int // 0 when not tied to a line
	Msg  string
}

func (e *LoadError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("policy: %s:%d: %s", e.Path, e.Line, e.Msg)
	}
	return fmt.Sprintf("policy: %s: %s", e.Path, e.Msg)
}

// loadFailure joins the errors of the scripts that failed to load.
func loadFailure(results []loadResult) error {
	var errs []error
	for _, r := range results {
		if r.Error != "" {
			errs = append(errs, &LoadError{Path: r.Name, Line: r.Line, Msg: r.Error})
		}
	}
	return errors.Join(errs...)
}

// A Policy runs the configured scripts in a supervised worker process. The
// nil *Policy is valid: it has no hooks and decides nothing.
type Policy struct {
	opts      Options
	fallbacks map[string]string
	log       *slog.Logger
	metrics   *metrics
	failures  failureLog
	refused   refusals
	restarts  atomic.Int64
	peers     *peerBudget

	mu    sync.RWMutex
	sup   *supervisor // nil with no scripts, and after Close
	hooks map[string]bool
	infos []ScriptInfo

	reloadMu sync.Mutex // one reload at a time; guards opts.Scripts
	closed   bool       // under reloadMu
	watching bool       // under reloadMu, or before Start returns

	stop      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup // the watcher and retiring supervisors
}

// Start loads the scripts in a fresh worker. A script that fails to compile
// or load fails Start with a *LoadError naming file and line. With no
// scripts, the Policy never starts a worker. ctx bounds the loading only;
// the worker runs until Close.
func Start(ctx context.Context, opts Options) (*Policy, error) {
	opts, fallbacks, err := normalize(opts)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	p := &Policy{opts: opts, fallbacks: fallbacks, log: opts.Logger, metrics: m, peers: newPeerBudget(), stop: make(chan struct{})}
	p.failures.log = p.log
	for _, path := range opts.Scripts {
		p.infos = append(p.infos, ScriptInfo{Path: path})
	}
	if len(opts.Scripts) == 0 {
		return p, nil
	}
	if err := p.load(ctx); err != nil {
		return nil, err
	}
	p.startWatch()
	return p, nil
}

// startWatch starts the watcher once, when there are scripts to watch.
func (p *Policy) startWatch() {
	if p.opts.WatchInterval > 0 && !p.watching {
		p.watching = true
		p.wg.Add(1)
		go p.watch(statScripts(p.opts.Scripts))
	}
}

// SetScripts loads a new list of scripts (the config's policy.scripts
// changed) and, if every one loads, makes it the one in use; otherwise the
// scripts in use stay. An empty list is refused: running without the
// operator's policy takes a restart, as at start.
func (p *Policy) SetScripts(paths []string) error {
	if p == nil {
		return errors.New("policy: not running")
	}
	if len(paths) == 0 {
		return errors.New("policy.scripts is now empty; the scripts in use stay until the node restarts")
	}
	if len(paths) > maxScripts {
		return fmt.Errorf("policy: %d scripts configured; at most %d are allowed", len(paths), maxScripts)
	}
	p.reloadMu.Lock()
	defer p.reloadMu.Unlock()
	if p.closed {
		return errors.New("policy: reload after Close")
	}
	old := p.opts.Scripts
	p.opts.Scripts = slices.Clone(paths)
	if err := p.reloadLocked(); err != nil {
		p.opts.Scripts = old
		return err
	}
	p.startWatch()
	return nil
}

// Paths are the scripts in use (the config's policy.scripts at start, or
// at the last SetScripts that loaded).
func (p *Policy) Paths() []string {
	if p == nil {
		return nil
	}
	p.reloadMu.Lock()
	defer p.reloadMu.Unlock()
	return slices.Clone(p.opts.Scripts)
}

func normalize(opts Options) (Options, map[string]string, error) {
	if opts.Budget == 0 {
		opts.Budget = DefaultBudget
	}
	if opts.Budget < 0 {
		return opts, nil, fmt.Errorf("policy: budget %v is negative", opts.Budget)
	}
	if opts.MemoryMB == 0 {
		opts.MemoryMB = DefaultMemoryMB
	}
	if opts.MemoryMB < 0 {
		return opts, nil, fmt.Errorf("policy: memory limit %d MB is negative", opts.MemoryMB)
	}
	if opts.WatchInterval == 0 {
		opts.WatchInterval = DefaultWatchInterval
	}
	if len(opts.Scripts) > maxScripts {
		return opts, nil, fmt.Errorf("policy: %d scripts configured; at most %d are allowed", len(opts.Scripts), maxScripts)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MemoryMB < minMemoryMB {
		// Below this the Go runtime's own growth (heap arenas, thread
		// stacks) can exhaust the allowance during ordinary calls.
		opts.Logger.Warn("policy memory limit raised to what a worker needs", "configured_mb", opts.MemoryMB, "used_mb", minMemoryMB)
		opts.MemoryMB = minMemoryMB
	}
	opts.Scripts = append([]string(nil), opts.Scripts...)
	fallbacks, err := resolveFallbacks(opts.Fallbacks)
	return opts, fallbacks, err
}

func (p *Policy) workerConfig() workerConfig {
	return workerConfig{
		memoryMB: p.opts.MemoryMB,
		budget:   p.opts.Budget,
		grace:    cmp.Or(p.opts.grace, overrunGrace),
		log:      p.log,
		restarted: func() {
			p.restarts.Add(1)
			p.metrics.restarts.Inc()
		},
		spares: func(delta int) { p.metrics.spares.Add(float64(delta)) },
	}
}

// load reads the scripts, starts a worker with them and, if every script
// loads, makes it the current one.
func (p *Policy) load(ctx context.Context) error {
	sources, sums, err := readScripts(p.opts.Scripts)
	if err != nil {
		p.noteFailure(err)
		return err
	}
	sup, results, err := startSupervisor(ctx, p.workerConfig(), sources)
	if err != nil {
		p.noteFailure(err)
		return err
	}
	p.swap(sup, results, sums)
	return nil
}

func readScripts(paths []string) ([]scriptSource, []string, error) {
	sources := make([]scriptSource, len(paths))
	sums := make([]string, len(paths))
	for i, path := range paths {
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, &LoadError{Path: path, Msg: fmt.Sprintf("cannot read the script: %v", err)}
		}
		sum := sha256.Sum256(src)
		sources[i] = scriptSource{Name: path, Source: src}
		sums[i] = hex.EncodeToString(sum[:])
	}
	return sources, sums, nil
}

// swap makes sup current and retires the previous worker, which finishes the
// calls it has.
func (p *Policy) swap(sup *supervisor, results []loadResult, sums []string) {
	hooks := map[string]bool{}
	infos := make([]ScriptInfo, len(results))
	now := time.Now()
	for i, r := range results {
		infos[i] = ScriptInfo{Path: r.Name, SHA256: sums[i], Hooks: r.Hooks, Warnings: r.Warnings, LoadedAt: now}
		for _, h := range r.Hooks {
			hooks[h] = true
		}
		for _, w := range r.Warnings {
			p.log.Warn("policy script warning", "script", r.Name, "warning", w)
		}
	}
	p.mu.Lock()
	old := p.sup
	p.sup, p.hooks, p.infos = sup, hooks, infos
	p.mu.Unlock()
	if old != nil {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			old.close(drainWait)
		}()
	}
}

// noteFailure records a failed load against the scripts it concerns, or
// against all of them when it concerns none in particular.
func (p *Policy) noteFailure(err error) {
	byPath := map[string]string{}
	for _, le := range loadErrors(err) {
		byPath[le.Path] = le.Error()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.infos {
		switch {
		case len(byPath) == 0:
			p.infos[i].LastError = err.Error()
		default:
			p.infos[i].LastError = byPath[p.infos[i].Path]
		}
	}
}

func loadErrors(err error) []*LoadError {
	var le *LoadError
	if errors.As(err, &le) {
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			var out []*LoadError
			for _, e := range joined.Unwrap() {
				out = append(out, loadErrors(e)...)
			}
			return out
		}
		return []*LoadError{le}
	}
	return nil
}

// Decide calls hook with input, marshalled to JSON, through the scripts in
// order. It never fails: errors, overruns and a down worker yield the
// hook's fallback, marked Fallback.
func (p *Policy) Decide(ctx context.Context, hook string, input any) Verdict {
	return p.DecideFor(ctx, hook, "", input)
}

// DecideFor is Decide for input a peer sent (its record, for store_record),
// under that peer's budget: a peer whose inputs keep making the scripts fail
// or overrun gets the hook's fallback at once for a while, without using the
// worker; other peers are not affected. An empty peer has no budget.
func (p *Policy) DecideFor(ctx context.Context, hook, peer string, input any) Verdict {
	if p == nil {
		return Verdict{}
	}
	start := time.Now()
	v := p.decide(ctx, hook, peer, input)
	p.metrics.observe(hook, v, time.Since(start))
	p.noteRefusal(hook, peer, v)
	return v
}

func (p *Policy) decide(ctx context.Context, hook, peer string, input any) Verdict {
	mode, known := p.fallbacks[hook]
	if !known {
		return Verdict{Fallback: true, Err: fmt.Sprintf("policy: unknown hook %q; hooks are %s", hook, hookNames())}
	}
	p.mu.RLock()
	sup, defined := p.sup, p.hooks[hook]
	p.mu.RUnlock()
	if sup == nil || !defined {
		return Verdict{}
	}
	if peer != "" {
		if err := p.peers.spent(peer); err != nil {
			return p.fallback(hook, mode, "", err)
		}
	}
	raw, err := json.Marshal(input)
	if err == nil && len(raw) > maxInputBytes {
		err = fmt.Errorf("input is %d bytes of JSON; at most %d are allowed: %w", len(raw), maxInputBytes, errInputTooLarge)
	}
	if err != nil {
		p.charge(peer, err)
		return p.fallback(hook, mode, "", err)
	}
	budget := p.opts.Budget
	if deadline, ok := ctx.Deadline(); ok {
		budget = min(budget, time.Until(deadline))
	}
	if budget <= 0 {
		return p.fallback(hook, mode, "", context.DeadlineExceeded)
	}
	res, err := sup.call(ctx, hook, raw, budget)
	// A reload swapped workers while this call was on its way: the worker
	// that replaced it answers. Reloads in quick succession may retire that
	// one too.
	for tries := 0; errors.Is(err, errRetired) && tries < 3; tries++ {
		p.mu.RLock()
		next := p.sup
		p.mu.RUnlock()
		if next == nil || next == sup {
			break
		}
		sup = next
		res, err = sup.call(ctx, hook, raw, budget)
	}
	if err == nil && res.Err != "" {
		err = errors.New(res.Err)
		if !res.Busy {
			err = &scriptFailure{res.Err}
		}
	}
	if err != nil {
		p.charge(peer, err)
		return p.fallback(hook, mode, res.Script, err)
	}
	return Verdict{Decided: res.Decided, Allow: res.Allow, Order: res.Order, Reason: res.Reason, Script: res.Script}
}

// scriptFailure is a script's own failure on a call, as the worker told it.
type scriptFailure struct{ msg string }

func (e *scriptFailure) Error() string { return e.msg }

// charge counts a failure against peer's budget when its input is to blame:
// the scripts failed or overran on it, or it was too large. A worker that was
// down, retiring or too busy to run the call is not the input's doing.
func (p *Policy) charge(peer string, err error) {
	var sf *scriptFailure
	if peer != "" && (errors.As(err, &sf) || errors.Is(err, errStuck) || errors.Is(err, errInputTooLarge)) {
		p.peers.failed(peer)
	}
}

func (p *Policy) fallback(hook, mode, script string, err error) Verdict {
	p.failures.note(hook, script, mode, err)
	v := Verdict{Fallback: true, Script: script, Err: err.Error(), Reason: "policy fallback " + mode + ": " + err.Error()}
	switch mode {
	case FallbackAllow:
		v.Decided, v.Allow = true, true
	case FallbackDeny:
		v.Decided = true
	}
	return v
}

// Has reports whether any loaded script defines hook, so callers can skip
// building its input when none does.
func (p *Policy) Has(hook string) bool {
	if p == nil {
		return false
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.hooks[hook]
}

// Reload re-reads the script files and loads them into a new worker. It
// swaps only if every script loads; otherwise the previous scripts stay in
// use and the error says which file failed where.
func (p *Policy) Reload() error {
	if p == nil {
		return nil
	}
	p.reloadMu.Lock()
	defer p.reloadMu.Unlock()
	if p.closed {
		return errors.New("policy: reload after Close")
	}
	if len(p.opts.Scripts) == 0 {
		return nil
	}
	return p.reloadLocked()
}

// reloadLocked loads opts.Scripts and counts the reload; reloadMu is held.
func (p *Policy) reloadLocked() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := p.load(ctx)
	p.metrics.reloaded(err)
	return err
}

// Scripts describes the configured scripts, in order.
func (p *Policy) Scripts() []ScriptInfo {
	if p == nil {
		return nil
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]ScriptInfo, len(p.infos))
	for i, info := range p.infos {
		info.Hooks = append([]string(nil), info.Hooks...)
		info.Warnings = append([]string(nil), info.Warnings...)
		out[i] = info
	}
	return out
}

// Close stops the watcher and the worker, letting calls in flight finish.
func (p *Policy) Close() {
	if p == nil {
		return
	}
	p.closeOnce.Do(func() {
		close(p.stop)
		p.reloadMu.Lock()
		p.closed = true
		p.reloadMu.Unlock()
		p.mu.Lock()
		sup := p.sup
		p.sup, p.hooks = nil, nil
		p.mu.Unlock()
		if sup != nil {
			sup.close(drainWait)
		}
		p.wg.Wait()
	})
}

// fileStat is what the watcher compares: cheap, and enough to see an edit.
type fileStat struct {
	mtime time.Time
	size  int64
	err   bool
}

func statScripts(paths []string) []fileStat {
	out := make([]fileStat, len(paths))
	for i, path := range paths {
		fi, err := os.Stat(path)
		if err != nil {
			out[i] = fileStat{err: true}
			continue
		}
		out[i] = fileStat{mtime: fi.ModTime(), size: fi.Size()}
	}
	return out
}

// watch reloads when a script file changes. A failed reload is logged and
// not retried until the files change again.
func (p *Policy) watch(seen []fileStat) {
	defer p.wg.Done()
	t := time.NewTicker(p.opts.WatchInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		paths := p.Paths()
		now := statScripts(paths)
		if equalStats(now, seen) {
			continue
		}
		seen = now
		if err := p.Reload(); err != nil {
			p.log.Warn("policy scripts changed but did not load; keeping the previous ones", "err", err)
			continue
		}
		p.log.Info("policy scripts reloaded", "scripts", paths)
	}
}

func equalStats(a, b []fileStat) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].mtime.Equal(b[i].mtime) || a[i].size != b[i].size || a[i].err != b[i].err {
			return false
		}
	}
	return true
}

// failureLog logs hook failures at most once per hook per failureEvery, so
// a broken script on a busy path does not flood the log; the metrics count
// every one.
type failureLog struct {
	log        *slog.Logger
	mu         sync.Mutex
	last       map[string]time.Time
	suppressed map[string]int
}

const failureEvery = 10 * time.Second

func (f *failureLog) note(hook, script, mode string, err error) {
	f.mu.Lock()
	if f.last == nil {
		f.last, f.suppressed = map[string]time.Time{}, map[string]int{}
	}
	if time.Since(f.last[hook]) < failureEvery {
		f.suppressed[hook]++
		f.mu.Unlock()
		return
	}
	f.last[hook] = time.Now()
	suppressed := f.suppressed[hook]
	f.suppressed[hook] = 0
	f.mu.Unlock()
	f.log.Warn("policy hook failed; fallback applied", "hook", hook, "script", script,
		"fallback", mode, "err", err, "similar_since_last", suppressed)
}
