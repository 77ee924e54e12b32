// Package node builds the node's network core: the libp2p host (TCP and
// QUIC, Noise and TLS, yamux, resource and connection managers, AutoNAT,
// hole punching, relay client) and the Kademlia DHT of the avtr network,
// with records persisted in the repo's datastore. It holds no policy and
// runs no plugin: those sit above it and call it.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/avnode/avnode/core/config"
	"github.com/avnode/avnode/core/watch"
)

// Version is the node's release, reported in its agent string. A release
// build sets it: go build -ldflags "-X github.com/avnode/avnode/core/node.Version=0.2.0".
var Version = "0.1.0-dev"

// Agent is the libp2p user agent other peers see: the release, and the
// commit it was built from when the build knows it.
func Agent() string { return "avnode/" + FullVersion() }

// Options are what New needs besides the config.
type Options struct {
	Config    *config.Config
	Key       crypto.PrivKey
	Datastore ds.Batching // where the DHT keeps records under /dht; the repo gives its Unsynced view (records held for others come back from their owners)
	Logger    *slog.Logger
	// Registerer receives libp2p's and the node's metrics; nil turns them off.
	Registerer prometheus.Registerer
	// Validators adds DHT record namespaces (e.g. names) besides /pk.
	Validators map[string]record.Validator
	// StorePolicy, when set, decides which records peers may store here.
	StorePolicy StorePolicy
	// ShapeRecord, when set, trims what a value record carries beyond the
	// record schema as it is written to the datastore (RecordShaper).
	ShapeRecord RecordShaper
	// HostOptions come after the config's libp2p options: a simulated
	// network's transport, in the bench. Nil in the daemon.
	HostOptions []libp2p.Option
}

// Node is a running libp2p host with its DHT.
type Node struct {
	Host host.Host
	DHT  *dht.IpfsDHT
	// Values is the DHT's record store on disk, for this node's own puts
	// (naming's putValue); nil when the DHT keeps its records in memory.
	Values *records.ValueStore

	cfg    *config.Config
	log    *slog.Logger
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	records watch.List[RecordStored]
	topics  *topics

	registerer prometheus.Registerer // nil: no metrics
	up         atomic.Bool           // libp2p.New returned: the host listens
	closeOnce  sync.Once
	closeErr   error

	mu           sync.Mutex
	reachability network.Reachability
	relay        *relayService // nil until StartRelay
}

