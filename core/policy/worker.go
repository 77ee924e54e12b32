package policy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/avnode/avnode/core/frame"
)

// The environment a worker process is started with.
const (
	workerEnv = "AVNODE_POLICY_WORKER"    // "1": run as the policy worker
	memoryEnv = "AVNODE_POLICY_MEMORY_MB" // its address-space allowance
)

// DefaultMemoryMB is the worker's address-space allowance when none is set.
const DefaultMemoryMB = 512

// MaybeRunWorker turns this process into a policy worker when the node
// started it as one (AVNODE_POLICY_WORKER=1), and never returns then.
// Otherwise it returns at once. The avnode binary's main calls it first
// thing, before anything can write to stdout, which carries the protocol.
func MaybeRunWorker() {
	if os.Getenv(workerEnv) != "1" {
		return
	}
	// Stray prints (fmt.Println in some library) would corrupt the protocol;
	// send them to stderr, which the node logs.
	out := os.Stdout
	os.Stdout = os.Stderr
	if err := RunWorker(os.Stdin, out, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "policy worker:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// RunWorker is the policy worker's main loop: it reads requests from in and
// writes replies to out until in ends, then waits for calls in flight. It
// first limits the whole process's address space to what the Go runtime has
// mapped plus AVNODE_POLICY_MEMORY_MB, so it must own its process: a script
// that allocates past the limit kills the worker, and the node restarts it.
// log receives the worker's own problems.
func RunWorker(in io.Reader, out io.Writer, log io.Writer) error {
	w := &workerConn{out: out}
	hello := helloMsg{Version: protocolVersion, PID: os.Getpid()}
	limit, err := limitMemory(memoryFromEnv())
	if err != nil {
		hello.Note = err.Error()
		fmt.Fprintln(log, "policy worker: running without a memory limit:", err)
	}
	hello.LimitMB = limit >> 20
	if err := w.send(kindHello, hello); err != nil {
		return err
	}
	eng := newEngine(w.log, runtime.GOMAXPROCS(0)*2)
	var calls sync.WaitGroup
	defer calls.Wait()
	r := bufio.NewReader(in)
	for {
		kind, body, err := frame.Read(r, maxRequestFrame)
		if errors.Is(err, io.EOF) {
			return nil // the node closed our stdin: finish and exit
		}
		if err != nil {
			return fmt.Errorf("read request: %w", err)
		}
		if err := w.dispatch(eng, &calls, kind, body); err != nil {
			return err
		}
	}
}

func memoryFromEnv() int {
	mb, err := strconv.Atoi(os.Getenv(memoryEnv))
	if err != nil || mb <= 0 {
		return DefaultMemoryMB
	}
	return mb
}

// workerConn is the worker's side of the pipe; replies from concurrent
// calls are written one frame at a time.
type workerConn struct {
	mu  sync.Mutex
	out io.Writer
}

func (w *workerConn) send(kind byte, msg any) error {
	body, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return frame.Write(w.out, kind, body)
}

func (w *workerConn) log(level, script, msg string) {
	_ = w.send(kindLog, logMsg{Level: level, Script: script, Msg: msg})
}

// dispatch handles one request. Loads run in turn; calls run concurrently,
// bounded by the engine's pool, each under its own budget.
func (w *workerConn) dispatch(eng *engine, calls *sync.WaitGroup, kind byte, body []byte) error {
	switch kind {
	case kindLoad:
		var req loadMsg
		if err := json.Unmarshal(body, &req); err != nil {
			return fmt.Errorf("decode load request: %w", err)
		}
		results := eng.load(context.Background(), req.Scripts, time.Duration(req.BudgetNS))
		return w.send(kindLoaded, loadedMsg{ID: req.ID, Results: results})
	case kindCall:
		var req callMsg
		if err := json.Unmarshal(body, &req); err != nil {
			return fmt.Errorf("decode call request: %w", err)
		}
		calls.Add(1)
		go func() {
			defer calls.Done()
			w.handleCall(eng, req)
		}()
		return nil
	}
	return fmt.Errorf("unknown request kind %q", kind)
}

// handleCall runs one call. The budget starts when the request arrives, so
// time spent queued for a Lua state counts against it.
func (w *workerConn) handleCall(eng *engine, req callMsg) {
	budget := time.Duration(req.BudgetNS)
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	res := eng.call(ctx, req.Hook, req.Input, budget)
	_ = w.send(kindVerdict, verdictMsg{ID: req.ID, Result: res})
}
