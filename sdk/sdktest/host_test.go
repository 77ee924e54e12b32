package sdktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/avnode/avnode/sdk"
)

func TestFetchWalksTheStore(t *testing.T) {
	h := NewHost(t)
	sub := h.AddDir(map[string]string{"deep.txt": "deep"}, nil)
	root := h.AddDir(map[string]string{"index.html": "<h1>Hi</h1>"}, map[string]string{"sub": sub})
	h.SetName(sdk.Resolution{Name: "site.avtr", Root: root})
	ctx := context.Background()

	dir, err := h.Fetch(ctx, "site.avtr")
	if err != nil || dir.Kind != "dir" || dir.Root != root || len(dir.Entries) != 2 {
		t.Fatalf("Fetch of the name = %+v, %v", dir, err)
	}
	if e, ok := dir.Entry("index.html"); !ok || e.CID != CID("<h1>Hi</h1>") || e.Size != 11 {
		t.Errorf("index.html entry = %+v, %v", e, ok)
	}
	file, err := h.FetchUnannounced(ctx, "/cid/"+root+"/sub/deep.txt")
	if err != nil || !reflect.DeepEqual(file, sdk.Fetched{Root: root, CID: CID("deep"), Kind: "file", Size: 4}) {
		t.Fatalf("Fetch of a path = %+v, %v", file, err)
	}
	for _, target := range []string{"nobody.avtr", "site.avtr/missing", "site.avtr/index.html/x", "/cid/" + CID("none")} {
		if _, err := h.Fetch(ctx, target); !sdk.IsNotFound(err) {
			t.Errorf("Fetch %s: %v, want NotFound", target, err)
		}
	}
	if got := h.Calls("Fetch"); len(got) != 5 || got[1] != "nobody.avtr" {
		t.Errorf("Calls(Fetch) = %v", got)
	}
	if got := h.Calls("FetchUnannounced"); len(got) != 1 {
		t.Errorf("Calls(FetchUnannounced) = %v", got)
	}

	r, err := h.ReadFile(ctx, CID("deep"), 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(r); string(b) != "ee" || h.BytesRead() != 2 {
		t.Errorf("ReadFile = %q, %d bytes read", b, h.BytesRead())
	}
	h.Evict(CID("deep"))
	if _, err := h.ReadFile(ctx, CID("deep"), 0, 0); !sdk.IsNotFound(err) {
		t.Errorf("ReadFile of an evicted file: %v", err)
	}
	if _, err := h.Fetch(ctx, "site.avtr"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.ReadFile(ctx, CID("deep"), 0, 0); err != nil {
		t.Errorf("ReadFile after a fetch brought it back: %v", err)
	}
}

func TestFailAndHold(t *testing.T) {
	h := NewHost(t)
	h.AddFileAs("bafyA", "a")
	refused := errors.New("refused")
	h.Fail("Fetch", "/cid/bafyA", refused)
	ctx := context.Background()
	if _, err := h.Fetch(ctx, "/cid/bafyA"); !errors.Is(err, refused) {
		t.Errorf("failed Fetch: %v", err)
	}
	h.Fail("Fetch", "/cid/bafyA", nil)
	if _, err := h.Fetch(ctx, "/cid/bafyA"); err != nil {
		t.Errorf("Fetch after Fail was undone: %v", err)
	}

	started, release := h.HoldFetches()
	done := make(chan error, 1)
	go func() {
		_, err := h.Fetch(ctx, "/cid/bafyA")
		done <- err
	}()
	if target := <-started; target != "/cid/bafyA" {
		t.Errorf("started %q", target)
	}
	select {
	case err := <-done:
		t.Fatalf("a held fetch returned: %v", err)
	default:
	}
	release()
	if err := <-done; err != nil {
		t.Errorf("released fetch: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	_, release = h.HoldFetches()
	defer release()
	if _, err := h.Fetch(short, "/cid/bafyA"); err == nil {
		t.Error("a held fetch outlived its context")
	}
}

func TestNamesZonesAndCopies(t *testing.T) {
	h := NewHost(t)
	ctx := context.Background()
	res, err := h.Claim(ctx, "me.avtr", "k51me")
	if err != nil || res.Key != "k51me" || res.Seq != 1 || res.Hosts[0].ID != PeerID {
		t.Fatalf("Claim = %+v, %v", res, err)
	}
	z, err := h.SetZoneRecord(ctx, "me.avtr", "TXT", "", "copies=3")
	if err != nil || z.Seq != 2 || !reflect.DeepEqual(z.Records, []sdk.ZoneRecord{{Type: "TXT", Value: "copies=3"}}) {
		t.Fatalf("SetZoneRecord = %+v, %v", z, err)
	}
	if z, err = h.RemoveZoneRecord(ctx, "me.avtr", "TXT", "", "copies=3"); err != nil || z.Seq != 3 || len(z.Records) != 0 {
		t.Fatalf("RemoveZoneRecord = %+v, %v", z, err)
	}
	if _, err := h.SetZoneRecord(ctx, "other.avtr", "TXT", "", "x"); !sdk.IsNotFound(err) {
		t.Errorf("a zone the node does not own: %v", err)
	}
	if res, err = h.OfferZone(ctx, "/avtr-zone/me.avtr", []byte("signed")); err != nil || string(res.SignedZone) != "signed" {
		t.Errorf("OfferZone = %+v, %v", res, err)
	}
	if v, ok := h.Record("/avtr-zone/me.avtr"); !ok || string(v) != "signed" {
		t.Errorf("the offered zone is not stored: %q", v)
	}
	if err := h.AttestCopy(ctx, "me.avtr", 3); err != nil {
		t.Fatal(err)
	}
	if peers, err := h.FindCopies(ctx, "me.avtr", 3); err != nil || len(peers) != 1 || peers[0] != PeerID {
		t.Errorf("FindCopies = %v, %v", peers, err)
	}
	if peers, _ := h.FindCopies(ctx, "me.avtr", 2); len(peers) != 0 {
		t.Errorf("copies of another version: %v", peers)
	}
}

func TestSubscriptions(t *testing.T) {
	h := NewHost(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := h.Subscribe(ctx, "name.updated")
	if err != nil {
		t.Fatal(err)
	}
	h.Emit(sdk.Event{Kind: "peer.connected"})
	h.Emit(sdk.Event{Kind: "name.updated", Attrs: map[string]string{"name": "a.avtr"}})
	if e := <-events; e.Kind != "name.updated" || e.Attrs["name"] != "a.avtr" {
		t.Errorf("event = %+v; the other kind should not arrive", e)
	}

	msgs, err := h.SubscribeTopic(ctx, "avtr/name/a.avtr")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Publish(ctx, "avtr/name/a.avtr", []byte("mine")); err != nil {
		t.Fatal(err)
	}
	h.Deliver(sdk.TopicMessage{Topic: "avtr/name/b.avtr", Data: []byte("elsewhere")})
	h.Deliver(sdk.TopicMessage{Topic: "avtr/name/a.avtr", Data: []byte("theirs"), From: "12D3KooWother"})
	if m := <-msgs; string(m.Data) != "mine" || m.From != PeerID {
		t.Errorf("own message = %+v", m)
	}
	if m := <-msgs; string(m.Data) != "theirs" || m.From != "12D3KooWother" {
		t.Errorf("delivered message = %+v", m)
	}

	// As on the node, both channels close when the context ends, so that a
	// role ranging over them stops; later sends reach nobody.
	cancel()
	for range events {
	}
	for range msgs {
	}
	h.Emit(sdk.Event{Kind: "name.updated"})
	h.Deliver(sdk.TopicMessage{Topic: "avtr/name/a.avtr"})
}

func TestNodeSide(t *testing.T) {
	h := NewHost(t)
	ctx := context.Background()
	h.SetConfig("gateway.listen", "127.0.0.1:0")
	var listen string
	if err := h.NodeConfig(ctx, "gateway.listen", &listen); err != nil || listen != "127.0.0.1:0" {
		t.Errorf("NodeConfig = %q, %v", listen, err)
	}
	if err := h.NodeConfig(ctx, "nothing", &listen); !sdk.IsNotFound(err) {
		t.Errorf("NodeConfig of a missing key: %v", err)
	}
	h.SetVerdict("mirror", sdk.Verdict{Decided: true, Reason: "too big"})
	if v, err := h.Decide(ctx, "mirror", map[string]any{"size_bytes": 1}); err != nil || !v.Decided || v.Allow || v.Reason != "too big" {
		t.Errorf("Decide = %+v, %v", v, err)
	}
	if v, _ := h.Decide(ctx, "relay_reserve", nil); v.Decided {
		t.Errorf("a hook without a verdict decided: %+v", v)
	}
	h.HandleRole("chat", func(_ context.Context, command string, args []string) (any, error) {
		return map[string]string{"echo": command + " " + strings.Join(args, " ")}, nil
	})
	if out, err := h.CallRole(ctx, "chat", "offload", "x"); err != nil || string(out) != `{"echo":"offload x"}` {
		t.Errorf("CallRole = %s, %v", out, err)
	}
	if _, err := h.CallRole(ctx, "mirror", "ls"); !sdk.IsNotFound(err) {
		t.Errorf("CallRole of a role not running: %v", err)
	}
	if _, err := h.StartRelay(ctx, sdk.RelayLimits{MaxReservations: 3}); err != nil {
		t.Fatal(err)
	}
	if l, ok := h.RelayLimits(); !ok || l.MaxReservations != 3 {
		t.Errorf("RelayLimits = %+v, %v", l, ok)
	}
	if st, _ := h.RelayStatus(ctx); !st.Running {
		t.Error("the relay does not run after StartRelay")
	}
	h.Logger().Info("hello", "n", 1)
	if logs := h.Logs(); len(logs) != 1 || !strings.Contains(logs[0], "msg=hello n=1") {
		t.Errorf("Logs = %q", logs)
	}
	h.CounterAdd("prompts", "", 2)
	h.CounterAdd("prompts", "", 1)
	if v, ok := h.CounterValue("prompts"); !ok || v != 3 {
		t.Errorf("counter = %v", v)
	}
	if err := h.HandleProtocol(ctx, "/x/1", nil); !sdk.IsUnimplemented(err) {
		t.Errorf("HandleProtocol: %v", err)
	}
}

// fatalRecorder is a testing.TB whose Fatalf records instead of stopping.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
}

func TestEventually(t *testing.T) {
	n := 0
	Eventually(t, 5*time.Second, "third call", func() error {
		if n++; n < 3 {
			return fmt.Errorf("call %d", n)
		}
		return nil
	})
	rec := &fatalRecorder{TB: t}
	Eventually(rec, 50*time.Millisecond, "never", func() error { return errors.New("still false") })
	if rec.msg != "never: not true after 50ms: still false" {
		t.Errorf("failure message %q", rec.msg)
	}
}
