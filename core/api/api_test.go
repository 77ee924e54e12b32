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
	"net/http/httptrace"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/avnode/avnode/core/fault"
)

const socketFile = "api.sock"

// serve starts a server with the calls register adds on a real unix socket
// in a fresh folder, and returns a client of it and the folder.
func serve(t *testing.T, register func(s *Server)) (*Client, string) {
	t.Helper()
	dir := t.TempDir()
	s := NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)))
	register(s)
	if err := s.Listen(filepath.Join(dir, socketFile)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		s.Shutdown(context.Background())
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return NewClient(dir, socketFile), dir
}

func TestCallRoundTrip(t *testing.T) {
	c, _ := serve(t, func(s *Server) {
		s.Handle("GET /v1/peers", func(_ context.Context, req Request) (any, error) {
			return []PeerInfo{{ID: req.Query("peer"), Addrs: req.QueryAll("addr"), Direction: "inbound"}}, nil
		})
		s.Handle("POST /v1/routing/put", func(_ context.Context, req Request) (any, error) {
			value, err := io.ReadAll(req.Body)
			return RoutingValue{Key: req.Query("key"), Value: value}, err
		})
	})
	var peers []PeerInfo
	q := url.Values{"peer": {"12D3KooWx"}, "addr": {"/ip4/192.0.2.1/tcp/1", "/ip4/192.0.2.2/tcp/2"}}
	if err := c.Call(context.Background(), "GET", "/v1/peers", q, nil, &peers); err != nil {
		t.Fatal(err)
	}
	if len(peers) != 1 || peers[0].ID != "12D3KooWx" || len(peers[0].Addrs) != 2 || peers[0].Direction != "inbound" {
		t.Fatalf("peers: %+v", peers)
	}
	var v RoutingValue
	if err := c.Call(context.Background(), "POST", "/v1/routing/put", url.Values{"key": {"/pk/x"}}, strings.NewReader("bytes"), &v); err != nil {
		t.Fatal(err)
	}
	if v.Key != "/pk/x" || string(v.Value) != "bytes" {
		t.Fatalf("put answered %+v", v)
	}
}

// Each kind of error has its HTTP status, travels as {"error", "kind"}, and
// comes back from the client as an error of the same kind and message.
func TestErrorKindToStatusToClient(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
	}{
		{fault.Errorf(fault.NotFound, "resolve %s: not found", "nobody.avtr"), http.StatusNotFound},
		{fault.New(fault.Invalid, "--ttl \"x\": give a duration"), http.StatusBadRequest},
		{fault.New(fault.Refused, "name already taken"), http.StatusConflict},
		{fault.New(fault.TooLarge, "content too large"), http.StatusRequestEntityTooLarge},
		{fault.New(fault.Unavailable, "no source to fetch from"), http.StatusServiceUnavailable},
		{fmt.Errorf("routing get /pk/x: %w", context.DeadlineExceeded), http.StatusGatewayTimeout},
		{fault.New(fault.Permission, "not yours"), http.StatusForbidden},
		{errors.New("disk on fire"), http.StatusInternalServerError},
	} {
		kind := fault.KindOf(tc.err)
		c, dir := serve(t, func(s *Server) {
			s.Handle("GET /v1/fail", func(context.Context, Request) (any, error) { return nil, tc.err })
		})

		resp := rawGet(t, filepath.Join(dir, socketFile), "/v1/fail", readToken(dir))
		var body map[string]string
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || body["error"] != tc.err.Error() || body["kind"] != string(kind) {
			t.Errorf("%q: HTTP %d %v; want %d with kind %q", tc.err, resp.StatusCode, body, tc.status, kind)
		}

		err := c.Call(context.Background(), "GET", "/v1/fail", nil, nil, nil)
		var apiErr *Error
		if !errors.As(err, &apiErr) || fault.KindOf(err) != kind || err.Error() != tc.err.Error() {
			t.Errorf("%q: the client got %T %q of kind %q; want an *api.Error of kind %q", tc.err, err, err, fault.KindOf(err), kind)
		}
	}
}

