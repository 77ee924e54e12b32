package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/avnode/avnode/sdk"
	"github.com/avnode/avnode/sdk/sdktest"
)

const (
	beaconPeer = "12D3KooWBeacon"
	otherPeer  = "12D3KooWOtherHost"
)

// answerFunc is how a fake beacon answers one request: the bytes it
// writes back, or nil to stay silent until the stream is reset.
type answerFunc func(req sdk.SatelliteRequest) []byte

// respond answers resp to every request.
func respond(resp sdk.SatelliteResponse) answerFunc {
	return func(sdk.SatelliteRequest) []byte {
		data, err := json.Marshal(resp)
		if err != nil {
			panic(err)
		}
		return data
	}
}

// fakeBeacons stands in for the peers the satellite opens streams to: a
// peer with an answerFunc answers as a beacon does (it reads the request
// to the end of the satellite's side, then writes one answer); any other
// peer is left to the Host's OpenStream, which cannot reach it.
type fakeBeacons struct {
	h *sdktest.Host

	mu      sync.Mutex
	answers map[string]answerFunc
	asked   []string                 // "PEER OP ARG" of each request read
	reqs    []sdk.SatelliteRequest   // each request read, decoded
	left    map[string]time.Duration // op → time its stream's context had left when opened
	opened  int
	closed  int
	stuck   int // reads of a silent beacon the satellite did not end
}

func newBeacons(h *sdktest.Host) *fakeBeacons {
	return &fakeBeacons{h: h, answers: map[string]answerFunc{}, left: map[string]time.Duration{}}
}

// set makes peer a beacon that answers with answer; nil makes it unreachable.
func (b *fakeBeacons) set(peer string, answer answerFunc) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if answer == nil {
		delete(b.answers, peer)
		return
	}
	b.answers[peer] = answer
}

func (b *fakeBeacons) open(ctx context.Context, peer string) (beaconStream, error) {
	b.mu.Lock()
	answer, ok := b.answers[peer]
	if ok {
		b.opened++
	}
	b.mu.Unlock()
	if !ok {
		_, err := b.h.OpenStream(ctx, peer, sdk.SatelliteProtocol)
		return nil, err
	}
	var left time.Duration
	if d, ok := ctx.Deadline(); ok {
		left = time.Until(d)
	}
	return &fakeStream{b: b, peer: peer, answer: answer, left: left, done: make(chan struct{})}, nil
}

func (b *fakeBeacons) requests() ([]string, []sdk.SatelliteRequest) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.asked), slices.Clone(b.reqs)
}

// timeLeft is the time the stream of the last request of op had.
func (b *fakeBeacons) timeLeft(op string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.left[op]
}

// checkStreams fails the test if the satellite left a stream open, or
// waited for a silent beacon without resetting the stream when it gave up.
func (b *fakeBeacons) checkStreams(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if n := b.opened - b.closed; n != 0 {
		t.Errorf("%d of %d streams left open", n, b.opened)
	}
	if b.stuck != 0 {
		t.Errorf("%d requests to a silent beacon were not reset when they gave up", b.stuck)
	}
}

type fakeStream struct {
	b      *fakeBeacons
	peer   string
	answer answerFunc
	left   time.Duration

	mu        sync.Mutex
	sent      bytes.Buffer
	sentAll   bool   // the satellite closed its side
	reply     []byte // unread part of the answer
	silent    bool
	closed    bool
	done      chan struct{} // closed by Reset
	resetOnce sync.Once
}

func (s *fakeStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sentAll || s.closed {
		return 0, errors.New("write on a closed stream")
	}
	return s.sent.Write(p)
}

// CloseWrite ends the request: the beacon reads it and answers.
func (s *fakeStream) CloseWrite() error {
	s.mu.Lock()
	if s.sentAll {
		s.mu.Unlock()
		return nil
	}
	s.sentAll = true
	sent := slices.Clone(s.sent.Bytes())
	s.mu.Unlock()

	var req sdk.SatelliteRequest
	var reply []byte
	if err := sdk.ReadSatelliteMessage(bytes.NewReader(sent), &req); err != nil {
		reply, _ = json.Marshal(sdk.SatelliteResponse{Error: "bad request: " + err.Error()})
	} else {
		arg := req.Name + req.Target + req.Service
		s.b.mu.Lock()
		s.b.asked = append(s.b.asked, strings.TrimSpace(s.peer+" "+req.Op+" "+arg))
		s.b.reqs = append(s.b.reqs, req)
		s.b.left[req.Op] = s.left
		s.b.mu.Unlock()
		reply = s.answer(req)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reply, s.silent = reply, reply == nil
	return nil
}

func (s *fakeStream) Read(p []byte) (int, error) {
	s.mu.Lock()
	if !s.sentAll {
		s.mu.Unlock()
		// A beacon reads the request to its end before it answers: a
		// satellite reading first would wait for ever.
		return 0, errors.New("fake beacon: the satellite reads before it closed its request")
	}
	if s.silent {
		s.mu.Unlock()
		// A stream does not watch the request's context: the satellite
		// must reset it, or a silent beacon holds it for ever.
		select {
		case <-s.done:
			return 0, errors.New("stream reset")
		case <-time.After(10 * time.Second):
			s.b.mu.Lock()
			s.b.stuck++
			s.b.mu.Unlock()
			return 0, errors.New("fake beacon: the satellite never reset the stream of a silent beacon")
		}
	}
	defer s.mu.Unlock()
	if len(s.reply) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.reply)
	s.reply = s.reply[n:]
	return n, nil
}

