package plugins

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/fault"
	"github.com/avnode/avnode/sdk/pluginpb"
)

// HostAPI is the node's API as one role's plugin sees it: the Manager
// makes one per role, over the Node it was given, so logs and metrics carry
// the role.
type HostAPI struct {
	pluginpb.UnimplementedHostServer
	node    Node
	roles   *Manager // answers CallRole and keeps SetService's services
	log     *slog.Logger
	logs    *roleLog // the role's own lines, within its limit
	metrics *pluginMetrics
	streams *streamRegistry
	role    string
}

// grpcError keeps the kind of a node error across the wire: the one map
// from a fault.Kind to a gRPC code.
func grpcError(err error) error {
	if err == nil {
		return nil
	}
	code := codes.Unknown // an internal error
	switch fault.KindOf(err) {
	case fault.NotFound:
		code = codes.NotFound
	case fault.Invalid, fault.Refused: // a refusal is InvalidArgument, as the SDK documents for OfferZone
		code = codes.InvalidArgument
	case fault.TooLarge:
		code = codes.ResourceExhausted
	case fault.Unavailable:
		code = codes.Unavailable
	case fault.Timeout:
		code = codes.DeadlineExceeded
	case fault.Permission:
		code = codes.PermissionDenied
	}
	return status.Error(code, err.Error())
}

func (h *HostAPI) Resolve(ctx context.Context, req *pluginpb.ResolveRequest) (*pluginpb.Resolution, error) {
	res, err := h.node.Resolve(ctx, req.GetName())
	if err != nil {
		return nil, grpcError(err)
	}
	return resolutionProto(res), nil
}

func resolutionProto(res *api.Resolution) *pluginpb.Resolution {
	out := &pluginpb.Resolution{Name: res.Name, Key: res.Key, Seq: res.Seq, ExpiresUnix: res.Expires.Unix(), Root: res.Root,
		SignedZone: res.SignedZone, SignedClaim: res.SignedClaim, CopiesWanted: uint32(res.CopiesWanted),
		KeyType: res.KeyType, Rotations: uint32(res.Rotations)}
	for _, r := range res.Records {
		out.Records = append(out.Records, &pluginpb.ZoneRecordEntry{Type: r.Type, Label: r.Label, Value: r.Value})
	}
	for _, host := range res.Hosts {
		out.Hosts = append(out.Hosts, &pluginpb.HostInfo{PeerId: host.PeerID, Addrs: host.Addrs})
	}
	return out
}

// GetRecord keeps the error's kind: only a key no peer holds is NotFound;
// a timeout stays a timeout.
func (h *HostAPI) GetRecord(ctx context.Context, req *pluginpb.RecordKey) (*pluginpb.RecordValue, error) {
	v, err := h.node.GetRecord(ctx, req.GetKey())
	if err != nil {
		return nil, grpcError(fmt.Errorf("record %s: %w", req.GetKey(), err))
	}
	return &pluginpb.RecordValue{Key: req.GetKey(), Value: v}, nil
}

func (h *HostAPI) PutRecord(ctx context.Context, req *pluginpb.RecordValue) (*pluginpb.Empty, error) {
	if err := h.node.PutRecord(ctx, req.GetKey(), req.GetValue()); err != nil {
		return nil, grpcError(fmt.Errorf("record %s: %w", req.GetKey(), err))
	}
	return &pluginpb.Empty{}, nil
}

func (h *HostAPI) SetZoneRecord(ctx context.Context, req *pluginpb.ZoneChange) (*pluginpb.Zone, error) {
	z, err := h.node.ChangeRecord(ctx, api.RecordChange{
		Name: req.GetName(), Type: req.GetType(), Label: req.GetLabel(), Value: req.GetValue(), Remove: req.GetRemove(),
	})
	if err != nil {
		return nil, grpcError(err)
	}
	out := &pluginpb.Zone{Name: z.Name, Seq: z.Seq}
	for _, r := range z.Records {
		out.Records = append(out.Records, &pluginpb.ZoneRecordEntry{Type: r.Type, Label: r.Label, Value: r.Value})
	}
	return out, nil
}

func parseCID(s string) (cid.Cid, error) {
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, status.Error(codes.InvalidArgument, fmt.Sprintf("%q is not a CID: %v", s, err))
	}
	return c, nil
}

func (h *HostAPI) Provide(ctx context.Context, req *pluginpb.ContentRef) (*pluginpb.Empty, error) {
	c, err := parseCID(req.GetCid())
	if err != nil {
		return nil, err
	}
	if err := h.node.Provide(ctx, c); err != nil {
		return nil, grpcError(err)
	}
	return &pluginpb.Empty{}, nil
}

