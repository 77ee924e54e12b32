package sdk

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/avnode/avnode/sdk/pluginpb"
)

// fakeNode is the node's side of the wire as the tests need it: a
// pluginpb.HostServer that records what it is asked, answers NotFound for
// what it lacks, and leaves Provide unimplemented, as a node that does not
// serve a call would. It tests the SDK's gRPC edge (the conversions, errors,
// logs and metrics crossing); a role's tests use sdktest.Host instead.
type fakeNode struct {
	pluginpb.UnimplementedHostServer

	mu        sync.Mutex
	calls     []string
	records   map[string][]byte
	logs      []*pluginpb.LogEntry
	metrics   []*pluginpb.MetricSample
	logErr    error
	metricErr error
	// events feeds Subscribe; nil makes Subscribe unimplemented.
	events chan *pluginpb.Event
}

func newFakeNode() *fakeNode {
	return &fakeNode{records: map[string][]byte{}, events: make(chan *pluginpb.Event, 16)}
}

func (f *fakeNode) record(call string) {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	f.mu.Unlock()
}

func (f *fakeNode) called(call string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		if c == call {
			return true
		}
	}
	return false
}

func (f *fakeNode) Resolve(_ context.Context, req *pluginpb.ResolveRequest) (*pluginpb.Resolution, error) {
	f.record("Resolve " + req.GetName())
	if req.GetName() == "missing.avtr" {
		return nil, status.Errorf(codes.NotFound, "name %s not found", req.GetName())
	}
	return &pluginpb.Resolution{Name: req.GetName(), Key: "k51test", Seq: 4, ExpiresUnix: 1767225600,
		Records: []*pluginpb.ZoneRecordEntry{{Type: "SAT", Value: "12D3KooWs"}},
		Hosts:   []*pluginpb.HostInfo{{PeerId: "12D3KooWh", Addrs: []string{"/ip4/192.0.2.1/tcp/4001"}}},
		Root:    "bafyroot", SignedZone: []byte("zone"), SignedClaim: []byte("claim"), CopiesWanted: 3, KeyType: "Ed25519+ML-DSA-65", Rotations: 2}, nil
}

func (f *fakeNode) GetRecord(_ context.Context, req *pluginpb.RecordKey) (*pluginpb.RecordValue, error) {
	f.record("GetRecord " + req.GetKey())
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.records[req.GetKey()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no record under %s", req.GetKey())
	}
	return &pluginpb.RecordValue{Key: req.GetKey(), Value: v}, nil
}

func (f *fakeNode) PutRecord(_ context.Context, req *pluginpb.RecordValue) (*pluginpb.Empty, error) {
	f.record("PutRecord " + req.GetKey())
	f.mu.Lock()
	f.records[req.GetKey()] = req.GetValue()
	f.mu.Unlock()
	return &pluginpb.Empty{}, nil
}

func (f *fakeNode) SetZoneRecord(_ context.Context, req *pluginpb.ZoneChange) (*pluginpb.Zone, error) {
	f.record(fmt.Sprintf("SetZoneRecord %s %s %s %s remove=%v", req.GetName(), req.GetType(), req.GetLabel(), req.GetValue(), req.GetRemove()))
	return &pluginpb.Zone{Name: req.GetName(), Seq: 2}, nil
}

func (f *fakeNode) FindProviders(_ context.Context, req *pluginpb.ContentRef) (*pluginpb.Peers, error) {
	f.record("FindProviders " + req.GetCid())
	return &pluginpb.Peers{PeerIds: []string{"12D3KooWa", "12D3KooWb"}}, nil
}

func (f *fakeNode) Fetch(_ context.Context, req *pluginpb.FetchRequest) (*pluginpb.FetchResult, error) {
	f.record("Fetch " + req.GetTarget())
	cid := strings.TrimPrefix(req.GetTarget(), "/cid/")
	return &pluginpb.FetchResult{Root: cid, Cid: cid, Kind: "dir", Size: 5, BlocksFetched: 3,
		Entries: []*pluginpb.DirEntry{{Name: "index.html", Cid: "bafyi", Kind: "file", Size: 5}}}, nil
}

