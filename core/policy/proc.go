package policy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/avnode/avnode/core/frame"
)

const (
	// overrunGrace is how long past its budget the node waits for a call
	// before deciding the worker is stuck inside one long Go operation (a
	// huge allocation, a pathological pattern match) that no Lua deadline
	// interrupts, and kills it.
	overrunGrace = 250 * time.Millisecond
	// helloTimeout bounds a worker's start-up, race-detector binaries included.
	helloTimeout = 30 * time.Second
	// maxStderrLines are logged per worker process: a Go crash dumps every
	// goroutine, and the first lines say what happened.
	maxStderrLines = 20
)

var (
	errOverrun = errors.New("no answer within the budget")
	// errStuck: a call got no answer within its budget and the grace; its
	// worker is stuck in one long Go operation and is replaced.
	errStuck = errors.New("policy worker stuck")
	// errRetired: the worker was replaced by a reload or closed before it
	// took the call. The caller may ask the worker that replaced it.
	errRetired = errors.New("policy worker retired")
)

// A proc is the node's side of one worker process.
type proc struct {
	cmd     *exec.Cmd
	log     *slog.Logger
	stderr  *stderrLog
	started time.Time

	wmu       sync.Mutex    // one frame at a time on stdin
	stdin     *os.File      // the worker's stdin; non-blocking, so writes take a deadline
	quit      chan struct{} // closed by close: no new requests; stdin is closed
	quitOnce  sync.Once
	stdinOnce sync.Once
	ready     chan struct{} // closed when the worker's hello arrived
	exited    chan struct{} // closed once the process has been waited for
	exitErr   error         // why it exited; written before exited is closed
	stuck     atomic.Bool   // a call overran its budget and the grace
	busyAtEnd bool          // calls were in flight when it exited; written before exited is closed

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan []byte
}

// spawn starts a worker process: this same executable, which turns into a
// worker in MaybeRunWorker. It returns once the worker has said hello.
func spawn(memoryMB int, log *slog.Logger) (*proc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("policy: find the executable to run as worker: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = workerEnviron(memoryMB)
	cmd.SysProcAttr = sysProcAttr()
	p := &proc{
		cmd:     cmd,
		log:     log,
		stderr:  &stderrLog{log: log},
		quit:    make(chan struct{}),
		ready:   make(chan struct{}),
		exited:  make(chan struct{}),
		pending: map[uint64]chan []byte{},
	}
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("policy: worker stdout: %w", err)
	}
	// os.Pipe rather than StdinPipe: its write end is an *os.File in the
	// poller, so a write to a worker that stopped reading can time out.
	childStdin, stdinW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("policy: worker stdin: %w", err)
	}
	cmd.Stdin = childStdin
	p.stdin = stdinW
	err = cmd.Start()
	childStdin.Close() // the worker has its own copy now
	if err != nil {
		stdinW.Close()
		return nil, fmt.Errorf("policy: start worker %s: %w", exe, err)
	}
	p.started = time.Now()
	go p.readLoop(stdout)
	return p, p.awaitHello()
}

func (p *proc) awaitHello() error {
	t := time.NewTimer(helloTimeout)
	defer t.Stop()
	select {
	case <-p.ready:
		return nil
	case <-p.exited:
		return p.exitErr
	case <-t.C:
		p.kill()
		<-p.exited
		return fmt.Errorf("policy: worker did not start within %v", helloTimeout)
	}
}

// workerEnviron is the node's environment plus what makes the child a
// worker, replacing any inherited values. MALLOC_ARENA_MAX=1 matters under
// an address-space limit: in a cgo binary glibc would otherwise reserve 64
// MiB of address space for a malloc arena per thread, which would eat the
// worker's allowance before any script ran.
func workerEnviron(memoryMB int) []string {
	set := []string{workerEnv + "=1", memoryEnv + "=" + strconv.Itoa(memoryMB), "MALLOC_ARENA_MAX=1"}
	env := make([]string, 0, len(os.Environ())+len(set))
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.ContainsFunc(set, func(s string) bool { return strings.HasPrefix(s, name+"=") }) {
			env = append(env, kv)
		}
	}
	return append(env, set...)
}

// readLoop reads the worker's frames until it exits, then reaps it.
func (p *proc) readLoop(stdout io.Reader) {
	readErr := p.readFrames(bufio.NewReader(stdout))
	if readErr != nil {
		p.kill() // it broke the protocol; nothing it says can be trusted
	}
	waitErr := p.cmd.Wait()
	p.closeStdin()
	p.exitErr = p.describeExit(readErr, waitErr)
	p.mu.Lock()
	p.busyAtEnd = len(p.pending) > 0
	p.mu.Unlock()
	close(p.exited)
}