func (h *HostAPI) FindProviders(ctx context.Context, req *pluginpb.ContentRef) (*pluginpb.Peers, error) {
	c, err := parseCID(req.GetCid())
	if err != nil {
		return nil, err
	}
	ids, err := h.node.FindProviders(ctx, c)
	if err != nil {
		return nil, grpcError(err)
	}
	return peersProto(ids), nil
}

// Pin keeps content for the role. The pin's reason names the role, so that
// its Unpin may take only its own pins; content pinned by anyone else (the
// operator's published sites, another role) stays pinned as it was.
func (h *HostAPI) Pin(ctx context.Context, req *pluginpb.PinRequest) (*pluginpb.Empty, error) {
	c, err := parseCID(req.GetCid())
	if err != nil {
		return nil, err
	}
	if reason, pinned, err := h.node.PinReason(ctx, c); err != nil {
		return nil, grpcError(err)
	} else if pinned && !h.ownsPin(reason) {
		return &pluginpb.Empty{}, nil
	}
	reason := h.pinPrefix()
	if req.GetReason() != "" {
		reason += ": " + req.GetReason()
	}
	if err := h.node.Pin(ctx, c, reason); err != nil {
		return nil, grpcError(err)
	}
	return &pluginpb.Empty{}, nil
}

func (h *HostAPI) pinPrefix() string { return "role " + h.role }

func (h *HostAPI) ownsPin(reason string) bool {
	return reason == h.pinPrefix() || strings.HasPrefix(reason, h.pinPrefix()+": ")
}

// Unpin takes away one of the role's own pins; any other pin is refused.
func (h *HostAPI) Unpin(ctx context.Context, req *pluginpb.ContentRef) (*pluginpb.Empty, error) {
	c, err := parseCID(req.GetCid())
	if err != nil {
		return nil, err
	}
	reason, pinned, err := h.node.PinReason(ctx, c)
	if err != nil {
		return nil, grpcError(err)
	}
	if pinned && !h.ownsPin(reason) {
		return nil, status.Errorf(codes.PermissionDenied, "role %s: unpin %s: pinned by someone else (%q); a role unpins only its own pins", h.role, c, reason)
	}
	if err := h.node.Unpin(ctx, c); err != nil {
		return nil, grpcError(err)
	}
	return &pluginpb.Empty{}, nil
}

// Subscribe streams node events: peer.connected, peer.disconnected,
// name.updated (a name's zone is newer than this node knew) and
// record.stored (the DHT stored a value record here).
func (h *HostAPI) Subscribe(req *pluginpb.SubscribeRequest, stream pluginpb.Host_SubscribeServer) error {
	want := map[string]bool{}
	for _, k := range req.GetKinds() {
		want[k] = true
	}
	events := make(chan *pluginpb.Event, 64)
	var mu sync.Mutex
	closed := false
	emit := func(kind string, attrs map[string]string) {
		if len(want) > 0 && !want[kind] {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if closed {
			return
		}
		select {
		case events <- &pluginpb.Event{Kind: kind, TimeUnixNano: time.Now().UnixNano(), Attrs: attrs}:
		default: // a slow subscriber loses events rather than stalling the node
		}
	}
	notifee := &network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) {
			emit("peer.connected", map[string]string{"peer_id": c.RemotePeer().String(), "addr": c.RemoteMultiaddr().String()})
		},
		DisconnectedF: func(_ network.Network, c network.Conn) {
			emit("peer.disconnected", map[string]string{"peer_id": c.RemotePeer().String()})
		},
	}
	// Send headers at once, so the plugin learns the stream is accepted.
	if err := stream.SendHeader(nil); err != nil {
		return err
	}
	h.node.Host().Network().Notify(notifee)
	stopWatch := h.node.WatchNames(func(u api.NameUpdate) {
		emit("name.updated", map[string]string{"name": u.Name, "key": u.Key, "seq": strconv.FormatUint(u.Seq, 10)})
	})
	stopRecords := h.node.WatchRecords(func(r api.StoredRecord) {
		emit("record.stored", map[string]string{"key": r.Key, "namespace": r.Namespace, "size": strconv.Itoa(r.Size)})
	})
	defer func() {
		stopWatch()
		stopRecords()
		h.node.Host().Network().StopNotify(notifee)
		mu.Lock()
		closed = true
		mu.Unlock()
	}()
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case e := <-events:
			if err := stream.Send(e); err != nil {
				return err
			}
		}
	}
}

// Log writes a plugin's log record into the node's log, tagged with its role.
func (h *HostAPI) Log(ctx context.Context, req *pluginpb.LogEntry) (*pluginpb.Empty, error) {
	var level slog.Level
	if level.UnmarshalText([]byte(req.GetLevel())) != nil {
		level = slog.LevelInfo
	}
	attrs := make([]any, 0, 2*len(req.GetAttrs()))
	for k, v := range req.GetAttrs() {
		attrs = append(attrs, k, v)
	}
	h.logs.emit(ctx, level, req.GetMessage(), attrs...)
	return &pluginpb.Empty{}, nil
}

