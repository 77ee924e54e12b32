// Package naming runs the name system on the node's DHT: claiming names
// (the closest peers agree to hold the first claim they see), publishing signed
// zones, resolving all three layers with caches, and keeping records alive by
// republishing. The record formats and their validation live in core/names;
// this package moves them over the network and remembers what it has seen.
package naming

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/record"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/sync/singleflight"

	"github.com/avnode/avnode/core/config"
	"github.com/avnode/avnode/core/keystore"
	"github.com/avnode/avnode/core/names"
	"github.com/avnode/avnode/core/watch"
)

// Datastore keys under /names.
var (
	pinnedPrefix = ds.NewKey("/pinned") // the owner's claim this node binds to each name (Owners)
	votedPrefix  = ds.NewKey("/held")   // the claim this node voted for as a holder (Owners.Vote)
	ownedPrefix  = ds.NewKey("/owned")  // names whose key is in the keystore: value is the key name
	zonePrefix   = ds.NewKey("/zone")   // the latest zone this node signed, per owned name
	seqPrefix    = ds.NewKey("/seq")    // high-water mark: the highest zone sequence seen per name and key chain head
	chainPrefix  = ds.NewKey("/chain")  // the key chain (rotations) this node knows per name (Owners)
)

func nameKey(prefix ds.Key, n names.Name) ds.Key { return prefix.ChildString(n.Registered().String()) }

// Service is the name system of one node.
type Service struct {
	host    host.Host
	dht     *dht.IpfsDHT
	store   ds.Datastore // the service's own keys, under /names
	raw     ds.Datastore // the whole repo datastore, to read the DHT's held records
	keys    *keystore.Store
	nodeKey crypto.PrivKey
	cfg     config.Config
	owners  *Owners // also holds the record rules (claimV, zoneV) the DHT validates by
	log     *slog.Logger
	metrics *metrics

	holdSlots chan struct{}  // bounds hold's network lookups (holdLookups)
	putSlots  chan struct{}  // bounds OfferZone's puts in flight (offerPuts)
	spreads   chan struct{}  // bounds the puts roles and tools ask for (spreadsAtOnce)
	spreadMu  sync.Mutex     // orders startSpread against Close
	spreading sync.WaitGroup // puts going on, in the background too
	zoneMu    sync.Mutex     // serialises updateZone
	mu        sync.Mutex
	zoneCache map[string]cachedZone
	addrCache *ttlCache[peer.ID, []string] // hosts' addresses, for addrCacheTTL
	copies    *ttlCache[string, []string]  // Copies' answers, by name/seq
	silent    *ttlCache[peer.ID, struct{}] // peers polls skip (failedToAnswer)
	holders   *ttlCache[string, []peer.ID] // by key, the peers that took this node's last put (putValue)
	// peerRecords are the signed peer records identify brought, by peer:
	// the glue this node attaches to the zones it puts (glue.go).
	peerRecords *ttlCache[peer.ID, *record.Envelope]
	values      *records.ValueStore // the DHT's record store, for putValue; nil: kad-dht's PutValue
	// estateCache keeps each estate's newest record seen: while its TTL
	// lasts it answers resolves, and after that its seq is the rollback
	// floor.
	estateCache map[string]cachedEstate
	importMu    sync.Mutex               // estate imports, one at a time
	unsettled   map[string]time.Time     // names whose holders could not agree, when
	stored      chan storedZone          // zones the DHT stored here, for learnStored
	published   map[string]publishResult // owned names' last zone puts, for OwnedNames

	life    context.Context // the service's: ends at Close
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	lookups singleflight.Group // hosts' address lookups in flight, by peer ID
	// gluing holds, by peer, the glued addresses a dial is trying and this
	// node did not know before: no lookup lists them unless they worked.
	gluing   map[peer.ID][]ma.Multiaddr
	gluingMu sync.Mutex
	// findPeerDHT is the DHT's peer routing (a stand-in only in unit tests).
	findPeerDHT func(context.Context, peer.ID) (peer.AddrInfo, error)

	watchers watch.List[Update]
	policy   Policy
}

// Update tells watchers that a name has a newer zone than this node knew.
type Update struct {
	Name string
	Key  string
	Seq  uint64
}

// Watch calls f for every name update this node sees (its own publishes and
// newer zones it resolves) until the returned cancel is called. f must not block.
func (s *Service) Watch(f func(Update)) (cancel func()) { return s.watchers.Add(f) }

func (s *Service) notify(u Update) { s.watchers.Emit(u) }

