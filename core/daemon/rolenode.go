package daemon

import (
	"context"
	"encoding/json"
	"io"

	"github.com/ipfs/go-cid"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/config"
	"github.com/avnode/avnode/core/hosting"
	"github.com/avnode/avnode/core/naming"
	"github.com/avnode/avnode/core/node"
	"github.com/avnode/avnode/core/policy"
)

// RoleNode is the node as its role plugins see it: it implements
// plugins.Node (the interface the plugin host declares) over the core's
// services, speaking core/api's types, so plugins/ imports none of the
// core and the core none of plugins/. The control API's handlers call the
// same domain methods (naming's PutRecord and Copies, hosting's Fetch).
type RoleNode struct {
	node    *node.Node
	names   *naming.Service
	hosting *hosting.Service
	policy  *policy.Policy
	config  *config.Config
	// reread reads the config as the repo's files say now (nil: config as
	// given): a role that starts again (roles disable, enable) sees an
	// edited gateway.listen.
	reread func() (*config.Config, error)
}

// NewRoleNode wraps the core's services; hosting, policy and config may be
// nil for a node that offers its roles no content, policies or config.
func NewRoleNode(n *node.Node, names *naming.Service, h *hosting.Service, p *policy.Policy, cfg *config.Config) *RoleNode {
	return &RoleNode{node: n, names: names, hosting: h, policy: p, config: cfg}
}

// RoleNode is the running daemon's RoleNode.
func (d *Daemon) RoleNode() *RoleNode {
	r := NewRoleNode(d.Node, d.Names, d.Hosting, d.Policy, d.Config)
	r.reread = d.ReadConfig
	return r
}

func (r *RoleNode) Host() host.Host                            { return r.node.Host }
func (r *RoleNode) Topic(name string) (*pubsub.Topic, error)   { return r.node.Topic(name) }
func (r *RoleNode) Owns(ctx context.Context, name string) bool { return r.names.Owns(ctx, name) }

func (r *RoleNode) Resolve(ctx context.Context, name string) (*api.Resolution, error) {
	res, err := r.names.Resolve(ctx, name)
	if err != nil {
		return nil, err
	}
	return resolutionOf(res), nil
}

func (r *RoleNode) Claim(ctx context.Context, name, key string) error {
	_, err := r.names.Claim(ctx, name, key)
	return err
}

func (r *RoleNode) ChangeRecord(ctx context.Context, ch api.RecordChange) (*api.ZoneInfo, error) {
	z, err := r.names.ChangeRecord(ctx, naming.RecordChange{Name: ch.Name, Type: ch.Type, Label: ch.Label, Value: ch.Value, Remove: ch.Remove})
	if err != nil {
		return nil, err
	}
	return zoneOf(z), nil
}

func (r *RoleNode) OfferZone(ctx context.Context, key string, value []byte) (*api.Resolution, error) {
	res, err := r.names.OfferZone(ctx, key, value)
	if err != nil {
		return nil, err
	}
	return resolutionOf(res), nil
}

func (r *RoleNode) GetRecord(ctx context.Context, key string) ([]byte, error) {
	return r.names.GetRecord(ctx, key)
}

func (r *RoleNode) PutRecord(ctx context.Context, key string, value []byte) error {
	return r.names.PutRecord(ctx, key, value)
}

func (r *RoleNode) Provide(ctx context.Context, c cid.Cid) error {
	return r.node.DHT.Provide(ctx, c, true)
}

func (r *RoleNode) FindProviders(ctx context.Context, c cid.Cid) ([]peer.ID, error) {
	infos, err := r.node.DHT.FindProviders(ctx, c)
	if err != nil {
		return nil, err
	}
	ids := make([]peer.ID, 0, len(infos))
	for _, info := range infos {
		ids = append(ids, info.ID)
	}
	return ids, nil
}

func (r *RoleNode) AttestCopy(ctx context.Context, name string, seq uint64) error {
	return r.names.AttestCopy(ctx, name, seq)
}

func (r *RoleNode) FindCopies(ctx context.Context, name string, seq uint64) ([]peer.ID, error) {
	return r.FindProviders(ctx, naming.CopyCID(name, seq))
}

func (r *RoleNode) WatchNames(f func(api.NameUpdate)) (stop func()) {
	return r.names.Watch(func(u naming.Update) { f(api.NameUpdate{Name: u.Name, Key: u.Key, Seq: u.Seq}) })
}

func (r *RoleNode) WatchRecords(f func(api.StoredRecord)) (stop func()) {
	return r.node.WatchRecords(func(s node.RecordStored) {
		f(api.StoredRecord{Key: s.Key, Namespace: s.Namespace, Size: s.Size})
	})
}

func (r *RoleNode) Fetch(ctx context.Context, target string, opts api.FetchOptions) (*api.GetResult, error) {
	var res *hosting.GetResult
	var err error
	switch {
	case len(opts.From) > 0:
		res, err = r.hosting.FetchFrom(ctx, target, opts.From)
	case opts.NoAnnounce:
		res, err = r.hosting.FetchUnannounced(ctx, target)
	default:
		res, err = r.hosting.Fetch(ctx, target, nil, nil)
	}
	if err != nil {
		return nil, err
	}
	return getResultOf(res), nil
}

func (r *RoleNode) WriteRange(ctx context.Context, c cid.Cid, offset, length int64, w io.Writer) (int64, error) {
	return r.hosting.WriteRange(ctx, c, offset, length, w)
}

func (r *RoleNode) Pin(ctx context.Context, c cid.Cid, reason string) error {
	return r.hosting.Pins.Add(ctx, c, reason)
}

func (r *RoleNode) PinReason(ctx context.Context, c cid.Cid) (string, bool, error) {
	return r.hosting.Pins.Reason(ctx, c)
}

func (r *RoleNode) Unpin(ctx context.Context, c cid.Cid) error {
	return r.hosting.Pins.Remove(ctx, c)
}

func (r *RoleNode) Decide(ctx context.Context, hook string, input any) api.Verdict {
	v := r.policy.Decide(ctx, hook, input)
	return api.Verdict{Decided: v.Decided, Allow: v.Allow, Order: v.Order, Reason: v.Reason, Script: v.Script, Fallback: v.Fallback}
}

func (r *RoleNode) StartRelay(l api.RelayLimits, gate api.RelayGate) error {
	return r.node.StartRelay(node.RelayLimits{
		MaxReservations: l.MaxReservations, MaxReservationsPerIP: l.MaxReservationsPerIP, MaxCircuits: l.MaxCircuits,
		CircuitDuration: l.CircuitDuration, CircuitBytes: l.CircuitBytes, ReservationTTL: l.ReservationTTL,
	}, node.RelayGate(gate))
}

func (r *RoleNode) RelayStats() api.RelayStats {
	s := r.node.RelayStats()
	return api.RelayStats{Running: s.Running, Reservations: s.Reservations, Refused: s.Refused, Circuits: s.Circuits}
}

func (r *RoleNode) ConfigJSON() ([]byte, error) {
	cfg := r.config
	if r.reread != nil {
		if now, err := r.reread(); err == nil {
			cfg = now
		}
	}
	if cfg == nil {
		return []byte("{}"), nil
	}
	return json.Marshal(cfg)
}
