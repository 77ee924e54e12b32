package sdk

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/avnode/avnode/sdk/pluginpb"
)

// syncBuffer is a bytes.Buffer safe for the writers of several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// inProcessHost serves f over an in-memory connection and returns the Host
// a role would get, writing its stderr to the returned buffer.
func inProcessHost(t *testing.T, f *fakeNode, level slog.Level) (*grpcHost, *syncBuffer) {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := newHostServer(f)(nil)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///fakehost",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	stderr := &syncBuffer{}
	return newGRPCHost(conn, stderr, level), stderr
}

func TestHostCalls(t *testing.T) {
	f := newFakeNode()
	h, _ := inProcessHost(t, f, slog.LevelInfo)
	ctx := context.Background()

	res, err := h.Resolve(ctx, "einstein.avtr")
	want := Resolution{Name: "einstein.avtr", Key: "k51test", Seq: 4, Expires: time.Unix(1767225600, 0),
		Records: []ZoneRecord{{Type: "SAT", Value: "12D3KooWs"}}, Hosts: []PeerInfo{{ID: "12D3KooWh", Addrs: []string{"/ip4/192.0.2.1/tcp/4001"}}},
		Root: "bafyroot", SignedZone: []byte("zone"), SignedClaim: []byte("claim"), CopiesWanted: 3, KeyType: "Ed25519+ML-DSA-65", Rotations: 2}
	if err != nil || !reflect.DeepEqual(res, want) {
		t.Fatalf("Resolve = %+v, %v; want %+v", res, err, want)
	}
	if err := h.PutRecord(ctx, "/avtr-zone/a", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if v, err := h.GetRecord(ctx, "/avtr-zone/a"); err != nil || string(v) != "v" {
		t.Fatalf("GetRecord = %q, %v", v, err)
	}
	if _, err := h.SetZoneRecord(ctx, "n.avtr", "TXT", "@", "hi"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.RemoveZoneRecord(ctx, "n.avtr", "TXT", "@", "hi"); err != nil {
		t.Fatal(err)
	}
	if peers, err := h.FindProviders(ctx, "bafyx"); err != nil || len(peers) != 2 {
		t.Fatalf("FindProviders = %v, %v", peers, err)
	}
	wantFetched := Fetched{Root: "bafyx", CID: "bafyx", Kind: "dir", Size: 5, BlocksFetched: 3,
		Entries: []DirEntry{{Name: "index.html", CID: "bafyi", Kind: "file", Size: 5}}}
	if r, err := h.Fetch(ctx, "/cid/bafyx"); err != nil || !reflect.DeepEqual(r, wantFetched) {
		t.Fatalf("Fetch = %+v, %v; want %+v", r, err, wantFetched)
	}
	if err := h.Pin(ctx, "bafyx", "because"); err != nil {
		t.Fatal(err)
	}
	if err := h.Unpin(ctx, "bafyx"); err != nil {
		t.Fatal(err)
	}
	limits := RelayLimits{MaxReservations: 16, MaxReservationsPerIP: 4, MaxCircuits: 8, CircuitDuration: 2 * time.Minute,
		CircuitBytes: 1 << 20, ReservationTTL: time.Hour}
	if st, err := h.StartRelay(ctx, limits); err != nil || st != (RelayStats{Running: true, Reservations: 5, Refused: 1, Circuits: 2}) {
		t.Fatalf("StartRelay = %+v, %v", st, err)
	}
	wantVerdict := Verdict{Decided: true, Order: []string{"b", "a"}, Reason: "quota", Script: "m.lua", Fallback: true}
	if v, err := h.Decide(ctx, "mirror", map[string]int{"size": 3}); err != nil || !reflect.DeepEqual(v, wantVerdict) {
		t.Fatalf("Decide = %+v, %v; want %+v", v, err, wantVerdict)
	}
	for _, call := range []string{
		"StartRelay 16 4 8 120s 1048576 3600s", `Decide mirror {"size":3}`,
		"Resolve einstein.avtr", "PutRecord /avtr-zone/a", "GetRecord /avtr-zone/a",
		"SetZoneRecord n.avtr TXT @ hi remove=false", "SetZoneRecord n.avtr TXT @ hi remove=true",
		"FindProviders bafyx", "Fetch /cid/bafyx", "Pin bafyx because", "Unpin bafyx",
	} {
		if !f.called(call) {
			t.Errorf("the node did not see %q", call)
		}
	}
}

func TestHostErrorsKeepTheirStatus(t *testing.T) {
	h, _ := inProcessHost(t, newFakeNode(), slog.LevelInfo)
	ctx := context.Background()

	_, err := h.GetRecord(ctx, "/nothing")
	if !IsNotFound(err) || IsUnimplemented(err) {
		t.Fatalf("GetRecord of a missing key: %v; want NotFound", err)
	}
	s, ok := status.FromError(err)
	if !ok || s.Code() != codes.NotFound || s.Message() != "no record under /nothing" {
		t.Errorf("status = %v %q; want the node's code and message", s.Code(), s.Message())
	}
	if want := `host GetRecord "/nothing": NotFound: no record under /nothing`; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if _, err := h.Resolve(ctx, "missing.avtr"); !IsNotFound(err) {
		t.Errorf("Resolve of a missing name: %v", err)
	}
	if err := h.Provide(ctx, "bafyx"); !IsUnimplemented(err) || IsNotFound(err) {
		t.Errorf("Provide on a node without it: %v; want Unimplemented", err)
	}
	if IsNotFound(nil) || IsUnimplemented(nil) || IsNotFound(errors.New("plain")) {
		t.Error("Is* must be false for nil and errors without a status")
	}
}

func TestHostSubscribe(t *testing.T) {
	f := newFakeNode()
	h, _ := inProcessHost(t, f, slog.LevelInfo)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	events, err := h.Subscribe(ctx, "peer.connected")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	f.events <- &pluginpb.Event{Kind: "peer.connected", TimeUnixNano: at.UnixNano(), Attrs: map[string]string{"peer_id": "p1"}}
	select {
	case ev := <-events:
		if ev.Kind != "peer.connected" || ev.Attrs["peer_id"] != "p1" || !ev.Time.Equal(at) {
			t.Errorf("event = %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	cancel()
	select {
	case _, open := <-events:
		for open {
			_, open = <-events
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after the context ended")
	}
}

func TestHostSubscribeClosesWhenTheStreamBreaks(t *testing.T) {
	f := newFakeNode()
	h, _ := inProcessHost(t, f, slog.LevelInfo)
	events, err := h.Subscribe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	close(f.events)
	select {
	case _, open := <-events:
		if open {
			t.Fatal("unexpected event")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after the stream broke")
	}
}

func TestHostSubscribeUnimplemented(t *testing.T) {
	f := newFakeNode()
	f.events = nil
	h, _ := inProcessHost(t, f, slog.LevelInfo)
	start := time.Now()
	events, err := h.Subscribe(context.Background(), "peer.connected")
	if !IsUnimplemented(err) || events != nil {
		t.Fatalf("Subscribe = %v, %v; want Unimplemented", events, err)
	}
	if d := time.Since(start); d >= subscribeWait {
		t.Errorf("a refusal took %s to learn; it should not wait for the timeout", d)
	}
}

func TestHostLogger(t *testing.T) {
	f := newFakeNode()
	h, stderr := inProcessHost(t, f, slog.LevelInfo)
	log := h.Logger().With("a", 1, slog.Group("g0", "x", "y")).WithGroup("req")
	log.Debug("dropped")
	log.Warn("hello", "n", 2, "err", errors.New("bad"), slog.Group("sub", "k", true), slog.Group("", "inline", "i"),
		"when", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), "", "no key", slog.Group("empty"))
	h.Logger().Error("plain")
	h.Logger().Log(context.Background(), slog.LevelError+4, "beyond error")

	e := f.logged("hello")
	if e == nil {
		t.Fatal("the node got no record")
	}
	want := map[string]string{
		"a": "1", "g0.x": "y", "req.n": "2", "req.err": "bad", "req.sub.k": "true", "req.inline": "i",
		"req.when": "2026-01-02T03:04:05Z",
	}
	if e.GetLevel() != "warn" || len(e.GetAttrs()) != len(want) {
		t.Errorf("record = %v; want level warn and %v", e, want)
	}
	for k, v := range want {
		if e.GetAttrs()[k] != v {
			t.Errorf("attr %s = %q, want %q", k, e.GetAttrs()[k], v)
		}
	}
	if f.logged("dropped") != nil {
		t.Error("a debug record crossed at level info")
	}
	if e := f.logged("plain"); e == nil || e.GetLevel() != "error" || len(e.GetAttrs()) != 0 {
		t.Errorf("plain record = %v", e)
	}
	if e := f.logged("beyond error"); e == nil || e.GetLevel() != "error" {
		t.Errorf("ERROR+4 record = %v", e)
	}
	if stderr.String() != "" {
		t.Errorf("stderr = %q; nothing should go there while the node takes logs", stderr)
	}
}

func TestHostLoggerFallsBackToStderr(t *testing.T) {
	f := newFakeNode()
	f.logErr = status.Error(codes.Unavailable, "node busy")
	h, stderr := inProcessHost(t, f, slog.LevelInfo)
	h.Logger().With("role_attr", "x").Info("first", "k", "v")
	h.Logger().Info("second")
	out := stderr.String()
	for _, want := range []string{"node busy", "msg=first", "role_attr=x", "k=v", "msg=second"} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "did not take a log record"); n != 1 {
		t.Errorf("the failure was reported %d times, want once", n)
	}
}

func TestHostLoggerTruncatesHugeValues(t *testing.T) {
	f := newFakeNode()
	h, _ := inProcessHost(t, f, slog.LevelInfo)
	h.Logger().Info("big", "v", strings.Repeat("é", maxAttrLen))
	e := f.logged("big")
	if e == nil {
		t.Fatal("no record")
	}
	v := e.GetAttrs()["v"]
	if len(v) > maxAttrLen+64 || !strings.Contains(v, "bytes cut") || !strings.HasPrefix(v, "éé") {
		t.Errorf("value not cut cleanly: %d bytes, ends %q", len(v), v[len(v)-30:])
	}
}

func TestHostMetrics(t *testing.T) {
	f := newFakeNode()
	h, stderr := inProcessHost(t, f, slog.LevelInfo)
	h.Gauge("pinned", "CIDs pinned", 3)
	h.CounterAdd("fetches", "", 2)
	if m := f.metric("pinned"); m == nil || m.GetValue() != 3 || m.GetKind() != pluginpb.MetricSample_KIND_GAUGE || m.GetHelp() != "CIDs pinned" {
		t.Errorf("gauge = %v", m)
	}
	if m := f.metric("fetches"); m == nil || m.GetValue() != 2 || m.GetKind() != pluginpb.MetricSample_KIND_COUNTER_ADD {
		t.Errorf("counter = %v", m)
	}

	f.mu.Lock()
	f.metricErr = status.Error(codes.InvalidArgument, `metric name "Bad": use 1-64 lower-case letters`)
	f.mu.Unlock()
	h.Gauge("Bad", "", 1)
	h.Gauge("Bad", "", 2)
	if n := strings.Count(stderr.String(), `metric Bad not recorded`); n != 1 {
		t.Errorf("a failing metric was reported %d times, want once:\n%s", n, stderr)
	}
}
