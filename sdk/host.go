package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/avnode/avnode/sdk/pluginpb"
)

// Host is the node as a role sees it: the calls a role may make. It is valid
// from Start until Stop returns.
//
// Errors from the node keep their gRPC status: status.Code(err) is
// codes.NotFound for a name, record or content that does not exist,
// codes.InvalidArgument for a bad input, and codes.Unimplemented for a call
// this node does not serve; IsNotFound and IsUnimplemented test for the
// common ones, and a role should fall back on Unimplemented, not fail.
type Host interface {
	// Resolve resolves an avnode name through all the layers.
	Resolve(ctx context.Context, name string) (Resolution, error)
	// GetRecord reads a DHT record, e.g. /avtr-zone/einstein.avtr.
	GetRecord(ctx context.Context, key string) ([]byte, error)
	// PutRecord stores a DHT record; the node validates it first.
	PutRecord(ctx context.Context, key string, value []byte) error
	// SetZoneRecord sets a record in the zone of a name the node owns and
	// returns the zone as published.
	SetZoneRecord(ctx context.Context, name, typ, label, value string) (Zone, error)
	// RemoveZoneRecord removes a record from the zone of a name the node owns.
	RemoveZoneRecord(ctx context.Context, name, typ, label, value string) (Zone, error)
	// Provide announces that the node provides a CID.
	Provide(ctx context.Context, cid string) error
	// FindProviders returns the peer IDs that provide a CID.
	FindProviders(ctx context.Context, cid string) ([]string, error)
	// Fetch fetches content into the node's store: NAME[/PATH] or /cid/CID[/PATH].
	// The sizes it reports (the result's and its entries') are verified: the
	// node checked that every block holds what its parent declares and that
	// the total is within content.max_fetch_mb. Content it cannot verify is
	// refused with codes.ResourceExhausted (over the limit) or an error.
	Fetch(ctx context.Context, target string) (Fetched, error)
	// Pin keeps a CID's content from collection; reason shows who wants it.
	Pin(ctx context.Context, cid, reason string) error
	// Unpin drops a pin.
	Unpin(ctx context.Context, cid string) error
	// Subscribe streams node events of the given kinds (none: all), e.g.
	// peer.connected, peer.disconnected, name.updated, record.stored. The channel is closed when ctx ends
	// or the stream breaks; a slow reader loses events rather than stalling
	// the node. An error that the node gives at once (Unimplemented) is
	// returned; waiting for it takes up to half a second.
	Subscribe(ctx context.Context, kinds ...string) (<-chan Event, error)
	// Publish sends data on a pub/sub topic (GossipSub), signed by the node.
	Publish(ctx context.Context, topic string, data []byte) error
	// SubscribeTopic streams a topic's messages until ctx ends.
	SubscribeTopic(ctx context.Context, topic string) (<-chan TopicMessage, error)
	// HandleProtocol hands the plugin every libp2p stream peers open with
	// protocol, until ctx ends.
	HandleProtocol(ctx context.Context, protocol string, handle func(*Stream)) error
	// OpenStream opens a libp2p stream to a peer.
	OpenStream(ctx context.Context, peerID, protocol string) (*Stream, error)
	// Decide asks the node's Lua policies for a verdict on a hook.
	Decide(ctx context.Context, hook string, input any) (Verdict, error)
	// Claim claims a name for a key in the node's keystore.
	Claim(ctx context.Context, name, key string) (Resolution, error)
	// OfferZone hands the node a signed zone (key /avtr-zone/NAME), e.g. one
	// received over pub/sub; the node validates it and refuses forged or
	// older zones.
	OfferZone(ctx context.Context, key string, zone []byte) (Resolution, error)
	// AttestCopy announces that this node holds version seq of name.
	AttestCopy(ctx context.Context, name string, seq uint64) error
	// FindCopies lists the peers that attested to holding version seq of name.
	FindCopies(ctx context.Context, name string, seq uint64) ([]string, error)
	// StartRelay runs the node's circuit relay v2 service with limits (again:
	// new limits) and announces the node as a relay in the DHT; RelayStatus
	// reports its counters.
	StartRelay(ctx context.Context, limits RelayLimits) (RelayStats, error)
	RelayStatus(ctx context.Context) (RelayStats, error)
	// FetchFrom is Fetch from these peers only, with no DHT provider lookup:
	// a satellite fetching through its beacon.
	FetchFrom(ctx context.Context, target string, peers []string) (Fetched, error)
	// FetchUnannounced is Fetch without announcing the content as a DHT
	// provider afterwards, so that the node's provider records do not
	// publish what its user browsed. A node older than this call announces.
	FetchUnannounced(ctx context.Context, target string) (Fetched, error)
	// ReadFile reads a file in the node's store (Fetch it first): length
	// bytes from offset, length 0 meaning to the end. Close it when done.
	// What a Fetch brought in is kept from the node's cache trims for two
	// minutes after it, and from any collection while a read is open (the
	// operator's `avnode repo gc` takes it otherwise); to keep content,
	// Pin it.
	// A file whose size the node cannot verify, as for Fetch, is refused
	// before any byte is sent.
	ReadFile(ctx context.Context, cid string, offset, length int64) (io.ReadCloser, error)
	// NodeConfig decodes one key of the node's effective config into v,
	// e.g. "gateway.listen" into a string.
	NodeConfig(ctx context.Context, key string, v any) error
	// SetService tells the node of a service the role runs (name "gateway",
	// url "http://127.0.0.1:8080"); `avnode id --json` shows it. An empty
	// url removes it.
	SetService(ctx context.Context, name, url string) error
	// CallRole runs a command of another running role and returns its JSON
	// output: how one plugin hands work to another.
	CallRole(ctx context.Context, role, command string, args ...string) (json.RawMessage, error)
	// DataDir is a folder the role owns in the node's repo, for its state.
	DataDir() string
	// PeerID is the node's own peer ID.
	PeerID() string
	// Logger logs into the node's log, tagged with the role. Attribute
	// values cross as strings. If the node cannot take a record, it goes to
	// the plugin's stderr, which the node also logs.
	Logger() *slog.Logger
	// Gauge sets the gauge avnode_plugin_<name>{role="…"}. name is 1-64
	// lower-case letters, digits and '_'. Failures are reported on stderr
	// once per name, not returned: metrics must not break a role.
	Gauge(name, help string, v float64)
	// CounterAdd adds v (≥ 0) to the counter avnode_plugin_<name>_total{role="…"}.
	CounterAdd(name, help string, v float64)
}