// Options are what New needs.
type Options struct {
	Host      host.Host
	DHT       *dht.IpfsDHT
	Values    *records.ValueStore // the DHT's record store (node.Node.Values); nil: puts go through kad-dht's PutValue
	Datastore ds.Batching         // the repo's datastore; the service uses /names
	Owners    *Owners             // the same one the DHT's validators use (NewOwners)
	Keys      *keystore.Store
	NodeKey   crypto.PrivKey
	Config    *config.Config
	Logger    *slog.Logger
	Metrics   MetricsRegisterer // nil: no metrics
	Policy    Policy            // nil: accept every valid zone, hosts in the default order
}

// Policy lets the node's operator decide what a resolve accepts and in which
// order it returns hosts (Lua policies, in the node).
type Policy interface {
	// AcceptZone refuses a valid zone found in the network with an error.
	AcceptZone(ctx context.Context, z *names.Zone, size int) error
	// OrderHosts returns the hosts in the order a resolve gives them.
	OrderHosts(ctx context.Context, name string, hosts []HostInfo) []HostInfo
}

// New starts the service: it answers claim requests at once; Start begins the
// republish loops.
func New(opts Options) (*Service, error) {
	if opts.Owners == nil {
		return nil, fmt.Errorf("naming: Options.Owners is required: build it with NewOwners and give its Validators to the DHT")
	}
	s := &Service{
		host:        opts.Host,
		dht:         opts.DHT,
		store:       namespace.Wrap(opts.Datastore, ds.NewKey("/names")),
		raw:         opts.Datastore,
		keys:        opts.Keys,
		nodeKey:     opts.NodeKey,
		cfg:         *opts.Config,
		owners:      opts.Owners,
		log:         opts.Logger.With("component", "names"),
		policy:      opts.Policy,
		zoneCache:   map[string]cachedZone{},
		stored:      make(chan storedZone, storedQueue),
		holdSlots:   make(chan struct{}, holdLookups),
		putSlots:    make(chan struct{}, offerPuts),
		spreads:     make(chan struct{}, spreadsAtOnce),
		addrCache:   newTTLCache[peer.ID, []string](addrsKept, addrCacheTTL),
		copies:      newTTLCache[string, []string](copiesKept, copiesFresh),
		silent:      newTTLCache[peer.ID, struct{}](silentKept, silentFor),
		holders:     newTTLCache[string, []peer.ID](holdersKept, holdersFresh),
		peerRecords: newTTLCache[peer.ID, *record.Envelope](peerRecordsKept, peerRecordsFresh),
		values:      opts.Values,
		estateCache: map[string]cachedEstate{},
		unsettled:   map[string]time.Time{},
		gluing:      map[peer.ID][]ma.Multiaddr{},
	}
	m, err := newMetrics(opts.Metrics)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	s.findPeerDHT = s.dht.FindPeer
	s.life, s.cancel = context.WithCancel(context.Background())
	s.owners.onChainChange(s.forgetZone)
	s.host.SetStreamHandler(s.claimProtocol(), s.handleClaim)
	return s, nil
}

func (s *Service) claimProtocol() protocol.ID {
	return protocol.ID(s.cfg.DHT.ProtocolPrefix + "/claim/2.0.0")
}

// Start runs the republish and re-put loops until Close.
func (s *Service) Start() {
	ctx := s.life
	s.every(ctx, s.cfg.Names.RepublishInterval.D(), s.republishOwned)
	s.every(ctx, s.cfg.Names.RepublishInterval.D(), s.republishEstates)
	s.every(ctx, s.cfg.Names.ReputInterval.D(), s.reputHeld)
	s.wg.Add(1)
	go s.learnStored(ctx)
	s.keepPeerRecords(ctx)
}

func (s *Service) every(ctx context.Context, interval time.Duration, job func(context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			// Jitter spreads the work of many nodes holding the same records.
			wait := interval*3/4 + rand.N(interval/2+1)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
				job(ctx)
			}
		}
	}()
}

// Close stops the loops and the claim handler.
func (s *Service) Close() {
	s.host.RemoveStreamHandler(s.claimProtocol())
	s.cancel()
	s.wg.Wait()
	s.spreadMu.Lock() // no put starts after this
	s.spreadMu.Unlock()
	s.spreading.Wait()
}

func (s *Service) get(ctx context.Context, k ds.Key) ([]byte, bool, error) {
	v, err := s.store.Get(ctx, k)
	if err == ds.ErrNotFound {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("names store %s: %w", k, err)
	}
	return v, true, nil
}