// Metric records a plugin's gauge or counter as avnode_plugin_<name>{role}.
func (h *HostAPI) Metric(_ context.Context, req *pluginpb.MetricSample) (*pluginpb.Empty, error) {
	if err := h.metrics.record(h.role, req); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &pluginpb.Empty{}, nil
}

// pluginMetrics registers plugin metrics on first use, one family per name
// with the role as a label.
type pluginMetrics struct {
	reg      prometheus.Registerer
	mu       sync.Mutex
	gauges   map[string]*prometheus.GaugeVec
	counters map[string]*prometheus.CounterVec
}

func newPluginMetrics(reg prometheus.Registerer) *pluginMetrics {
	return &pluginMetrics{reg: reg, gauges: map[string]*prometheus.GaugeVec{}, counters: map[string]*prometheus.CounterVec{}}
}

func validMetricName(n string) bool {
	return n != "" && len(n) <= 64 && strings.Trim(n, "abcdefghijklmnopqrstuvwxyz0123456789_") == ""
}

func (m *pluginMetrics) record(role string, s *pluginpb.MetricSample) error {
	if !validMetricName(s.GetName()) {
		return fmt.Errorf("metric name %q: use 1-64 lower-case letters, digits and _", s.GetName())
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	opts := func() (string, string, string) { return "avnode", "plugin", s.GetName() }
	switch s.GetKind() {
	case pluginpb.MetricSample_KIND_COUNTER_ADD:
		c, ok := m.counters[s.GetName()]
		if !ok {
			ns, sub, name := opts()
			c = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name + "_total", Help: help(s)}, []string{"role"})
			if m.reg != nil {
				if err := m.reg.Register(c); err != nil {
					return err
				}
			}
			m.counters[s.GetName()] = c
		}
		if s.GetValue() < 0 {
			return fmt.Errorf("counter %s cannot go down", s.GetName())
		}
		c.WithLabelValues(role).Add(s.GetValue())
	default:
		g, ok := m.gauges[s.GetName()]
		if !ok {
			ns, sub, name := opts()
			g = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help(s)}, []string{"role"})
			if m.reg != nil {
				if err := m.reg.Register(g); err != nil {
					return err
				}
			}
			m.gauges[s.GetName()] = g
		}
		g.WithLabelValues(role).Set(s.GetValue())
	}
	return nil
}

func help(s *pluginpb.MetricSample) string {
	if s.GetHelp() != "" {
		return s.GetHelp()
	}
	return "A role plugin's metric."
}

var _ pluginpb.HostServer = (*HostAPI)(nil)

// Claim claims a name for a keystore key; a name the node already owns is
// resolved instead, so a role can call it on every start.
func (h *HostAPI) Claim(ctx context.Context, req *pluginpb.ClaimRequest) (*pluginpb.Resolution, error) {
	if !h.node.Owns(ctx, req.GetName()) {
		if err := h.node.Claim(ctx, req.GetName(), req.GetKey()); err != nil {
			return nil, grpcError(err)
		}
	}
	return h.Resolve(ctx, &pluginpb.ResolveRequest{Name: req.GetName()})
}

// OfferZone checks a signed zone from outside the DHT and takes it if valid
// and new; a refusal is InvalidArgument.
func (h *HostAPI) OfferZone(ctx context.Context, req *pluginpb.RecordValue) (*pluginpb.Resolution, error) {
	res, err := h.node.OfferZone(ctx, req.GetKey(), req.GetValue())
	if err != nil {
		return nil, grpcError(err)
	}
	return resolutionProto(res), nil
}

// AttestCopy provides the name's copy key: this node holds that version.
func (h *HostAPI) AttestCopy(ctx context.Context, req *pluginpb.CopyRef) (*pluginpb.Empty, error) {
	if err := h.node.AttestCopy(ctx, req.GetName(), req.GetSeq()); err != nil {
		return nil, grpcError(err)
	}
	return &pluginpb.Empty{}, nil
}

// FindCopies lists the peers that attested to holding a name's version.
func (h *HostAPI) FindCopies(ctx context.Context, req *pluginpb.CopyRef) (*pluginpb.Peers, error) {
	ids, err := h.node.FindCopies(ctx, req.GetName(), req.GetSeq())
	if err != nil {
		return nil, grpcError(err)
	}
	return peersProto(ids), nil
}

func peersProto(ids []peer.ID) *pluginpb.Peers {
	out := &pluginpb.Peers{}
	for _, id := range ids {
		out.PeerIds = append(out.PeerIds, id.String())
	}
	return out
}