// IsNotFound reports whether err is the node saying something does not exist.
func IsNotFound(err error) bool { return err != nil && status.Code(err) == codes.NotFound }

// IsUnimplemented reports whether err is the node saying it does not serve
// the call; fall back to doing without.
func IsUnimplemented(err error) bool { return err != nil && status.Code(err) == codes.Unimplemented }

// hostError names the call and input that failed and keeps the node's gRPC
// status (code and message) for status.Code, status.FromError and the Is* helpers.
type hostError struct {
	op, arg string
	err     error
}

func (e *hostError) Error() string {
	s := status.Convert(e.err)
	return fmt.Sprintf("host %s %q: %s: %s", e.op, e.arg, s.Code(), s.Message())
}

func (e *hostError) GRPCStatus() *status.Status { return status.Convert(e.err) }
func (e *hostError) Unwrap() error              { return e.err }

func wrap(op, arg string, err error) error {
	if err == nil {
		return nil
	}
	return &hostError{op: op, arg: arg, err: err}
}

// How long Log and Metric calls may take: they have no context of their own.
const sideCallTimeout = 2 * time.Second

// subscribeWait bounds how long Subscribe waits to learn whether the node
// refused the stream. A node that sends its headers at once makes it shorter.
const subscribeWait = 500 * time.Millisecond

// maxAttrLen caps each logged string: the node drops huge records.
const maxAttrLen = 16 << 10

// grpcHost is the Host a role gets: a client of the node's Host service on
// the connection the SDK dialled through the broker.
type grpcHost struct {
	c        pluginpb.HostClient
	dataDir  string
	peerID   string
	stderr   io.Writer
	logger   *slog.Logger
	reported sync.Map // what was already reported on stderr
}

func newGRPCHost(cc grpc.ClientConnInterface, stderr io.Writer, level slog.Leveler) *grpcHost {
	h := &grpcHost{c: pluginpb.NewHostClient(cc), stderr: stderr}
	fallback := slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	h.logger = slog.New(&hostHandler{host: h, level: level, fallback: fallback})
	return h
}

func (h *grpcHost) Resolve(ctx context.Context, name string) (Resolution, error) {
	res, err := h.c.Resolve(ctx, &pluginpb.ResolveRequest{Name: name})
	if err != nil {
		return Resolution{}, wrap("Resolve", name, err)
	}
	return resolutionFromProto(res), nil
}

func (h *grpcHost) GetRecord(ctx context.Context, key string) ([]byte, error) {
	rec, err := h.c.GetRecord(ctx, &pluginpb.RecordKey{Key: key})
	if err != nil {
		return nil, wrap("GetRecord", key, err)
	}
	return rec.GetValue(), nil
}

func (h *grpcHost) PutRecord(ctx context.Context, key string, value []byte) error {
	_, err := h.c.PutRecord(ctx, &pluginpb.RecordValue{Key: key, Value: value})
	return wrap("PutRecord", key, err)
}