// New starts the host and the DHT, listening on the configured addresses.
func New(opts Options) (*Node, error) {
	cfg := opts.Config
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	n := &Node{cfg: cfg, log: log, registerer: opts.Registerer}
	// A simulated network (HostOptions) listens on no socket of this machine.
	if len(opts.HostOptions) == 0 {
		if err := listenPortsFree(cfg.Listen); err != nil {
			return nil, err
		}
	}
	hostOpts, err := n.hostOptions(opts)
	if err != nil {
		return nil, err
	}
	// libp2p builds the routing before it starts the goroutines that use
	// it (the relay finder), so they see n.DHT set; nothing sets it again.
	hostOpts = append(hostOpts, libp2p.Routing(func(h host.Host) (routing.PeerRouting, error) {
		n.DHT, err = dht.New(h, n.dhtOptions(h, opts)...)
		return n.DHT, err
	}))
	h, err := libp2p.New(hostOpts...)
	if err != nil {
		return nil, explainStartError(cfg, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.Host, n.ctx, n.cancel = h, ctx, cancel
	n.up.Store(true)
	if err := n.watchReachability(ctx); err != nil {
		n.Close()
		return nil, err
	}
	if err := n.startPubSub(ctx); err != nil {
		n.Close()
		return nil, err
	}
	if opts.Registerer != nil {
		if err := registerNodeMetrics(opts.Registerer, n); err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

func (n *Node) hostOptions(opts Options) ([]libp2p.Option, error) {
	cfg := opts.Config
	rm, err := newResourceManager(cfg)
	if err != nil {
		return nil, err
	}
	cm, err := connmgr.NewConnManager(cfg.ConnMgr.Low, cfg.ConnMgr.High, connmgr.WithGracePeriod(cfg.ConnMgr.Grace.D()))
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	hostOpts := []libp2p.Option{
		libp2p.Identity(opts.Key),
		libp2p.ListenAddrStrings(cfg.Listen...),
		libp2p.DefaultSecurity, // Noise and TLS
		libp2p.DefaultMuxers,   // yamux
		libp2p.DefaultTransports,
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.UserAgent(Agent()),
		libp2p.Ping(true),
	}
	if cfg.NAT.AutoNAT {
		hostOpts = append(hostOpts, libp2p.EnableNATService(), libp2p.EnableAutoNATv2())
	}
	if cfg.NAT.HolePunching {
		hostOpts = append(hostOpts, libp2p.EnableHolePunching())
	}
	hostOpts = append(hostOpts, n.natOptions(cfg)...)
	hostOpts = append(hostOpts, opts.HostOptions...)
	if cfg.NAT.PortMap {
		hostOpts = append(hostOpts, libp2p.NATPortMap())
	}
	if opts.Registerer != nil {
		hostOpts = append(hostOpts, libp2p.PrometheusRegisterer(opts.Registerer))
	} else {
		hostOpts = append(hostOpts, libp2p.DisableMetrics())
	}
	return hostOpts, nil
}

func (n *Node) dhtOptions(h host.Host, opts Options) []dht.Option {
	cfg := opts.Config
	validator := record.NamespacedValidator{"pk": record.PublicKeyValidator{}}
	for ns, v := range opts.Validators {
		validator[ns] = v
	}
	mode := map[string]dht.ModeOpt{"server": dht.ModeServer, "client": dht.ModeClient, "auto": dht.ModeAuto}[cfg.DHT.Mode]
	dhtOpts := []dht.Option{
		dht.Mode(mode),
		dht.ProtocolPrefix(protocolID(cfg.DHT.ProtocolPrefix)),
		dht.Validator(validator),
		dht.MaxRecordAge(cfg.DHT.RecordMaxAge.D()),
		dht.RoutingTableRefreshPeriod(cfg.DHT.RefreshInterval.D()),
	}
	if cfg.DHT.MaxPeersPerIPGroup > 0 {
		dhtOpts = append(dhtOpts, dht.RoutingTablePeerDiversityFilter(newDiversityFilter(h, cfg)))
	}
	if opts.Datastore != nil {
		store := &notifyingStore{Batching: namespace.Wrap(opts.Datastore, ds.NewKey("/dht")), watchers: &n.records, shape: opts.ShapeRecord}
		dhtOpts = append(dhtOpts, dht.Datastore(store))
		// The same store and rules as the DHT's own: kad-dht keeps its
		// value store to itself.
		n.Values = records.NewValueStore(store, validator, cfg.DHT.RecordMaxAge.D())
	}
	if opts.StorePolicy != nil {
		dhtOpts = append(dhtOpts, dht.OnRequestHook(refusePut(opts.StorePolicy, n.log)))
	}
	if peers := bootstrapPeers(cfg); len(peers) > 0 {
		// The DHT reconnects to these by itself when its routing table runs
		// empty; but not while libp2p.New is still running: a dial before the
		// host listens leaves from a random port, so a node behind NAT would
		// never learn its mapped address and could not hole punch. Bootstrap
		// dials them once the host is up.
		dhtOpts = append(dhtOpts, dht.BootstrapPeersFunc(func() []peer.AddrInfo {
			if !n.up.Load() {
				return nil
			}
			return peers
		}))
	}
	return dhtOpts
}

func bootstrapPeers(cfg *config.Config) []peer.AddrInfo {
	var peers []peer.AddrInfo
	for _, s := range cfg.Bootstrap {
		if info, err := config.ParsePeerAddr(s); err == nil { // validated when the config was loaded
			peers = append(peers, *info)
		}
	}
	return peers
}

// explainStartError turns libp2p's start errors into a line an operator can act on.
func explainStartError(cfg *config.Config, err error) error {
	msg := err.Error()
	if containsAny(msg, "address already in use", "failed to listen on any addresses") {
		return fmt.Errorf("listen on %v: %w; another program holds the port: pick another with --listen", cfg.Listen, err)
	}
	return fmt.Errorf("start libp2p host: %w", err)
}

// Bootstrap connects to the configured bootstrap peers, in parallel, and
// starts filling the routing table. Unreachable peers are logged, not
// fatal: any one reachable node is enough, and none is special.
func (n *Node) Bootstrap(ctx context.Context) int {
	peers := bootstrapPeers(n.cfg)
	var wg sync.WaitGroup
	var mu sync.Mutex
	connected := 0
	for _, p := range peers {
		if p.ID == n.Host.ID() {
			continue
		}
		wg.Add(1)
		go func(p peer.AddrInfo) {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := n.Host.Connect(cctx, p); err != nil {
				n.log.Warn("bootstrap peer unreachable", "peer", p.ID, "err", err)
				return
			}
			mu.Lock()
			connected++
			mu.Unlock()
		}(p)
	}
	wg.Wait()
	if err := n.DHT.Bootstrap(ctx); err != nil {
		n.log.Warn("dht bootstrap", "err", err)
	}
	n.wg.Add(1)
	go n.refreshWhileJoining(n.DHT)
	return connected
}

// joinRefreshes are the delays of the routing-table refreshes after a
// bootstrap. A node that joins while the network itself is starting finds
// few peers with its first lookup, and kad-dht's next refresh is
// dht.refresh_interval (10 minutes) away.
var joinRefreshes = []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second}

func (n *Node) refreshWhileJoining(kad *dht.IpfsDHT) {
	defer n.wg.Done()
	for _, d := range joinRefreshes {
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(d):
		}
		select {
		case <-kad.RefreshRoutingTable():
		case <-n.ctx.Done():
			return
		}
	}
}

// watchReachability records what AutoNAT concludes about this node.
func (n *Node) watchReachability(ctx context.Context) error {
	sub, err := n.Host.EventBus().Subscribe(new(event.EvtLocalReachabilityChanged))
	if err != nil {
		return fmt.Errorf("subscribe to reachability: %w", err)
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer sub.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				r := e.(event.EvtLocalReachabilityChanged).Reachability
				n.mu.Lock()
				n.reachability = r
				n.mu.Unlock()
				n.log.Info("reachability changed", "reachability", r.String())
			}
		}
	}()
	return nil
}

