package daemon

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/ipfs/go-cid"
	record "github.com/libp2p/go-libp2p-record"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/avnode/avnode/core/config"
	"github.com/avnode/avnode/core/names"
	"github.com/avnode/avnode/core/naming"
	"github.com/avnode/avnode/core/policy"
)

// startPolicy loads the Lua policy scripts in their own process. A script
// that does not load stops the start: running without the operator's policy
// would be worse than not running.
func (d *Daemon) startPolicy(reg prometheus.Registerer) error {
	scripts := d.scriptPaths(d.Config)
	watch := d.Config.Policy.WatchInterval.D()
	if watch == 0 {
		watch = -1 // the config's 0s means off; the package's 0 means its default
	}
	p, err := policy.Start(context.Background(), policy.Options{
		Scripts: scripts, Budget: d.Config.Policy.Budget.D(), MemoryMB: d.Config.Policy.MemoryMB,
		Fallbacks: d.Config.Policy.Fallbacks, WatchInterval: watch, Logger: d.Log.With("component", "policy"),
		Registerer: reg,
	})
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	d.Policy = p
	return nil
}

// scriptPaths are cfg's policy scripts, relative ones under the repo.
func (d *Daemon) scriptPaths(cfg *config.Config) []string {
	scripts := make([]string, len(cfg.Policy.Scripts))
	for i, s := range cfg.Policy.Scripts {
		if !filepath.IsAbs(s) {
			s = filepath.Join(d.Repo.Dir, s)
		}
		scripts[i] = s
	}
	return scripts
}

// recordFacts is what record hooks see of a DHT record.
type recordFacts struct {
	Key       string `json:"key"`
	Namespace string `json:"namespace"`
	Name      string `json:"name,omitempty"`
	Type      string `json:"type"` // claim, zone, or the namespace for others
	Size      int    `json:"size"`
	Sequence  uint64 `json:"sequence"`
	OwnerKey  string `json:"owner_key,omitempty"`
	Publisher string `json:"publisher,omitempty"`
}

// describeRecord reads what it can of a validated record.
func describeRecord(key string, value []byte) recordFacts {
	f := recordFacts{Key: key, Size: len(value), Type: "unknown"}
	ns, rest, _ := record.SplitKey(key)
	f.Namespace = ns
	switch ns {
	case names.ZoneNamespace:
		f.Type, f.Name = "zone", rest
		if z, err := names.DecodeZone(value); err == nil {
			f.Sequence, f.OwnerKey = z.Seq, names.KeyID(z.Owner)
		}
	case names.ClaimNamespace:
		f.Type, f.Name = "claim", rest
		if c, err := names.DecodeClaim(value); err == nil {
			f.OwnerKey = names.KeyID(c.Owner)
		}
	case names.EstateNamespace:
		f.Type = "estate"
		if e, err := names.DecodeEstate(value); err == nil {
			f.Sequence, f.OwnerKey = e.Seq, e.ID()
		}
	default:
		f.Type = ns
	}
	return f
}

// refusal turns a deciding "deny" verdict into the error callers return.
func refusal(v policy.Verdict) error {
	if !v.Decided || v.Allow {
		return nil
	}
	if v.Fallback {
		return fmt.Errorf("refused by the policy's fallback: %s", v.Err)
	}
	return fmt.Errorf("refused by policy %s: %s", filepath.Base(v.Script), v.Reason)
}

// storePolicy decides what a peer's PUT_VALUE may store here: the name
// system's ownership rule first (a valid record, never another key for a
// name this node knows), then the operator's store_record hook. The name
// service is read through d at call time: the DHT needs this hook before the
// service exists, and a put that arrives in between is refused.
func (d *Daemon) storePolicy(ctx context.Context, from peer.ID, rec *recpb.Record) error {
	names := d.names.Load()
	if names == nil {
		return errors.New("this node is starting; put again in a moment")
	}
	return names.AdmitPut(ctx, from, rec, func() error {
		if !d.Policy.Has("store_record") {
			return nil
		}
		key, value := string(rec.GetKey()), rec.GetValue()
		if err := d.Node.DHT.Validator.Validate(key, value); err != nil {
			return invalidRecord(key, err)
		}
		f := describeRecord(key, value)
		f.Publisher = from.String()
		return refusal(d.Policy.DecideFor(ctx, "store_record", f.Publisher, f))
	})
}