// rawGet asks the socket directly, to see the HTTP status the client hides.
func rawGet(t *testing.T, socket, path, authorization string) *http.Response {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	req, _ := http.NewRequest(http.MethodGet, "http://avnode"+path, nil)
	if authorization != "" {
		req.Header.Set("Authorization", "Bearer "+authorization)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// A process of the node's own user that cannot read the repo's token file
// (a plugin in its sandbox) gets 403 from every call, and the handler never
// runs; each daemon run has a token of its own, removed at shutdown.
func TestCallsWithoutTheTokenAreRefused(t *testing.T) {
	ran := 0
	_, dir := serve(t, func(s *Server) {
		s.Handle("GET /v1/id", func(context.Context, Request) (any, error) { ran++; return "ok", nil })
	})
	socket := filepath.Join(dir, socketFile)
	token := readToken(dir)
	if info, err := os.Stat(filepath.Join(dir, TokenFile)); err != nil || info.Mode().Perm() != 0o600 || len(token) != 64 {
		t.Fatalf("token file: %v %v, %d characters; want 0600 and 64 hex characters", info, err, len(token))
	}
	for _, bad := range []string{"", "wrong", token[:63]} {
		resp := rawGet(t, socket, "/v1/id", bad)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("token %q: HTTP %d; want 403", bad, resp.StatusCode)
		}
	}
	if ran != 0 {
		t.Fatalf("the handler ran %d times for calls without the token", ran)
	}
	if resp := rawGet(t, socket, "/v1/id", token); resp.StatusCode != http.StatusOK {
		t.Errorf("with the token: HTTP %d", resp.StatusCode)
	}
	_, dir2 := serve(t, func(*Server) {})
	if readToken(dir2) == token {
		t.Error("two runs share a token")
	}
}

// A streamed call delivers its progress, then its result or an error that
// keeps its kind.
func TestStreamProgressResultAndError(t *testing.T) {
	c, _ := serve(t, func(s *Server) {
		s.HandleStream("POST /v1/get", func(_ context.Context, req Request, progress func(any)) (any, error) {
			for i := 1; i <= 3; i++ {
				progress(Progress{Phase: "fetch", Blocks: i, Of: 3})
			}
			if req.Query("target") == "nobody.avtr" {
				return nil, fault.New(fault.NotFound, "get nobody.avtr: not found")
			}
			return GetResult{Target: req.Query("target"), Kind: "file"}, nil
		})
	})
	var seen []Progress
	onProgress := func(raw json.RawMessage) {
		var p Progress
		json.Unmarshal(raw, &p)
		seen = append(seen, p)
	}
	var res GetResult
	if err := c.CallStream(context.Background(), "POST", "/v1/get", url.Values{"target": {"x.avtr"}}, onProgress, &res); err != nil {
		t.Fatal(err)
	}
	if res.Target != "x.avtr" || len(seen) != 3 || seen[2].Blocks != 3 {
		t.Fatalf("result %+v after progress %+v", res, seen)
	}
	err := c.CallStream(context.Background(), "POST", "/v1/get", url.Values{"target": {"nobody.avtr"}}, nil, &res)
	if fault.KindOf(err) != fault.NotFound || err.Error() != "get nobody.avtr: not found" {
		t.Fatalf("streamed error %q of kind %q; want not_found", err, fault.KindOf(err))
	}
}

func TestNoDaemon(t *testing.T) {
	dir := t.TempDir()
	err := NewClient(dir, socketFile).Call(context.Background(), "GET", "/v1/id", nil, nil, nil)
	if !errors.Is(err, ErrNoDaemon) || fault.KindOf(err) != fault.Unavailable || !strings.Contains(err.Error(), "avnode run --repo "+dir) {
		t.Fatalf("with no daemon: %q (kind %q)", err, fault.KindOf(err))
	}
}

// dialEnv makes this test binary, run as a child, call the socket it names
// and print what happened (see TestMain).
const dialEnv = "AVNODE_API_TEST_DIAL"

func TestMain(m *testing.M) {
	if dir := os.Getenv(dialEnv); dir != "" {
		var v VersionInfo
		if err := NewClient(dir, socketFile).Call(context.Background(), "GET", "/v1/version", nil, nil, &v); err != nil {
			fmt.Println("refused:", err)
		} else {
			fmt.Println("answered:", v.Version)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Another user of the machine gets no answer even when file permissions
// would let it reach the socket: the peer's credentials are checked.
func TestOtherUserRefused(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a child process as another user")
	}
	_, dir := serve(t, func(s *Server) {
		s.Handle("GET /v1/version", func(context.Context, Request) (any, error) { return VersionInfo{Version: "v-test"}, nil })
	})
	// Open the way: the folders, the socket and a copy of this binary.
	bin := filepath.Join(dir, "api.test")
	copyFile(t, os.Args[0], bin)
	for _, p := range []string{filepath.Dir(dir), dir} {
		os.Chmod(p, 0o755)
	}
	os.Chmod(filepath.Join(dir, socketFile), 0o666)

	run := func(uid uint32) string {
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), dialEnv+"="+dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child as uid %d: %v: %s", uid, err, out)
		}
		return string(out)
	}
	if out := run(0); !strings.HasPrefix(out, "answered: v-test") {
		t.Fatalf("the owner's own call: %s", out)
	}
	if out := run(65534); !strings.HasPrefix(out, "refused:") {
		t.Fatalf("user nobody drove the API: %s", out)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

// A JSON answer says how long the daemon spent on it (Server-Timing): at
// least what the handler took, at most what the caller waited; the node is
// told of every call by its pattern; and a call whose answer the caller
// drops leaves its connection to the next call.
func TestServerTimeAndConnectionReuse(t *testing.T) {
	var mu sync.Mutex
	observed := map[string]int{}
	c, _ := serve(t, func(s *Server) {
		s.OnCall(func(call string, took time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			observed[call]++
		})
		s.Handle("GET /v1/slow", func(context.Context, Request) (any, error) {
			time.Sleep(3 * time.Millisecond)
			return map[string]string{"ok": "yes"}, nil
		})
	})
	var reused []bool
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { reused = append(reused, info.Reused) }}
	ctx := httptrace.WithClientTrace(context.Background(), trace)
	for range 3 {
		var took time.Duration
		start := time.Now()
		if err := c.Call(WithServerTime(ctx, &took), "GET", "/v1/slow", nil, nil, nil); err != nil {
			t.Fatal(err)
		}
		waited := time.Since(start)
		if took < 3*time.Millisecond || took > waited {
			t.Fatalf("server time %v; want at least the handler's 3ms and at most the %v the caller waited", took, waited)
		}
	}
	if !slices.Equal(reused, []bool{false, true, true}) {
		t.Fatalf("connections reused %v; want the first call's connection kept for the next two", reused)
	}
	mu.Lock()
	defer mu.Unlock()
	if observed["GET /v1/slow"] != 3 {
		t.Fatalf("observed %v; want 3 calls of GET /v1/slow", observed)
	}
}

// Progress a handler's goroutine reports after the answer is sent (a
// ticker that outlived its handler) is dropped: the client gets the
// result, and the server neither writes to a finished response nor
// crashes (the race detector watches).
func TestProgressAfterTheAnswerIsDropped(t *testing.T) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	c, _ := serve(t, func(s *Server) {
		s.HandleStream("POST /v1/slow", func(_ context.Context, _ Request, progress func(any)) (any, error) {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
						progress(map[string]int{"late": 1})
					}
				}
			})
			return map[string]string{"done": "yes"}, nil
		})
	})
	for range 20 {
		var out map[string]string
		if err := c.CallStream(context.Background(), "POST", "/v1/slow", nil, nil, &out); err != nil || out["done"] != "yes" {
			t.Fatalf("answer %v, %v; want the result", out, err)
		}
	}
	close(stop)
	wg.Wait()
}
