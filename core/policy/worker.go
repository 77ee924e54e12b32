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
	// Stray prints to os.Stdout (fmt.Println in some library) would corrupt
	// the protocol: they go to stderr, which the node logs.
	in, out := pollable(os.Stdin), pollable(os.Stdout)
	os.Stdout = os.Stderr
	if err := RunWorker(in, out, os.Stderr); err != nil {
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
	// One Lua state per processor: scripts never block, so more would only
	// time-slice. The worker then takes one processor more than that, so
	// that while every state spins in a runaway script, the timers that stop
	// them fire on time and the protocol goroutines keep reading.
	slots := runtime.GOMAXPROCS(0)
	runtime.GOMAXPROCS(slots + 1)
	eng := newEngine(w.log, slots)
	eng.stuck = func(script string) {
		fmt.Fprintf(log, "policy worker: the top level of %s is stuck past its budget; exiting\n", script)
		os.Exit(3)
	}
	var calls sync.WaitGroup
	done := make(chan error, 1)
	go w.serve(bufio.NewReader(in), eng, &calls, done)
	err = <-done
	calls.Wait()
	if errors.Is(err, io.EOF) {
		return nil // the node closed our stdin: calls are finished, exit
	}
	return err
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

// serve reads requests until in ends or fails, and reports which on done.
// A call runs on the goroutine that read it, once it has handed reading on
// to a new goroutine: the running goroutine starts the call at once, where
// a goroutine spawned for it would first wait to be scheduled.
func (w *workerConn) serve(r *bufio.Reader, eng *engine, calls *sync.WaitGroup, done chan<- error) {
	for {
		kind, body, err := frame.Read(r, maxRequestFrame)
		if err != nil {
			done <- err
			return
		}
		switch kind {
		case kindLoad:
			err = w.handleLoad(eng, body)
		case kindCall:
			var req callMsg
			if err = json.Unmarshal(body, &req); err == nil {
				calls.Add(1)
				go w.serve(r, eng, calls, done)
				w.handleCall(eng, req)
				calls.Done()
				return
			}
		default:
			err = fmt.Errorf("unknown request kind %q", kind)
		}
		if err != nil {
			done <- fmt.Errorf("request %q: %w", kind, err)
			return
		}
	}
}

// handleLoad loads scripts; loads are rare (one per worker) and run in turn.
func (w *workerConn) handleLoad(eng *engine, body []byte) error {
	var req loadMsg
	if err := json.Unmarshal(body, &req); err != nil {
		return err
	}
	results := eng.load(context.Background(), req.Scripts, time.Duration(req.BudgetNS))
	return w.send(kindLoaded, loadedMsg{ID: req.ID, Results: results})
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