func (f *fakeNode) StartRelay(_ context.Context, req *pluginpb.RelayConfig) (*pluginpb.RelayStats, error) {
	f.record(fmt.Sprintf("StartRelay %d %d %d %ds %d %ds", req.GetMaxReservations(), req.GetMaxReservationsPerIp(),
		req.GetMaxCircuits(), req.GetCircuitDurationSeconds(), req.GetCircuitBytes(), req.GetReservationTtlSeconds()))
	return &pluginpb.RelayStats{Running: true, Reservations: 5, Refused: 1, Circuits: 2}, nil
}

func (f *fakeNode) Decide(_ context.Context, req *pluginpb.PolicyRequest) (*pluginpb.PolicyVerdict, error) {
	f.record("Decide " + req.GetHook() + " " + string(req.GetInputJson()))
	return &pluginpb.PolicyVerdict{Decided: true, Order: []string{"b", "a"}, Reason: "quota", Script: "m.lua", Fallback: true}, nil
}

func (f *fakeNode) Pin(_ context.Context, req *pluginpb.PinRequest) (*pluginpb.Empty, error) {
	f.record("Pin " + req.GetCid() + " " + req.GetReason())
	return &pluginpb.Empty{}, nil
}

func (f *fakeNode) Unpin(_ context.Context, req *pluginpb.ContentRef) (*pluginpb.Empty, error) {
	f.record("Unpin " + req.GetCid())
	return &pluginpb.Empty{}, nil
}

// Subscribe sends no header before its first event, as the node does.
func (f *fakeNode) Subscribe(req *pluginpb.SubscribeRequest, stream pluginpb.Host_SubscribeServer) error {
	if f.events == nil {
		return status.Error(codes.Unimplemented, "method Subscribe not implemented")
	}
	f.record(fmt.Sprint("Subscribe ", req.GetKinds()))
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case e, ok := <-f.events:
			if !ok {
				return status.Error(codes.Unavailable, "node shutting down")
			}
			if err := stream.Send(e); err != nil {
				return err
			}
		}
	}
}

func (f *fakeNode) Log(_ context.Context, req *pluginpb.LogEntry) (*pluginpb.Empty, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.logErr != nil {
		return nil, f.logErr
	}
	f.logs = append(f.logs, req)
	return &pluginpb.Empty{}, nil
}

func (f *fakeNode) Metric(_ context.Context, req *pluginpb.MetricSample) (*pluginpb.Empty, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.metricErr != nil {
		return nil, f.metricErr
	}
	f.metrics = append(f.metrics, req)
	return &pluginpb.Empty{}, nil
}

// logged returns the first log entry with the message msg.
func (f *fakeNode) logged(msg string) *pluginpb.LogEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range f.logs {
		if l.GetMessage() == msg {
			return l
		}
	}
	return nil
}

func (f *fakeNode) metric(name string) *pluginpb.MetricSample {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.metrics {
		if m.GetName() == name {
			return m
		}
	}
	return nil
}

func (f *fakeNode) recordValue(key string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.records[key]
	return string(v), ok
}

func newHostServer(f *fakeNode) func([]grpc.ServerOption) *grpc.Server {
	return func(opts []grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(opts...)
		pluginpb.RegisterHostServer(s, f)
		return s
	}
}

// loggedErr says what is missing while f has no log record msg.
func loggedErr(f *fakeNode, msg string) error {
	if f.logged(msg) == nil {
		return fmt.Errorf("no log record %q", msg)
	}
	return nil
}

// exitedErr is a check that the plugin process has exited.
func exitedErr(c interface{ Exited() bool }) func() error {
	return func() error {
		if !c.Exited() {
			return errors.New("still running")
		}
		return nil
	}
}
