// Package api is the node's local control API: JSON over HTTP on a unix
// socket inside the repo. The socket is 0600 in a 0700 directory and every
// connection's peer credentials are checked, so no other user of the machine
// can drive the node. It carries commands, never content streams of peers.
//
// The package owns the wire: every request and answer type (types.go), and
// the one map from an error's fault.Kind to an HTTP status. It imports no
// package of this module but core/fault, so the command line links it
// without linking the node.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/avnode/avnode/core/fault"
)

// Error is a failed call as the client gets it: the daemon's message and
// the fault.Kind it gave, so callers branch on fault.KindOf(err).
type Error struct {
	msg  string
	kind fault.Kind
}

func (e *Error) Error() string    { return e.msg }
func (e *Error) Kind() fault.Kind { return e.kind }

func errorOf(body ErrorBody) *Error { return &Error{msg: body.Message, kind: body.Kind} }

// bodyOf is err as the wire carries it.
func bodyOf(err error) ErrorBody {
	return ErrorBody{Message: err.Error(), Kind: fault.KindOf(err)}
}

// statusOf is the one map from an error's kind to an HTTP status.
func statusOf(kind fault.Kind) int {
	switch kind {
	case fault.NotFound:
		return http.StatusNotFound
	case fault.Invalid:
		return http.StatusBadRequest
	case fault.Refused:
		return http.StatusConflict
	case fault.TooLarge:
		return http.StatusRequestEntityTooLarge
	case fault.Unavailable:
		return http.StatusServiceUnavailable
	case fault.Timeout:
		return http.StatusGatewayTimeout
	case fault.Permission:
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

// Request is what a handler gets: the query parameters and the body.
type Request struct {
	Query    func(name string) string
	QueryAll func(name string) []string // every value of a repeated parameter
	Body     io.Reader
}

// Handler answers one call with a value to encode as JSON, or an error.
type Handler func(ctx context.Context, req Request) (any, error)

// maxBody bounds what a caller can send in one request.
const maxBody = 16 << 20

// Server serves the control API on a unix socket.
type Server struct {
	mux     *http.ServeMux
	srv     *http.Server
	ln      net.Listener
	path    string
	log     *slog.Logger
	observe func(call string, took time.Duration)
}

// NewServer makes a server; add calls with Handle, then Serve.
func NewServer(log *slog.Logger) *Server {
	return &Server{mux: http.NewServeMux(), log: log, observe: func(string, time.Duration) {}}
}

// OnCall has observe told how long each call took, by its pattern (the
// node's metrics). Set it before Serve.
func (s *Server) OnCall(observe func(call string, took time.Duration)) { s.observe = observe }

// serverTimingHeader carries, on a JSON answer, how long the daemon spent
// on the call, its answer encoded: the W3C Server-Timing header, which
// tells the daemon's share apart from the socket's and the client's.
const serverTimingHeader = "Server-Timing"

// Handle registers a call, e.g. Handle("GET /v1/id", h).
func (s *Server) Handle(pattern string, h Handler) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		body := http.MaxBytesReader(w, r.Body, maxBody)
		q := r.URL.Query()
		v, err := h(r.Context(), Request{Query: q.Get, QueryAll: func(name string) []string { return q[name] }, Body: body})
		status, answer := http.StatusOK, any(v)
		if err != nil {
			b := bodyOf(err)
			status, answer = statusOf(b.Kind), b
		}
		var out bytes.Buffer
		json.NewEncoder(&out).Encode(answer)
		took := time.Since(start)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set(serverTimingHeader, fmt.Sprintf("handler;dur=%.3f", float64(took.Nanoseconds())/1e6))
		w.WriteHeader(status)
		w.Write(out.Bytes())
		s.observe(pattern, took)
	})
}

// StreamHandler answers one call and may report progress on the way.
type StreamHandler func(ctx context.Context, req Request, progress func(any)) (any, error)

// streamLine is one line of a streamed answer: progress, then a result or an error.
type streamLine struct {
	Progress any        `json:"progress,omitempty"`
	Result   any        `json:"result,omitempty"`
	Error    *ErrorBody `json:"error,omitempty"`
}

// HandleStream registers a call whose answer is newline-delimited JSON:
// progress lines while it works, then one result or error line. The HTTP
// status is 200 once streaming starts; errors travel in the last line.
// Progress reported after the last line is dropped: the response is
// finished, and writing to it would crash the daemon.
func (s *Server) HandleStream(pattern string, h StreamHandler) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		defer s.observeSince(pattern, time.Now())
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		flusher, _ := w.(http.Flusher)
		var (
			mu       sync.Mutex
			answered bool // the last line is sent: the response is no longer ours
		)
		send := func(line streamLine, last bool) {
			mu.Lock()
			defer mu.Unlock()
			if answered {
				return // progress from a goroutine that outlived its handler
			}
			answered = last
			enc.Encode(line)
			if flusher != nil {
				flusher.Flush()
			}
		}
		body := http.MaxBytesReader(w, r.Body, maxBody)
		v, err := h(r.Context(), Request{Query: r.URL.Query().Get, Body: body}, func(p any) { send(streamLine{Progress: p}, false) })
		if err != nil {
			body := bodyOf(err)
			send(streamLine{Error: &body}, true)
			return
		}
		send(streamLine{Result: v}, true)
	})
}

// HandleRaw registers a call that writes its own response, such as a byte
// stream; it reports errors with WriteError.
func (s *Server) HandleRaw(pattern string, h func(w http.ResponseWriter, r *http.Request)) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		defer s.observeSince(pattern, time.Now())
		h(w, r)
	})
}

func (s *Server) observeSince(pattern string, start time.Time) { s.observe(pattern, time.Since(start)) }

// WriteError answers with err as JSON, for raw handlers.
func WriteError(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	writeError(w, err)
}

func writeError(w http.ResponseWriter, err error) {
	body := bodyOf(err)
	w.WriteHeader(statusOf(body.Kind))
	json.NewEncoder(w).Encode(body)
}

// Listen creates the socket at path, readable and writable by the owner only.
// A stale socket left by a crashed daemon is replaced; the caller holds the
// repo lock, so no live daemon can own it.
func (s *Server) Listen(path string) error {
	if len(path) >= 108 {
		return fmt.Errorf("control socket path %s is %d bytes, over the system's limit of 107; use a shorter --repo path", path, len(path))
	}
	if err := peerCredentialsSupported(); err != nil {
		return err
	}
	os.Remove(path)
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := s.ListenOn(&sameUserListener{Listener: ln, log: s.log}, path); err != nil {
		ln.Close()
		return err
	}
	return nil
}

// ListenOn answers on ln, with the token written beside path as Listen
// does. Listen's socket is the only one `avnode run` uses; the bench gives
// an in-memory listener here, which only its own process can reach.
func (s *Server) ListenOn(ln net.Listener, path string) error {
	token, err := writeToken(filepath.Join(filepath.Dir(path), TokenFile))
	if err != nil {
		return err
	}
	s.ln, s.path = ln, path
	s.srv = &http.Server{Handler: requireToken(token, s.mux), ReadHeaderTimeout: 10 * time.Second}
	return nil
}

// Serve answers calls until Shutdown.
func (s *Server) Serve() error {
	err := s.srv.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting calls, lets running ones finish until ctx ends,
// and removes the socket.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	os.Remove(s.path)
	os.Remove(filepath.Join(filepath.Dir(s.path), TokenFile))
	return err
}