func (s *fakeStream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.b.mu.Lock()
		s.b.closed++
		s.b.mu.Unlock()
	}
	return nil
}

func (s *fakeStream) Reset() { s.resetOnce.Do(func() { close(s.done) }) }

// start starts a satellite with config on h, its streams going to beacons,
// and stops it when the test ends.
func start(t *testing.T, h *sdktest.Host, beacons *fakeBeacons, config string) *satellite {
	t.Helper()
	s := &satellite{}
	if diags := s.Start(t.Context(), json.RawMessage(config), h); diags.HasError() {
		t.Fatalf("Start(%s): %v", config, diags)
	}
	if beacons != nil {
		s.open = beacons.open
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	return s
}

// call runs a command as `avnode roles call satellite …` does, and returns
// its answer as JSON, or its error.
func call(s *satellite, ctx context.Context, command string, args ...string) (string, error) {
	out, diags := s.Command(ctx, command, args)
	if err := diags.Err(); err != nil {
		return "", err
	}
	data, err := json.Marshal(out)
	return string(data), err
}

// statusOf is what `avnode satellite status --json` shows.
func statusOf(t *testing.T, s *satellite) map[string]any {
	t.Helper()
	out, err := call(s, t.Context(), "status")
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// pairedBeacon gives h the name site.avtr hosted by beaconPeer, and
// beacons a beacon there that accepts the pairing and answers the rest
// with rest. It returns a satellite paired with it.
func pairedBeacon(t *testing.T, h *sdktest.Host, beacons *fakeBeacons, config string, rest answerFunc) *satellite {
	t.Helper()
	h.SetName(sdk.Resolution{Name: "site.avtr", Key: "k51site", Seq: 1, Hosts: []sdk.PeerInfo{{ID: beaconPeer}}})
	beacons.set(beaconPeer, func(req sdk.SatelliteRequest) []byte {
		if req.Op == sdk.SatPair {
			return respond(sdk.SatelliteResponse{Beacon: beaconPeer})(req)
		}
		return rest(req)
	})
	s := start(t, h, beacons, config)
	if _, err := call(s, t.Context(), "pair", "site.avtr"); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestValidateConfig(t *testing.T) {
	for _, c := range []struct{ config, want, attr string }{
		{config: `{}`},
		{config: `{"timeout":"2s"}`},
		{config: `{"timeout":"100ms"}`},
		{config: `{"timeout":"99ms"}`, want: "at least 100ms", attr: "timeout"},
		{config: `{"timeout":"-5s"}`, want: "at least 100ms", attr: "timeout"},
		{config: `{"timeout":"soon"}`, want: `timeout "soon" is not a duration`, attr: "timeout"},
		{config: `{"timeout":5}`, want: "config is not valid"},
		{config: `{"timout":"1s"}`, want: "unknown field"},
		{config: `[]`, want: "config is not valid"},
	} {
		t.Run(c.config, func(t *testing.T) {
			s := &satellite{}
			diags := s.ValidateConfig(json.RawMessage(c.config))
			if s.timeout != 0 || s.host != nil || s.paired != nil {
				t.Errorf("ValidateConfig changed the satellite: timeout %v, host %v, paired %v", s.timeout, s.host, s.paired)
			}
			if c.want == "" {
				if len(diags) != 0 {
					t.Errorf("diagnostics = %v, want none", diags)
				}
				return
			}
			if len(diags) != 1 || !diags.HasError() || diags[0].Attribute != c.attr || !strings.Contains(diags[0].Summary, c.want) {
				t.Errorf("diagnostics = %+v, want one error at %q saying %q", diags, c.attr, c.want)
			}
			// Start refuses it too, before it reads the node or the data folder.
			h := sdktest.NewHost(t)
			if diags := (&satellite{}).Start(t.Context(), json.RawMessage(c.config), h); !diags.HasError() {
				t.Error("Start took a config ValidateConfig refuses")
			}
			if calls := h.Calls("NodeConfig"); len(calls) != 0 {
				t.Errorf("Start with a refused config read the node's config: %v", calls)
			}
		})
	}
}

func TestSchemaAgreesWithConfig(t *testing.T) {
	sdktest.CheckSchema(t, (&satellite{}).Describe().ConfigSchema, config{})
}

func TestStartTakesTheConfigItIsGiven(t *testing.T) {
	s := &satellite{}
	if diags := s.ValidateConfig(json.RawMessage(`{"timeout":"1s"}`)); len(diags) != 0 {
		t.Fatal(diags)
	}
	if s.timeout != 0 {
		t.Errorf("ValidateConfig set the timeout: %v", s.timeout)
	}
	if s := start(t, sdktest.NewHost(t), nil, `{"timeout":"250ms"}`); s.timeout != 250*time.Millisecond {
		t.Errorf("timeout = %v, want Start's 250ms", s.timeout)
	}
	if s := start(t, sdktest.NewHost(t), nil, `{}`); s.timeout != 5*time.Second {
		t.Errorf("timeout = %v, want the default 5s", s.timeout)
	}
}

// A resolve and a pair wait timeout for the beacon; a get and an offload,
// which may move a whole site or run a model, ten times that.
func TestTimeoutBoundsEachRequest(t *testing.T) {
	h := sdktest.NewHost(t)
	beacons := newBeacons(h)
	s := pairedBeacon(t, h, beacons, `{"timeout":"2s"}`, respond(sdk.SatelliteResponse{Root: h.AddFile("content")}))

	for _, args := range [][]string{{"resolve-ahead", "resolve", "site.avtr"}, {"resolve-ahead", "get", "/cid/x"}, {"offload", "chat"}} {
		if _, err := call(s, t.Context(), args[0], args[1:]...); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	for _, c := range []struct {
		op       string
		min, max time.Duration
	}{
		{sdk.SatPair, time.Second, 2 * time.Second},
		{sdk.SatResolve, time.Second, 2 * time.Second},
		{sdk.SatGet, 2 * time.Second, 20 * time.Second},
		{sdk.SatOffload, 2 * time.Second, 20 * time.Second},
	} {
		if left := beacons.timeLeft(c.op); left <= c.min || left > c.max {
			t.Errorf("a %s had %v to get its answer, want up to %v", c.op, left, c.max)
		}
	}
}

func TestStartWarnsWhenTheNodeIsNotLight(t *testing.T) {
	for _, c := range []struct {
		name  string
		mode  any
		serve any
		want  []string
	}{
		{name: "light", mode: "client", serve: false},
		{name: "unset"},
		{name: "dht server", mode: "server", serve: false, want: []string{"set dht.mode: client"}},
		{name: "serving", mode: "client", serve: true, want: []string{"set content.serve: false"}},
		{name: "both", mode: "auto", serve: true, want: []string{"set dht.mode: client", "set content.serve: false"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := sdktest.NewHost(t)
			if c.mode != nil {
				h.SetConfig("dht.mode", c.mode)
			}
			if c.serve != nil {
				h.SetConfig("content.serve", c.serve)
			}
			start(t, h, nil, `{}`)
			var warned []string
			for _, line := range h.Logs() {
				if strings.Contains(line, "level=WARN") {
					warned = append(warned, line)
				}
			}
			if len(warned) != len(c.want) {
				t.Fatalf("warnings = %q, want %q", warned, c.want)
			}
			for i, want := range c.want {
				if !strings.Contains(warned[i], want) {
					t.Errorf("warning %q does not say %q", warned[i], want)
				}
			}
		})
	}
}

func TestStatusBeforePairing(t *testing.T) {
	s := start(t, sdktest.NewHost(t), nil, `{}`)
	want := map[string]any{"paired": false, "through_beacon": 0.0, "fallbacks": 0.0, "offloads": 0.0}
	if st := statusOf(t, s); !reflect.DeepEqual(st, want) {
		t.Errorf("status = %v, want %v", st, want)
	}
}

func TestPairWithTheBeaconThatAccepts(t *testing.T) {
	h := sdktest.NewHost(t)
	beacons := newBeacons(h)
	// The first host is down, the second is not the beacon (it refuses),
	// the third accepts.
	h.SetName(sdk.Resolution{Name: "site.avtr", Seq: 1, Hosts: []sdk.PeerInfo{{ID: "12D3KooWDown"}, {ID: otherPeer}, {ID: beaconPeer}}})
	beacons.set(otherPeer, respond(sdk.SatelliteResponse{Error: "this beacon does not host site.avtr"}))
	beacons.set(beaconPeer, respond(sdk.SatelliteResponse{Beacon: beaconPeer}))
	s := start(t, h, beacons, `{}`)

	before := time.Now().UTC().Truncate(time.Second)
	out, err := call(s, t.Context(), "pair", "site.avtr")
	if err != nil {
		t.Fatal(err)
	}
	asked, reqs := beacons.requests()
	if want := []string{otherPeer + " pair site.avtr", beaconPeer + " pair site.avtr"}; !slices.Equal(asked, want) {
		t.Errorf("asked %q, want %q", asked, want)
	}
	if want := (sdk.SatelliteRequest{Op: sdk.SatPair, Name: "site.avtr"}); !reflect.DeepEqual(reqs[len(reqs)-1], want) {
		t.Errorf("the pair request = %+v, want %+v", reqs[len(reqs)-1], want)
	}
	if got := h.Calls("OpenStream"); !slices.Equal(got, []string{"12D3KooWDown"}) {
		t.Errorf("the node opened streams to %v, want the host that is down", got)
	}
	var st status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	since, err := time.Parse(time.RFC3339, st.Since)
	if !st.Paired || st.Name != "site.avtr" || st.Beacon != beaconPeer || err != nil || since.Before(before) {
		t.Errorf("pair answered %s, want paired with %s for site.avtr since now", out, beaconPeer)
	}
	beacons.checkStreams(t)

	// The pairing outlives a restart.
	again := start(t, h, nil, `{}`)
	if st := statusOf(t, again); st["paired"] != true || st["beacon"] != beaconPeer || st["name"] != "site.avtr" || st["since"] != since.Format(time.RFC3339) {
		t.Errorf("status after a restart = %v, want the pairing", st)
	}
}

func TestPairRefused(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(h *sdktest.Host, beacons *fakeBeacons)
		want  []string
	}{
		{
			name: "name not found",
			want: []string{"resolve site.avtr", "name not found"},
		},
		{
			name:  "no host",
			setup: func(h *sdktest.Host, _ *fakeBeacons) { h.SetName(sdk.Resolution{Name: "site.avtr", Seq: 1}) },
			want:  []string{"site.avtr has no HOST to pair with"},
		},
		{
			name: "hosts unreachable",
			setup: func(h *sdktest.Host, _ *fakeBeacons) {
				h.SetName(sdk.Resolution{Name: "site.avtr", Seq: 1, Hosts: []sdk.PeerInfo{{ID: beaconPeer}, {ID: otherPeer}}})
				h.Fail("OpenStream", otherPeer, grpcstatus.Error(codes.Unavailable, "no addresses"))
			},
			want: []string{"no host of site.avtr paired", "beacon " + beaconPeer + " unreachable", "beacon " + otherPeer + " unreachable: ", "no addresses"},
		},
		{
			name: "not delegated",
			setup: func(h *sdktest.Host, beacons *fakeBeacons) {
				h.SetName(sdk.Resolution{Name: "site.avtr", Seq: 1, Hosts: []sdk.PeerInfo{{ID: beaconPeer}}})
				beacons.set(beaconPeer, respond(sdk.SatelliteResponse{Error: "the owner of site.avtr has not delegated to " + sdktest.PeerID}))
			},
			want: []string{"beacon " + beaconPeer + " refused: the owner of site.avtr has not delegated"},
		},
		{
			name: "answer not JSON",
			setup: func(h *sdktest.Host, beacons *fakeBeacons) {
				h.SetName(sdk.Resolution{Name: "site.avtr", Seq: 1, Hosts: []sdk.PeerInfo{{ID: beaconPeer}}})
				beacons.set(beaconPeer, func(sdk.SatelliteRequest) []byte { return []byte("<html>") })
			},
			want: []string{"beacon " + beaconPeer + ": invalid character"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := sdktest.NewHost(t)
			beacons := newBeacons(h)
			if c.setup != nil {
				c.setup(h, beacons)
			}
			s := start(t, h, beacons, `{}`)
			_, err := call(s, t.Context(), "pair", "site.avtr")
			if err == nil {
				t.Fatal("pair succeeded")
			}
			for _, want := range c.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if st := statusOf(t, s); st["paired"] != false {
				t.Errorf("status after a refused pair = %v, want not paired", st)
			}
			if _, err := os.Stat(filepath.Join(h.DataDir(), "pairing.json")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused pair left a pairing file (%v)", err)
			}
			beacons.checkStreams(t)
		})
	}
}

func TestStartRefusesAPairingItCannotRead(t *testing.T) {
	h := sdktest.NewHost(t)
	file := filepath.Join(h.DataDir(), "pairing.json")
	if err := os.WriteFile(file, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	diags := (&satellite{}).Start(t.Context(), json.RawMessage(`{}`), h)
	if !diags.HasError() || !strings.Contains(diags[0].Summary, "read the pairing") || !strings.Contains(diags[0].Detail, file) {
		t.Errorf("Start with a broken pairing = %+v, want an error naming %s", diags, file)
	}
}

func TestUnpair(t *testing.T) {
	h := sdktest.NewHost(t)
	beacons := newBeacons(h)
	s := pairedBeacon(t, h, beacons, `{}`, respond(sdk.SatelliteResponse{}))

	out, err := call(s, t.Context(), "unpair")
	if err != nil || !strings.Contains(out, `"paired":false`) {
		t.Fatalf("unpair = %s, %v; want not paired", out, err)
	}
	if _, err := os.Stat(filepath.Join(h.DataDir(), "pairing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the pairing file is still there (%v)", err)
	}
	if _, err := call(s, t.Context(), "resolve-ahead", "resolve", "site.avtr"); err == nil || !strings.Contains(err.Error(), "not paired") {
		t.Errorf("resolve-ahead after unpair = %v, want not paired", err)
	}
	if _, err := call(s, t.Context(), "unpair"); err != nil {
		t.Errorf("unpair when not paired = %v, want done", err)
	}
	if st := statusOf(t, start(t, h, nil, `{}`)); st["paired"] != false {
		t.Errorf("status after unpair and a restart = %v, want not paired", st)
	}
}

// recordingHost records the peers FetchFrom is given, which sdktest.Host
// does not check.
type recordingHost struct {
	*sdktest.Host
	mu    sync.Mutex
	peers [][]string
}

func (h *recordingHost) FetchFrom(ctx context.Context, target string, peers []string) (sdk.Fetched, error) {
	h.mu.Lock()
	h.peers = append(h.peers, slices.Clone(peers))
	h.mu.Unlock()
	return h.Host.FetchFrom(ctx, target, peers)
}

func TestResolveAheadThroughTheBeacon(t *testing.T) {
	h := sdktest.NewHost(t)
	beacons := newBeacons(h)
	root := h.AddDir(map[string]string{"index.html": "<h1>Hi</h1>"}, nil)
	// The beacon answers the zone of the registered name.
	beacon := func(req sdk.SatelliteRequest) []byte {
		switch req.Op {
		case sdk.SatResolve:
			return respond(sdk.SatelliteResponse{Zone: []byte("zone of site.avtr"), ZoneName: "site.avtr"})(req)
		case sdk.SatGet:
			if strings.HasPrefix(req.Target, "/cid/") {
				return respond(sdk.SatelliteResponse{Root: root})(req)
			}
			return respond(sdk.SatelliteResponse{Root: root, Zone: []byte("zone with root"), ZoneName: "site.avtr"})(req)
		}
		return respond(sdk.SatelliteResponse{Error: "unexpected " + req.Op})(req)
	}
	rh := &recordingHost{Host: h}
	h.SetName(sdk.Resolution{Name: "site.avtr", Key: "k51site", Seq: 1, Hosts: []sdk.PeerInfo{{ID: beaconPeer}}})
	beacons.set(beaconPeer, func(req sdk.SatelliteRequest) []byte {
		if req.Op == sdk.SatPair {
			return respond(sdk.SatelliteResponse{Beacon: beaconPeer})(req)
		}
		return beacon(req)
	})
	s := &satellite{}
	if diags := s.Start(t.Context(), json.RawMessage(`{}`), rh); diags.HasError() {
		t.Fatal(diags)
	}
	s.open = beacons.open
	if _, err := call(s, t.Context(), "pair", "site.avtr"); err != nil {
		t.Fatal(err)
	}
	zoneKey := sdk.ZoneKeyPrefix + "site.avtr"

	for _, c := range []struct {
		kind, target, request string
		zone                  string // the zone offered to the node; "" none
		fetched               string // the target fetched from the beacon; "" none
	}{
		{kind: "resolve", target: "api.site.avtr", request: "resolve api.site.avtr", zone: "zone of site.avtr"},
		{kind: "get", target: "site.avtr/index.html", request: "get site.avtr/index.html", zone: "zone with root", fetched: "/cid/" + root},
		{kind: "get", target: "/cid/" + root, request: "get /cid/" + root, fetched: "/cid/" + root},
	} {
		t.Run(c.kind+" "+c.target, func(t *testing.T) {
			offers, fetches := len(h.Calls("OfferZone")), len(h.Calls("FetchFrom"))
			h.PutRecord(t.Context(), zoneKey, nil)

			out, err := call(s, t.Context(), "resolve-ahead", c.kind, c.target)
			if err != nil || out != `{"through":"`+beaconPeer+`"}` {
				t.Fatalf("resolve-ahead = %s, %v; want through the beacon", out, err)
			}
			if asked, _ := beacons.requests(); asked[len(asked)-1] != beaconPeer+" "+c.request {
				t.Errorf("asked %q, want %q", asked[len(asked)-1], beaconPeer+" "+c.request)
			}
			newOffers := h.Calls("OfferZone")[offers:]
			if c.zone == "" {
				if len(newOffers) != 0 {
					t.Errorf("offered zones %v for a CID", newOffers)
				}
			} else if got, _ := h.Record(zoneKey); !slices.Equal(newOffers, []string{zoneKey}) || string(got) != c.zone {
				t.Errorf("offered %v with %q, want %s with %q", newOffers, got, zoneKey, c.zone)
			}
			newFetches := h.Calls("FetchFrom")[fetches:]
			if c.fetched == "" {
				if len(newFetches) != 0 {
					t.Errorf("fetched %v on a resolve", newFetches)
				}
				return
			}
			rh.mu.Lock()
			peers := rh.peers[len(rh.peers)-1]
			rh.mu.Unlock()
			if !slices.Equal(newFetches, []string{c.fetched}) || !slices.Equal(peers, []string{beaconPeer}) {
				t.Errorf("fetched %v from %v, want %s from the beacon only", newFetches, peers, c.fetched)
			}
		})
	}
	st := statusOf(t, s)
	if st["through_beacon"] != 3.0 || st["fallbacks"] != 0.0 || st["last_error"] != nil {
		t.Errorf("status = %v, want 3 through the beacon, no fallback", st)
	}
	if v, _ := h.CounterValue("through_beacon"); v != 3 {
		t.Errorf("through_beacon metric = %v, want 3", v)
	}
	beacons.checkStreams(t)
}

// When the beacon does not do what was asked, resolve-ahead fails with the
// reason, so the node goes by the DHT; the status counts a fallback and the
// role goes on answering.
func TestResolveAheadFallsBackWithTheReason(t *testing.T) {
	for _, c := range []struct {
		name         string
		kind, target string
		beacon       answerFunc // nil: unreachable
		fail         string     // a host method that fails
		want         string
	}{
		{name: "beacon unreachable", kind: "resolve", target: "site.avtr",
			want: "beacon " + beaconPeer + " unreachable: "},
		{name: "beacon refuses", kind: "resolve", target: "site.avtr",
			beacon: respond(sdk.SatelliteResponse{Error: "unpaired: the owner of site.avtr has not delegated"}),
			want:   "beacon " + beaconPeer + " refused: unpaired: the owner of site.avtr has not delegated"},
		{name: "beacon fails the get", kind: "get", target: "site.avtr",
			beacon: respond(sdk.SatelliteResponse{Error: "get site.avtr: name not found"}),
			want:   "beacon " + beaconPeer + " refused: get site.avtr: name not found"},
		{name: "answer not JSON", kind: "resolve", target: "site.avtr",
			beacon: func(sdk.SatelliteRequest) []byte { return []byte("garbage") },
			want:   "beacon " + beaconPeer + ": invalid character"},
		{name: "answer cut short", kind: "resolve", target: "site.avtr",
			beacon: func(sdk.SatelliteRequest) []byte { return []byte(`{"zone":`) },
			want:   "beacon " + beaconPeer + ": unexpected end of JSON input"},
		{name: "beacon silent", kind: "resolve", target: "site.avtr",
			beacon: func(sdk.SatelliteRequest) []byte { return nil },
			want:   "beacon " + beaconPeer + ": context deadline exceeded"},
		{name: "zone refused by the node", kind: "resolve", target: "site.avtr", fail: "OfferZone",
			beacon: respond(sdk.SatelliteResponse{Zone: []byte("forged"), ZoneName: "site.avtr"}),
			want:   "the zone from the beacon: bad signature"},
		{name: "blocks not fetched", kind: "get", target: "/cid/bafyabsent", fail: "FetchFrom",
			beacon: respond(sdk.SatelliteResponse{Root: "bafyabsent"}),
			want:   "fetch bafyabsent from the beacon: bad signature"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := sdktest.NewHost(t)
			beacons := newBeacons(h)
			s := pairedBeacon(t, h, beacons, `{"timeout":"100ms"}`, respond(sdk.SatelliteResponse{Zone: []byte("zone"), ZoneName: "site.avtr"}))
			beacons.set(beaconPeer, c.beacon)
			if c.fail != "" {
				h.Fail(c.fail, "", errors.New("bad signature"))
			}

			out, err := call(s, t.Context(), "resolve-ahead", c.kind, c.target)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("resolve-ahead = %s, %v; want an error saying %q", out, err, c.want)
			}
			st := statusOf(t, s)
			if st["paired"] != true || st["fallbacks"] != 1.0 || st["through_beacon"] != 0.0 ||
				!strings.Contains(fmt.Sprint(st["last_error"]), c.want) {
				t.Errorf("status = %v, want still paired, 1 fallback, the reason kept", st)
			}
			if v, _ := h.CounterValue("fallbacks"); v != 1 {
				t.Errorf("fallbacks metric = %v, want 1", v)
			}
			beacons.checkStreams(t)

			// The role goes on: once the beacon answers again, so does it.
			h.Fail(c.fail, "", nil)
			h.SetName(sdk.Resolution{Name: "site.avtr", Key: "k51site", Seq: 1, Hosts: []sdk.PeerInfo{{ID: beaconPeer}}})
			beacons.set(beaconPeer, respond(sdk.SatelliteResponse{Zone: []byte("zone"), ZoneName: "site.avtr"}))
			if out, err := call(s, t.Context(), "resolve-ahead", "resolve", "site.avtr"); err != nil {
				t.Errorf("resolve-ahead once the beacon answers = %s, %v", out, err)
			}
		})
	}
}

func TestResolveAheadWhenNotPaired(t *testing.T) {
	h := sdktest.NewHost(t)
	s := start(t, h, newBeacons(h), `{}`)
	_, err := call(s, t.Context(), "resolve-ahead", "resolve", "site.avtr")
	if err == nil || !strings.Contains(err.Error(), "not paired: the node resolves by itself") {
		t.Errorf("resolve-ahead = %v, want not paired", err)
	}
	if calls := h.Calls("OpenStream"); len(calls) != 0 {
		t.Errorf("opened streams to %v with no beacon", calls)
	}
	if st := statusOf(t, s); st["fallbacks"] != 0.0 {
		t.Errorf("status = %v: a satellite not paired falls back from nothing", st)
	}
}

func TestResolveAheadOfAnUnknownKind(t *testing.T) {
	h := sdktest.NewHost(t)
	beacons := newBeacons(h)
	s := pairedBeacon(t, h, beacons, `{}`, respond(sdk.SatelliteResponse{}))
	_, err := call(s, t.Context(), "resolve-ahead", "publish", "site.avtr")
	if err == nil || !strings.Contains(err.Error(), `unknown kind "publish": resolve or get`) {
		t.Errorf("resolve-ahead publish = %v, want the kinds listed", err)
	}
	if asked, _ := beacons.requests(); len(asked) != 1 {
		t.Errorf("asked the beacon %q, want only the pair", asked)
	}
}

func TestConcurrentRequestsAreAllCounted(t *testing.T) {
	h := sdktest.NewHost(t)
	beacons := newBeacons(h)
	h.SetName(sdk.Resolution{Name: "zone.avtr", Seq: 1})
	s := pairedBeacon(t, h, beacons, `{}`, func(req sdk.SatelliteRequest) []byte {
		if req.Name == "bad.avtr" {
			return respond(sdk.SatelliteResponse{Error: "no such name"})(req)
		}
		return respond(sdk.SatelliteResponse{Zone: []byte("z"), ZoneName: "zone.avtr"})(req)
	})
	var wg sync.WaitGroup
	for i := range 20 {
		name := "zone.avtr"
		if i%4 == 0 {
			name = "bad.avtr"
		}
		wg.Go(func() { call(s, t.Context(), "resolve-ahead", "resolve", name) })
		wg.Go(func() { call(s, t.Context(), "status") })
	}
	wg.Wait()
	if st := statusOf(t, s); st["through_beacon"] != 15.0 || st["fallbacks"] != 5.0 {
		t.Errorf("status = %v, want 15 through the beacon and 5 fallbacks", st)
	}
}

func TestOffload(t *testing.T) {
	h := sdktest.NewHost(t)
	beacons := newBeacons(h)
	s := pairedBeacon(t, h, beacons, `{}`, func(req sdk.SatelliteRequest) []byte {
		if req.Service != "chat" {
			return respond(sdk.SatelliteResponse{Error: "offload to " + req.Service + ": role " + req.Service + " is not running"})(req)
		}
		return respond(sdk.SatelliteResponse{Output: json.RawMessage(`{"reply":"hi","payload":` + string(req.Payload) + `}`)})(req)
	})

	for _, c := range []struct {
		args []string
		want string // the answer, or the error
		ok   bool
	}{
		{[]string{"chat", `{"prompt":"hello"}`}, `{"reply":"hi","payload":{"prompt":"hello"}}`, true},
		{[]string{"chat"}, `{"reply":"hi","payload":{}}`, true},
		{[]string{"chat", `{"prompt":`}, `offload: the payload is not JSON: "{\"prompt\":"`, false},
		{[]string{"absent", `{}`}, "beacon " + beaconPeer + " refused: offload to absent: role absent is not running", false},
	} {
		out, err := call(s, t.Context(), "offload", c.args...)
		if c.ok && (err != nil || out != c.want) {
			t.Errorf("offload %q = %s, %v; want %s", c.args, out, err, c.want)
		}
		if !c.ok && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("offload %q = %s, %v; want an error saying %s", c.args, out, err, c.want)
		}
	}
	asked, _ := beacons.requests()
	if want := []string{beaconPeer + " pair site.avtr", beaconPeer + " offload chat", beaconPeer + " offload chat", beaconPeer + " offload absent"}; !slices.Equal(asked, want) {
		t.Errorf("asked %q, want %q (a payload that is not JSON is not sent)", asked, want)
	}
	if st := statusOf(t, s); st["offloads"] != 2.0 || st["fallbacks"] != 0.0 {
		t.Errorf("status = %v, want 2 offloads", st)
	}

	s2 := start(t, sdktest.NewHost(t), nil, `{}`)
	if _, err := call(s2, t.Context(), "offload", "chat"); err == nil || !strings.Contains(err.Error(), "not paired: run `avnode satellite pair NAME` first") {
		t.Errorf("offload when not paired = %v, want not paired", err)
	}
}

func TestUnknownCommands(t *testing.T) {
	s := start(t, sdktest.NewHost(t), nil, `{}`)
	for _, args := range [][]string{
		{"stats"}, {"status", "extra"}, {"pair"}, {"pair", "a.avtr", "b.avtr"}, {"unpair", "a.avtr"},
		{"offload"}, {"offload", "chat", "{}", "more"}, {"resolve-ahead", "resolve"},
	} {
		_, err := call(s, t.Context(), args[0], args[1:]...)
		if err == nil || !strings.Contains(err.Error(), "the satellite takes: status, pair NAME, unpair, offload SERVICE [JSON]") {
			t.Errorf("%q = %v, want the commands listed", args, err)
		}
	}
}

// Stop returns at once, even with a request waiting for a silent beacon,
// and the request itself ends when its caller gives up.
func TestStopReturnsPromptly(t *testing.T) {
	h := sdktest.NewHost(t)
	beacons := newBeacons(h)
	s := pairedBeacon(t, h, beacons, `{"timeout":"1m"}`, func(sdk.SatelliteRequest) []byte { return nil })

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var mu sync.Mutex
	var reqErr error
	reqDone := make(chan struct{})
	go func() {
		defer close(reqDone)
		_, err := call(s, ctx, "resolve-ahead", "resolve", "site.avtr")
		mu.Lock()
		reqErr = err
		mu.Unlock()
	}()
	sdktest.Eventually(t, 5*time.Second, "the request sent", func() error {
		if asked, _ := beacons.requests(); len(asked) < 2 {
			return fmt.Errorf("asked %q", asked)
		}
		return nil
	})

	stopped := make(chan sdk.Diagnostics, 1)
	go func() { stopped <- s.Stop(context.Background()) }()
	sdktest.Eventually(t, time.Second, "Stop returned", func() error {
		select {
		case diags := <-stopped:
			if diags.HasError() {
				t.Errorf("Stop = %v", diags)
			}
			return nil
		default:
			return errors.New("Stop has not returned")
		}
	})

	cancel()
	sdktest.Eventually(t, 5*time.Second, "the request ended with its caller", func() error {
		select {
		case <-reqDone:
		default:
			return errors.New("the request still waits for the beacon")
		}
		mu.Lock()
		defer mu.Unlock()
		if reqErr == nil || !strings.Contains(reqErr.Error(), "context canceled") {
			t.Errorf("request = %v, want canceled", reqErr)
		}
		return nil
	})
	beacons.checkStreams(t)
}
