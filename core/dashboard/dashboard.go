// Package dashboard serves the node's local web page: a static page and
// one JSON snapshot of the node, with a short history of its main
// numbers for the charts. It shows what only the node's user should see
// (peers, names, policy refusals), so every request passes three checks:
//
//   - the connection comes from a process of the node's own user (the
//     kernel's socket table on Linux, as the control API checks its
//     socket's peer credentials);
//   - the Host header names the loopback address it listens on, so a web
//     page that rebinds its own name to 127.0.0.1 is refused;
//   - the data calls carry a session the page got for a one-time code that
//     only the control API hands out (`avnode dashboard`). The session
//     travels in a header the page's script sets, never in a cookie: a
//     browser sends no ambient credential to the dashboard on another
//     page's behalf, and other ports of 127.0.0.1 never see it.
package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/avnode/avnode/sdk"
)

//go:embed assets
var assets embed.FS

const (
	// codeTTL is how long a one-time code from `avnode dashboard` opens
	// the page.
	codeTTL = 5 * time.Minute
	// sessionTTL bounds a page's session; reopening takes a new code.
	sessionTTL = 12 * time.Hour
	// maxCodes and maxSessions bound what the user's own commands can
	// make the node keep; the oldest goes first.
	maxCodes    = 16
	maxSessions = 32
	// ports after a taken default port that the dashboard tries.
	defaultTries = 16
)

// Options configure a dashboard.
type Options struct {
	Listen string // a loopback host:port
	// MoveOn lets a taken port move to the next free one (the default
	// port, on a machine running two nodes).
	MoveOn bool
	// State is the node now, encoded as JSON for the page.
	State func(ctx context.Context) (any, error)
	// Sample reads the charted numbers, every Interval.
	Sample   func() map[string]float64
	Interval time.Duration // default 2s
	Keep     int           // samples kept per series; default 300
	Log      *slog.Logger
}

// Server is a running dashboard.
type Server struct {
	opts    Options
	srv     *http.Server
	url     string
	history *history
	stop    context.CancelFunc
	done    sync.WaitGroup

	mu       sync.Mutex
	codes    map[string]time.Time // one-time code → expiry
	sessions map[string]time.Time // session → expiry

	// One snapshot at a time, reused for stateReuse: every open tab polls,
	// and a snapshot walks the block store and the pins.
	stateMu sync.Mutex
	state   any
	stateAt time.Time
}

// stateReuse is how long a snapshot answers the tabs that ask.
const stateReuse = time.Second

// Start listens and serves until Close.
func Start(opts Options) (*Server, error) {
	if opts.Interval <= 0 {
		opts.Interval = 2 * time.Second
	}
	if opts.Keep <= 0 {
		opts.Keep = 300
	}
	next := 0
	if opts.MoveOn {
		next = defaultTries
	}
	ln, moved, err := sdk.ListenOrNext(opts.Listen, next)
	if err != nil {
		return nil, err
	}
	if moved {
		opts.Log.Warn("the default dashboard port is taken (another node on this machine?); using the next free port; set dashboard.listen to choose",
			"wanted", opts.Listen, "addr", ln.Addr().String())
	}
	s := &Server{opts: opts, url: "http://" + ln.Addr().String(), history: newHistory(opts.Keep),
		codes: map[string]time.Time{}, sessions: map[string]time.Time{}}
	s.srv = &http.Server{Handler: s.routes(ln.Addr().String()), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10}
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	s.done.Add(2)
	go func() {
		defer s.done.Done()
		if err := s.srv.Serve(&sameUserListener{Listener: ln, refusals: &refusalLog{log: opts.Log}}); err != nil && !errors.Is(err, http.ErrServerClosed) {
			opts.Log.Error("dashboard stopped", "err", err)
		}
	}()
	go func() {
		defer s.done.Done()
		s.sample(ctx)
	}()
	return s, nil
}

// URL is where the dashboard listens, without a code.
func (s *Server) URL() string { return s.url }

// NewCode makes a one-time code that opens one page session, and the URL
// that carries it. The code rides in the URL's fragment, which a browser
// never sends to a server or in a Referer.
func (s *Server) NewCode() (url string, expires time.Time) {
	code := randomToken()
	expires = time.Now().Add(codeTTL)
	s.mu.Lock()
	s.codes[code] = expires
	prune(s.codes, maxCodes)
	s.mu.Unlock()
	return s.url + "/#code=" + code, expires
}

// Close stops serving and sampling.
func (s *Server) Close(ctx context.Context) error {
	s.stop()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	s.done.Wait()
	return err
}