func (p *proc) readFrames(r *bufio.Reader) error {
	if err := p.readHello(r); err != nil {
		return err
	}
	close(p.ready)
	for {
		kind, body, err := frame.Read(r, maxReplyFrame)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read from worker: %w", err)
		}
		switch kind {
		case kindLog:
			p.logLine(body)
		case kindLoaded, kindVerdict:
			if err := p.deliver(body); err != nil {
				return err
			}
		default:
			return fmt.Errorf("worker sent an unknown message kind %q", kind)
		}
	}
}

func (p *proc) readHello(r *bufio.Reader) error {
	kind, body, err := frame.Read(r, maxReplyFrame)
	var hello helloMsg
	if err == nil && kind == kindHello {
		err = json.Unmarshal(body, &hello)
	} else if err == nil {
		err = fmt.Errorf("first message is %q", kind)
	}
	if err != nil {
		return fmt.Errorf("no handshake from the worker (%v); the binary's main must call policy.MaybeRunWorker before anything else", err)
	}
	if hello.Version != protocolVersion {
		return fmt.Errorf("worker speaks policy protocol %d, the node %d; it is a different binary", hello.Version, protocolVersion)
	}
	p.log.Debug("policy worker started", "pid", hello.PID, "address_space_limit_mb", hello.LimitMB, "note", hello.Note)
	return nil
}

func (p *proc) describeExit(readErr, waitErr error) error {
	what := "exited"
	if waitErr != nil {
		what = "exited: " + waitErr.Error()
	}
	if line := p.stderr.firstLine(); line != "" {
		what += " (" + line + ")"
	}
	if readErr != nil {
		return fmt.Errorf("policy worker %s; %w", what, readErr)
	}
	return fmt.Errorf("policy worker %s", what)
}

func (p *proc) logLine(body []byte) {
	var m logMsg
	if json.Unmarshal(body, &m) != nil {
		return
	}
	p.log.Log(context.Background(), slogLevel(m.Level), m.Msg, "script", m.Script)
}