func (h *grpcHost) SetZoneRecord(ctx context.Context, name, typ, label, value string) (Zone, error) {
	return h.changeZone(ctx, "SetZoneRecord", &pluginpb.ZoneChange{Name: name, Type: typ, Label: label, Value: value})
}

func (h *grpcHost) RemoveZoneRecord(ctx context.Context, name, typ, label, value string) (Zone, error) {
	return h.changeZone(ctx, "RemoveZoneRecord", &pluginpb.ZoneChange{Name: name, Type: typ, Label: label, Value: value, Remove: true})
}

func (h *grpcHost) changeZone(ctx context.Context, op string, change *pluginpb.ZoneChange) (Zone, error) {
	z, err := h.c.SetZoneRecord(ctx, change)
	if err != nil {
		return Zone{}, wrap(op, change.GetName(), err)
	}
	return zoneFromProto(z), nil
}

func (h *grpcHost) Provide(ctx context.Context, cid string) error {
	_, err := h.c.Provide(ctx, &pluginpb.ContentRef{Cid: cid})
	return wrap("Provide", cid, err)
}

func (h *grpcHost) FindProviders(ctx context.Context, cid string) ([]string, error) {
	p, err := h.c.FindProviders(ctx, &pluginpb.ContentRef{Cid: cid})
	if err != nil {
		return nil, wrap("FindProviders", cid, err)
	}
	return p.GetPeerIds(), nil
}

func (h *grpcHost) Fetch(ctx context.Context, target string) (Fetched, error) {
	return h.fetch(ctx, "Fetch", &pluginpb.FetchRequest{Target: target})
}

func (h *grpcHost) Pin(ctx context.Context, cid, reason string) error {
	_, err := h.c.Pin(ctx, &pluginpb.PinRequest{Cid: cid, Reason: reason})
	return wrap("Pin", cid, err)
}

func (h *grpcHost) Unpin(ctx context.Context, cid string) error {
	_, err := h.c.Unpin(ctx, &pluginpb.ContentRef{Cid: cid})
	return wrap("Unpin", cid, err)
}

func (h *grpcHost) Subscribe(ctx context.Context, kinds ...string) (<-chan Event, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := h.c.Subscribe(ctx, &pluginpb.SubscribeRequest{Kinds: kinds})
	if err != nil {
		cancel()
		return nil, wrap("Subscribe", fmt.Sprint(kinds), err)
	}
	out := make(chan Event, 64)
	// A refusal (Unimplemented, a bad kind) ends the stream before any
	// header; a live stream sends headers at once or with its first event.
	// Learn which before returning, so that the role can fall back.
	refused := make(chan error, 1)
	go func() {
		defer cancel()
		defer close(out)
		if md, _ := stream.Header(); md == nil {
			_, err := stream.Recv()
			refused <- err
			return
		}
		refused <- nil
		for {
			ev, err := stream.Recv()
			if err != nil {
				return
			}
			select {
			case out <- eventFromProto(ev):
			case <-ctx.Done():
				return
			}
		}
	}()
	timer := time.NewTimer(subscribeWait)
	defer timer.Stop()
	select {
	case err := <-refused:
		if err != nil && err != io.EOF {
			return nil, wrap("Subscribe", fmt.Sprint(kinds), err)
		}
	case <-timer.C:
	}
	return out, nil
}

func (h *grpcHost) Logger() *slog.Logger { return h.logger }

func (h *grpcHost) Gauge(name, help string, v float64) {
	h.metric(name, help, v, pluginpb.MetricSample_KIND_GAUGE)
}

func (h *grpcHost) CounterAdd(name, help string, v float64) {
	h.metric(name, help, v, pluginpb.MetricSample_KIND_COUNTER_ADD)
}

func (h *grpcHost) metric(name, help string, v float64, kind pluginpb.MetricSample_Kind) {
	ctx, cancel := context.WithTimeout(context.Background(), sideCallTimeout)
	defer cancel()
	_, err := h.c.Metric(ctx, &pluginpb.MetricSample{Name: name, Help: help, Value: v, Kind: kind})
	if err != nil {
		h.reportOnce("metric "+name, fmt.Sprintf("avnode sdk: metric %s not recorded by the node: %v (reported once)", name, status.Convert(err).Message()))
	}
}

// reportOnce writes msg to stderr the first time key is seen.
func (h *grpcHost) reportOnce(key, msg string) {
	if _, seen := h.reported.LoadOrStore(key, true); !seen {
		fmt.Fprintln(h.stderr, msg)
	}
}

var _ Host = (*grpcHost)(nil)