// Reachability is what AutoNAT concluded: Unknown, Public or Private.
func (n *Node) Reachability() network.Reachability {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.reachability
}

// Addrs returns the node's addresses as full multiaddrs ending in /p2p/<id>.
func (n *Node) Addrs() []string {
	full, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.Host.ID(), Addrs: n.Host.Addrs()})
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(full))
	for _, a := range full {
		out = append(out, a.String())
	}
	sort.Strings(out)
	return out
}

// PeerInfo describes one connected peer.
type PeerInfo struct {
	ID        string   `json:"peer_id"`
	Addrs     []string `json:"addrs"`
	Direction string   `json:"direction"`
	Agent     string   `json:"agent,omitempty"`
	Latency   string   `json:"latency,omitempty"`
}

// Peers lists the connected peers, sorted by ID.
func (n *Node) Peers() []PeerInfo {
	var out []PeerInfo
	for _, id := range n.Host.Network().Peers() {
		info := PeerInfo{ID: id.String()}
		for _, c := range n.Host.Network().ConnsToPeer(id) {
			info.Addrs = append(info.Addrs, c.RemoteMultiaddr().String())
			info.Direction = c.Stat().Direction.String()
		}
		if agent, err := n.Host.Peerstore().Get(id, "AgentVersion"); err == nil {
			info.Agent, _ = agent.(string)
		}
		if lat := n.Host.Peerstore().LatencyEWMA(id); lat > 0 {
			info.Latency = lat.Round(time.Microsecond).String()
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// FindPeer looks up a peer's addresses through the DHT.
func (n *Node) FindPeer(ctx context.Context, id peer.ID) ([]ma.Multiaddr, error) {
	info, err := n.DHT.FindPeer(ctx, id)
	if err != nil {
		if errors.Is(err, routing.ErrNotFound) {
			return nil, fmt.Errorf("findpeer %s: not found in the DHT", id)
		}
		return nil, fmt.Errorf("findpeer %s: %w", id, err)
	}
	return info.Addrs, nil
}

// Close stops the DHT, then the host. It is safe to call more than once:
// later calls return what the first did.
func (n *Node) Close() error {
	n.closeOnce.Do(func() { n.closeErr = n.close() })
	return n.closeErr
}

func (n *Node) close() error {
	n.cancel()
	var errs []error
	n.mu.Lock()
	if n.relay != nil {
		errs = append(errs, n.relay.svc.Close())
	}
	n.mu.Unlock()
	errs = append(errs, n.DHT.Close(), n.Host.Close())
	n.wg.Wait()
	return errors.Join(errs...)
}