func (s *Server) sample(ctx context.Context) {
	if s.opts.Sample == nil {
		return
	}
	tick := time.NewTicker(s.opts.Interval)
	defer tick.Stop()
	for {
		s.history.add(time.Now(), s.opts.Sample())
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// routes are the page's files and its two calls, behind the Host check.
func (s *Server) routes(addr string) http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	mux.Handle("GET /", http.FileServerFS(static))
	mux.HandleFunc("POST /api/login", s.handleLogin)
	mux.HandleFunc("GET /api/state", s.requireSession(s.handleState))
	return secureHeaders(checkHost(addr, mux))
}

// loginRequest is what the page sends with the code from its URL.
type loginRequest struct {
	Code string `json:"code"`
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	// JSON only: a page of another origin cannot send it without a CORS
	// preflight, which the dashboard never answers.
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "send the code as application/json")
		return
	}
	var req loginRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<10)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "the body is not {\"code\": …}")
		return
	}
	s.mu.Lock()
	ok := take(s.codes, req.Code)
	var session string
	if ok {
		session = randomToken()
		s.sessions[session] = time.Now().Add(sessionTTL)
		prune(s.sessions, maxSessions)
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusUnauthorized, "this code is unknown, used or expired; run `avnode dashboard` for a new one")
		return
	}
	writeJSON(w, map[string]string{"session": session})
}

// requireSession answers 401 to a call without a live session.
func (s *Server) requireSession(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		session, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.mu.Lock()
		ok := live(s.sessions, session)
		s.mu.Unlock()
		if !ok {
			writeError(w, http.StatusUnauthorized, "no session: run `avnode dashboard` and open the address it prints")
			return
		}
		next(w, r)
	}
}

// stateAnswer is /api/state: the node now and the charts' history.
type stateAnswer struct {
	State    any                  `json:"state"`
	Series   map[string][]float64 `json:"series"`
	Times    []int64              `json:"times"` // Unix ms of each sample
	Interval float64              `json:"interval_seconds"`
}

func (s *Server) handleState(w http.ResponseWriter, r *http.Request) {
	state, err := s.snapshot(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	times, series := s.history.snapshot()
	writeJSON(w, stateAnswer{State: state, Series: series, Times: times, Interval: s.opts.Interval.Seconds()})
}

// snapshot is the node now, or the last snapshot if it is fresh.
func (s *Server) snapshot(ctx context.Context) (any, error) {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if s.state != nil && time.Since(s.stateAt) < stateReuse {
		return s.state, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	state, err := s.opts.State(ctx)
	if err != nil {
		return nil, err
	}
	s.state, s.stateAt = state, time.Now()
	return state, nil
}

// checkHost refuses a request whose Host is not the dashboard's own
// address: a page that points its own name at 127.0.0.1 (DNS rebinding)
// gets nothing. Not even localhost:PORT, which a browser may try on ::1
// first, where another user of the machine can listen on the same port.
func checkHost(addr string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Host, addr) {
			writeError(w, http.StatusForbidden, "the dashboard answers only at http://"+addr+"/")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// secureHeaders keep the page to its own files: no inline or foreign
// script, no framing, no referrer.
func secureHeaders(next http.Handler) http.Handler {
	const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
		"frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// writeJSON encodes v whole before it answers, so a value that does not
// encode is a 500 with a reason, not a 200 with half a body.
func writeJSON(w http.ResponseWriter, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encode the answer: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(data, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func randomToken() string {
	buf := make([]byte, 24)
	rand.Read(buf)
	return hex.EncodeToString(buf)
}

// take removes token from m and says whether it was there and unexpired.
func take(m map[string]time.Time, token string) bool {
	key, expires, ok := find(m, token)
	if ok {
		delete(m, key)
	}
	return ok && time.Now().Before(expires)
}

// live says whether token is in m and unexpired.
func live(m map[string]time.Time, token string) bool {
	_, expires, ok := find(m, token)
	return ok && time.Now().Before(expires)
}

// find looks token up comparing in constant time, so timing tells nothing
// of the codes and sessions held.
func find(m map[string]time.Time, token string) (key string, expires time.Time, ok bool) {
	for k, e := range m {
		if subtle.ConstantTimeCompare([]byte(k), []byte(token)) == 1 {
			return k, e, true
		}
	}
	return "", time.Time{}, false
}

// prune drops expired entries, then the ones expiring first, down to max.
func prune(m map[string]time.Time, max int) {
	now := time.Now()
	for k, expires := range m {
		if !now.Before(expires) {
			delete(m, k)
		}
	}
	for len(m) > max {
		var first string
		for k, expires := range m {
			if first == "" || expires.Before(m[first]) {
				first = k
			}
		}
		delete(m, first)
	}
}
