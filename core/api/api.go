// Package api is the node's local control API: JSON over HTTP on a unix
// socket inside the repo. The socket is 0600 in a 0700 directory and every
// connection's peer credentials are checked, so no other user of the machine
// can drive the node. It carries commands, never content streams of peers.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"
)

// Error is what a failed call returns, on the wire and to the client.
type Error struct {
	Message string `json:"error"`
	// NotFound marks answers like "no such name": the CLI exits 1 for them.
	NotFound bool `json:"not_found,omitempty"`
	// Invalid marks an argument the caller got wrong (a malformed name or
	// record value): the CLI exits 2 for them, as for a wrong flag.
	Invalid bool `json:"invalid,omitempty"`
	status  int
}

func (e *Error) Error() string { return e.Message }

// NotFound builds an error the CLI reports with exit code 1.
func NotFound(format string, args ...any) error {
	return &Error{Message: fmt.Sprintf(format, args...), NotFound: true, status: http.StatusNotFound}
}

// BadRequest builds an error for bad input from the caller.
func BadRequest(format string, args ...any) error {
	return &Error{Message: fmt.Sprintf(format, args...), status: http.StatusBadRequest}
}

// Invalid builds an error for an argument that can never be right as given;
// the message says what is expected. The CLI reports it with exit code 2.
func Invalid(format string, args ...any) error {
	return &Error{Message: fmt.Sprintf(format, args...), Invalid: true, status: http.StatusBadRequest}
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
	mux  *http.ServeMux
	srv  *http.Server
	ln   net.Listener
	path string
	log  *slog.Logger
}

// NewServer makes a server; add calls with Handle, then Serve.
func NewServer(log *slog.Logger) *Server {
	return &Server{mux: http.NewServeMux(), log: log}
}

// Handle registers a call, e.g. Handle("GET /v1/id", h).
func (s *Server) Handle(pattern string, h Handler) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		body := http.MaxBytesReader(w, r.Body, maxBody)
		q := r.URL.Query()
		v, err := h(r.Context(), Request{Query: q.Get, QueryAll: func(name string) []string { return q[name] }, Body: body})
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			writeError(w, err)
			return
		}
		json.NewEncoder(w).Encode(v)
	})
}

// StreamHandler answers one call and may report progress on the way.
type StreamHandler func(ctx context.Context, req Request, progress func(any)) (any, error)

// streamLine is one line of a streamed answer: progress, then a result or an error.
type streamLine struct {
	Progress any    `json:"progress,omitempty"`
	Result   any    `json:"result,omitempty"`
	Error    *Error `json:"error,omitempty"`
}

// HandleStream registers a call whose answer is newline-delimited JSON:
// progress lines while it works, then one result or error line. The HTTP
// status is 200 once streaming starts; errors travel in the last line.
func (s *Server) HandleStream(pattern string, h StreamHandler) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		flusher, _ := w.(http.Flusher)
		var mu sync.Mutex
		send := func(line streamLine) {
			mu.Lock()
			defer mu.Unlock()
			enc.Encode(line)
			if flusher != nil {
				flusher.Flush()
			}
		}
		body := http.MaxBytesReader(w, r.Body, maxBody)
		v, err := h(r.Context(), Request{Query: r.URL.Query().Get, Body: body}, func(p any) { send(streamLine{Progress: p}) })
		if err != nil {
			var apiErr *Error
			if !errors.As(err, &apiErr) {
				apiErr = &Error{Message: err.Error()}
			}
			send(streamLine{Error: apiErr})
			return
		}
		send(streamLine{Result: v})
	})
}

// HandleRaw registers a call that writes its own response, such as a byte
// stream; it reports errors with WriteError.
func (s *Server) HandleRaw(pattern string, h func(w http.ResponseWriter, r *http.Request)) {
	s.mux.HandleFunc(pattern, h)
}

// WriteError answers with err as JSON, for raw handlers.
func WriteError(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	writeError(w, err)
}

func writeError(w http.ResponseWriter, err error) {
	var apiErr *Error
	if !errors.As(err, &apiErr) {
		apiErr = &Error{Message: err.Error(), status: http.StatusInternalServerError}
	}
	if apiErr.status == 0 {
		apiErr.status = http.StatusInternalServerError
	}
	w.WriteHeader(apiErr.status)
	json.NewEncoder(w).Encode(apiErr)
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
	s.ln = &sameUserListener{Listener: ln, log: s.log}
	s.path = path
	s.srv = &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second}
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
	return err
}
