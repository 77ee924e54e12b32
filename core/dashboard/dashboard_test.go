package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func startTest(t *testing.T) *Server {
	t.Helper()
	s, err := Start(Options{Listen: "127.0.0.1:0", Log: slog.New(slog.DiscardHandler),
		State:    func(context.Context) (any, error) { return map[string]string{"peer_id": "12D3KooWtest"}, nil },
		Sample:   func() map[string]float64 { return map[string]float64{"peers": 3} },
		Interval: 10 * time.Millisecond, Keep: 5})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// rawRequest speaks HTTP/1.1 by hand, Host header and all, as a page or
// program that is not a browser would.
func rawRequest(t *testing.T, addr, request string) (status int, body string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, request)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read the answer to %q: %v", request, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

func login(t *testing.T, s *Server, code string) (int, string) {
	t.Helper()
	addr := strings.TrimPrefix(s.URL(), "http://")
	payload := `{"code":"` + code + `"}`
	status, body := rawRequest(t, addr, "POST /api/login HTTP/1.1\r\nHost: "+addr+"\r\nContent-Type: application/json\r\nContent-Length: "+
		strconv.Itoa(len(payload))+"\r\nConnection: close\r\n\r\n"+payload)
	var answer struct{ Session string }
	json.Unmarshal([]byte(body), &answer)
	return status, answer.Session
}

func state(t *testing.T, s *Server, host, session string) (int, string) {
	t.Helper()
	addr := strings.TrimPrefix(s.URL(), "http://")
	return rawRequest(t, addr, "GET /api/state HTTP/1.1\r\nHost: "+host+"\r\nAuthorization: Bearer "+session+"\r\nConnection: close\r\n\r\n")
}

func TestCodeOpensOneSessionOnce(t *testing.T) {
	s := startTest(t)
	addr := strings.TrimPrefix(s.URL(), "http://")
	if status, body := state(t, s, addr, ""); status != http.StatusUnauthorized || strings.Contains(body, "12D3KooWtest") {
		t.Fatalf("no session: %d %s, want 401 and no data", status, body)
	}
	url, _ := s.NewCode()
	code := url[strings.Index(url, "#code=")+len("#code="):]
	status, session := login(t, s, code)
	if status != http.StatusOK || session == "" {
		t.Fatalf("login with a fresh code: %d %q", status, session)
	}
	if status, body := state(t, s, addr, session); status != http.StatusOK || !strings.Contains(body, "12D3KooWtest") {
		t.Fatalf("with the session: %d %s", status, body)
	}
	if status, again := login(t, s, code); status != http.StatusUnauthorized || again != "" {
		t.Fatalf("the same code twice: %d %q, want 401", status, again)
	}
	if status, _ := login(t, s, strings.Repeat("0", len(code))); status != http.StatusUnauthorized {
		t.Fatalf("a made-up code: %d, want 401", status)
	}
}

func TestExpiredCodeIsRefused(t *testing.T) {
	s := startTest(t)
	url, _ := s.NewCode()
	code := url[strings.Index(url, "#code=")+len("#code="):]
	s.mu.Lock()
	s.codes[code] = time.Now().Add(-time.Second)
	s.mu.Unlock()
	if status, _ := login(t, s, code); status != http.StatusUnauthorized {
		t.Fatalf("an expired code: %d, want 401", status)
	}
}

// A page whose name was rebound to 127.0.0.1 sends its own name as Host:
// with a session it somehow had, it still gets nothing.
func TestForeignHostIsRefused(t *testing.T) {
	s := startTest(t)
	addr := strings.TrimPrefix(s.URL(), "http://")
	url, _ := s.NewCode()
	_, session := login(t, s, url[strings.Index(url, "#code=")+len("#code="):])
	_, port, _ := net.SplitHostPort(addr)
	for _, host := range []string{"evil.example:" + port, "evil.example", "127.0.0.1.evil.example:" + port, "",
		"localhost:" + port, "127.0.0.1", "[::1]:" + port} {
		if status, body := state(t, s, host, session); status != http.StatusForbidden || strings.Contains(body, "12D3KooWtest") {
			t.Errorf("Host %q: %d %s, want 403", host, status, body)
		}
	}
	if status, _ := state(t, s, strings.ToUpper(addr), session); status != http.StatusOK {
		t.Errorf("Host %s: %d, want 200", addr, status)
	}
}

func TestLoginTakesJSONOnly(t *testing.T) {
	s := startTest(t)
	addr := strings.TrimPrefix(s.URL(), "http://")
	url, _ := s.NewCode()
	payload := `{"code":"` + url[strings.Index(url, "#code=")+len("#code="):] + `"}`
	// A form post is what a page of another origin can send without asking.
	status, _ := rawRequest(t, addr, "POST /api/login HTTP/1.1\r\nHost: "+addr+"\r\nContent-Type: text/plain\r\nContent-Length: "+
		strconv.Itoa(len(payload))+"\r\nConnection: close\r\n\r\n"+payload)
	if status != http.StatusUnsupportedMediaType {
		t.Fatalf("login as text/plain: %d, want 415", status)
	}
}

func TestPageHeadersForbidFramingAndInlineScript(t *testing.T) {
	s := startTest(t)
	resp, err := http.Get(s.URL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != 200 || !strings.Contains(string(body), "app.js") ||
		!strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'self'") || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("page: %d, CSP %q, X-Frame-Options %q", resp.StatusCode, csp, resp.Header.Get("X-Frame-Options"))
	}
}

func TestHistoryKeepsTheLastSamples(t *testing.T) {
	h := newHistory(3)
	now := time.Now()
	for i := range 5 {
		sample := map[string]float64{"peers": float64(i)}
		if i >= 3 {
			sample["late"] = 10
		}
		h.add(now.Add(time.Duration(i)*time.Second), sample)
	}
	times, series := h.snapshot()
	if len(times) != 3 || series["peers"][0] != 2 || series["peers"][2] != 4 || len(series["late"]) != 3 || series["late"][0] != 0 || series["late"][1] != 10 {
		t.Fatalf("times %v series %v", times, series)
	}
}

func TestPeerUIDOfALoopbackConnection(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6"} {
		host := map[string]string{"tcp4": "127.0.0.1:0", "tcp6": "[::1]:0"}[network]
		ln, err := net.Listen(network, host)
		if err != nil {
			t.Logf("%s: %v (skipped)", network, err)
			continue
		}
		accepted := make(chan net.Conn, 1)
		go func() {
			c, _ := ln.Accept()
			accepted <- c
		}()
		client, err := net.Dial(network, ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		server := <-accepted
		uid, err := loopbackPeerUID(server)
		if err != nil || uid != uint32(os.Getuid()) {
			t.Errorf("%s: uid %d, %v; want %d", network, uid, err, os.Getuid())
		}
		// A client gone (its socket closing, then closed) has no owner.
		client.Close()
		if uid, err := loopbackPeerUID(server); err == nil {
			t.Errorf("%s: a closed client's socket counted as uid %d", network, uid)
		}
		server.Close()
		ln.Close()
	}
}