// shapeRecord trims what a record carries beyond the record schema as the
// DHT writes it: the name service keeps a zone's checked glue; before it
// has started, nothing is kept.
func (d *Daemon) shapeRecord(ctx context.Context, rec, held *recpb.Record) {
	if names := d.names.Load(); names != nil {
		names.ShapeStored(ctx, rec, held)
		return
	}
	rec.ProtoReflect().SetUnknown(nil)
}

// invalidRecord refuses a record the DHT's validators refuse, before the
// store policy sees it: scripts see only records of a known namespace with a
// well-formed key and a valid signature, not keys built to make them overrun.
// kad-dht would refuse the record after the policy anyway.
func invalidRecord(key string, err error) error {
	const show = 80
	if len(key) > show {
		key = fmt.Sprintf("%q… (%d bytes)", key[:show], len(key))
	} else {
		key = fmt.Sprintf("%q", key)
	}
	return fmt.Errorf("record %s is not valid, so no policy was asked: %w", key, err)
}

// namingPolicy adapts the policy to the name service's hooks.
type namingPolicy struct {
	p    *policy.Policy
	host host.Host
}

func (n namingPolicy) AcceptZone(ctx context.Context, z *names.Zone, size int) error {
	if !n.p.Has("accept_record") {
		return nil
	}
	f := recordFacts{Key: z.Key(), Namespace: names.ZoneNamespace, Name: z.Name.String(), Type: "zone",
		Size: size, Sequence: z.Seq, OwnerKey: names.KeyID(z.Owner)}
	return refusal(n.p.Decide(ctx, "accept_record", f))
}

func (n namingPolicy) OrderHosts(ctx context.Context, name string, hosts []naming.HostInfo) []naming.HostInfo {
	if !n.p.Has("order_hosts") {
		return hosts
	}
	ids := make([]peer.ID, 0, len(hosts))
	byID := map[string]naming.HostInfo{}
	for _, h := range hosts {
		if id, err := peer.Decode(h.PeerID); err == nil {
			ids = append(ids, id)
			byID[h.PeerID] = h
		}
	}
	v := n.p.Decide(ctx, "order_hosts", map[string]any{"name": name, "candidates": candidates(n.host, ids)})
	out := make([]naming.HostInfo, 0, len(hosts))
	for _, id := range preferred(ids, v) {
		out = append(out, byID[id.String()])
	}
	return out
}

// orderSources is the fetch's order_providers hook.
func (d *Daemon) orderSources(ctx context.Context, root cid.Cid, sources []peer.ID) []peer.ID {
	if !d.Policy.Has("order_providers") {
		return sources
	}
	v := d.Policy.Decide(ctx, "order_providers", map[string]any{"cid": root.String(), "candidates": candidates(d.Node.Host, sources)})
	return preferred(sources, v)
}

// preferred puts the peers a verdict lists first, in its order; the others
// keep theirs after them. Peers the verdict invents are ignored.
func preferred(ids []peer.ID, v policy.Verdict) []peer.ID {
	if !v.Decided || len(v.Order) == 0 {
		return ids
	}
	out := make([]peer.ID, 0, len(ids))
	for _, s := range v.Order {
		for _, id := range ids {
			if id.String() == s && !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	for _, id := range ids {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// candidate is what routing hooks see of a peer.
type candidate struct {
	Peer      string   `json:"peer"`
	Addrs     []string `json:"addrs"`
	LatencyMS float64  `json:"latency_ms"` // 0: not measured yet
	Connected bool     `json:"connected"`
}

func candidates(h host.Host, ids []peer.ID) []candidate {
	out := make([]candidate, 0, len(ids))
	for _, id := range ids {
		c := candidate{Peer: id.String(), Addrs: []string{},
			LatencyMS: float64(h.Peerstore().LatencyEWMA(id).Microseconds()) / 1000,
			Connected: len(h.Network().ConnsToPeer(id)) > 0}
		for _, a := range h.Peerstore().Addrs(id) {
			c.Addrs = append(c.Addrs, a.String())
		}
		out = append(out, c)
	}
	return out
}