func slogLevel(level string) slog.Level {
	switch level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (p *proc) deliver(body []byte) error {
	var head struct {
		ID uint64 `json:"id"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return fmt.Errorf("decode worker reply: %w", err)
	}
	p.mu.Lock()
	ch := p.pending[head.ID]
	p.mu.Unlock()
	if ch != nil {
		select {
		case ch <- body:
		default: // a second reply to one id; the first one counts
		}
	}
	return nil
}

// write sends one frame. It takes the caller's deadline, so a worker
// that has stopped reading costs the caller its budget, not more; a frame
// cut short by the deadline leaves the stream broken, and the caller kills
// the worker as stuck.
func (p *proc) write(kind byte, body []byte, deadline time.Time) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.retired() {
		return errRetired
	}
	if err := p.stdin.SetWriteDeadline(deadline); err != nil {
		return err
	}
	err := frame.Write(p.stdin, kind, body)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return errOverrun
	}
	if err != nil {
		return fmt.Errorf("policy worker does not take requests: %w", err)
	}
	return nil
}

func (p *proc) closeStdin() {
	p.stdinOnce.Do(func() { p.stdin.Close() })
}

// roundTrip sends one request and waits up to wait for its reply. build
// makes the request for its id.
func (p *proc) roundTrip(ctx context.Context, kind byte, build func(id uint64) any, wait time.Duration) ([]byte, error) {
	p.mu.Lock()
	p.nextID++
	id := p.nextID
	reply := make(chan []byte, 1)
	p.pending[id] = reply
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.pending, id)
		p.mu.Unlock()
	}()
	body, err := json.Marshal(build(id))
	if err != nil {
		return nil, err
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	if err := p.write(kind, body, time.Now().Add(wait)); err != nil {
		return nil, err
	}
	return p.await(ctx, reply, t.C)
}

func (p *proc) await(ctx context.Context, reply <-chan []byte, timeout <-chan time.Time) ([]byte, error) {
	select {
	case body := <-reply:
		return body, nil
	case <-p.exited:
		if p.retired() {
			return nil, errRetired // it exited after finishing what it had, without this
		}
		return nil, p.exitErr
	case <-timeout:
		return nil, errOverrun
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// load sends the scripts and returns the worker's verdict on each.
func (p *proc) load(ctx context.Context, sources []scriptSource, budget time.Duration) ([]loadResult, error) {
	// gopher-lua compiles large constant tables slowly (half a second for a
	// 256 KiB list, several under the race detector), and compiling cannot be
	// interrupted. A top level stuck past its budget makes the worker exit by
	// itself; this bounds only a worker that is wedged.
	wait := time.Duration(len(sources)) * (max(budget, minLoadBudget) + overrunGrace + 10*time.Second)
	body, err := p.roundTrip(ctx, kindLoad, func(id uint64) any {
		return loadMsg{ID: id, BudgetNS: int64(budget), Scripts: sources}
	}, wait)
	if errors.Is(err, errOverrun) {
		return nil, fmt.Errorf("policy: loading the scripts took longer than %v", wait)
	}
	if err != nil {
		return nil, fmt.Errorf("policy: load scripts: %w", err)
	}
	var msg loadedMsg
	if err := json.Unmarshal(body, &msg); err != nil || len(msg.Results) != len(sources) {
		return nil, fmt.Errorf("policy: worker answered the load with %d results for %d scripts (%v)", len(msg.Results), len(sources), err)
	}
	return msg.Results, nil
}

// call asks the worker for a verdict. A call that outlives its budget and
// the grace kills the worker, which may be stuck; the supervisor restarts it.
func (p *proc) call(ctx context.Context, hook string, input []byte, budget, grace time.Duration) (result, error) {
	body, err := p.roundTrip(ctx, kindCall, func(id uint64) any {
		return callMsg{ID: id, Hook: hook, Input: input, BudgetNS: int64(budget)}
	}, budget+grace)
	if errors.Is(err, errOverrun) {
		p.stuck.Store(true)
		return result{}, fmt.Errorf("%s did not return within its %v budget; its worker is replaced: %w", hook, budget, errStuck)
	}
	if err != nil {
		return result{}, err
	}
	var msg verdictMsg
	if err := json.Unmarshal(body, &msg); err != nil {
		return result{}, fmt.Errorf("decode verdict: %w", err)
	}
	return msg.Result, nil
}

func (p *proc) retired() bool { return isClosed(p.quit) }

// dead reports whether the process has exited.
func (p *proc) dead() bool { return isClosed(p.exited) }

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// lostToCall reports whether a call ended this worker: it got stuck in one,
// or died while calls were in flight (a memory bomb). The input is to blame
// then, not the worker.
func (p *proc) lostToCall() bool {
	return p.stuck.Load() || p.dead() && p.busyAtEnd
}

// lossReason says why the worker is being replaced.
func (p *proc) lossReason() error {
	if p.dead() {
		return p.exitErr
	}
	return errors.New("a call is stuck past its budget and the grace")
}

func (p *proc) kill() {
	_ = p.cmd.Process.Kill() // an error only means it is gone already
}

// close lets the worker finish the calls it has, by closing its stdin, and
// kills it if it has not exited within wait.
func (p *proc) close(wait time.Duration) {
	p.quitOnce.Do(func() {
		p.wmu.Lock()
		close(p.quit)
		p.wmu.Unlock()
		p.closeStdin()
	})
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		p.kill()
		<-p.exited
	}
}

// stderrLog sends a worker's stderr lines to the node's log.
type stderrLog struct {
	log     *slog.Logger
	mu      sync.Mutex
	partial []byte
	lines   int
	first   string
}

func (s *stderrLog) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.partial = append(s.partial, b...)
	for {
		i := bytes.IndexByte(s.partial, '\n')
		if i < 0 {
			break
		}
		s.line(string(s.partial[:i]))
		s.partial = s.partial[i+1:]
	}
	if len(s.partial) > maxLogBytes { // a line without end; log what we have
		s.line(string(s.partial))
		s.partial = s.partial[:0]
	}
	return len(b), nil
}

func (s *stderrLog) line(text string) {
	text = strings.TrimSpace(text)
	if text == "" {
		return
	}
	if s.first == "" {
		s.first = truncate(text, 200)
	}
	s.lines++
	switch {
	case s.lines <= maxStderrLines:
		s.log.Warn("policy worker stderr", "line", truncate(text, maxLogBytes))
	case s.lines == maxStderrLines+1:
		s.log.Warn("policy worker stderr: dropping further lines from this process")
	}
}

func (s *stderrLog) firstLine() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first
}
