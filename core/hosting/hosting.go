// Package hosting is what a node publishes and fetches: it imports a
// directory, pins it, points a name's zone at it and announces it in the DHT;
// and it fetches content by name or CID from the zone's hosts and the DHT's
// providers at once, keeping what it fetched so it serves it too.
package hosting

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/avnode/avnode/core/content"
	"github.com/avnode/avnode/core/exchange"
	"github.com/avnode/avnode/core/fault"
	"github.com/avnode/avnode/core/names"
	"github.com/avnode/avnode/core/naming"
)

const (
	providerWait       = 5 * time.Second
	maxProviders       = 20
	provideTimeout     = time.Minute
	publishedPinReason = "published "
	importedPinReason  = "imported"
)

// Service publishes and fetches content for one node.
type Service struct {
	host    host.Host
	dht     *dht.IpfsDHT
	names   *naming.Service
	Blocks  *content.Blockstore
	Pins    *content.Pins
	fetcher *exchange.Fetcher
	server  *exchange.Server
	cacheMB int
	log     *slog.Logger
	// gcMu keeps garbage collection out while a publish or a fetch holds
	// blocks that no pin protects yet (read side), and lets one GC run at a
	// time (write side). Every GC goes through Service.GC.
	gcMu sync.RWMutex
	// reads holds what Export and WriteRange are reading, and what a fetch
	// brought in for FetchLease after it, which GC keeps.
	reads        readHolds
	fetchLease   time.Duration
	orderSources func(context.Context, cid.Cid, []peer.ID) []peer.ID
	private      bool
	maxFetchMB   int
	verified     verifiedSizes
}

// Options are what New needs.
type Options struct {
	Host       host.Host
	DHT        *dht.IpfsDHT
	Names      *naming.Service
	Blocks     *content.Blockstore
	Pins       *content.Pins
	DHTPrefix  string
	CacheMaxMB int // unpinned blocks are collected before a fetch when the store is over this
	// FetchSources is how many sources a fetch uses at once; the others
	// are spares. 0: all.
	FetchSources int
	// OrderSources, when set, puts a fetch's sources in the order to try
	// them (a routing policy); it may not add sources.
	OrderSources func(ctx context.Context, root cid.Cid, sources []peer.ID) []peer.ID
	// Private keeps the node's blocks to itself (content.serve false, a
	// satellite): it serves none to peers, announces nothing it fetched and
	// refuses to publish.
	Private bool
	// MaxFetchMB bounds what one get fetches and writes (content.max_fetch_mb);
	// 0: the free space of the store's disk less FreeMargin.
	MaxFetchMB int
	// Server bounds what each peer may ask of the block server.
	Server exchange.ServerOptions
	Logger *slog.Logger
}

// New starts serving blocks to peers, unless the node is private.
func New(opts Options) *Service {
	fetcher := exchange.NewFetcher(opts.Host, opts.DHTPrefix, opts.Blocks, opts.Logger)
	fetcher.MaxSources = opts.FetchSources
	s := &Service{
		host: opts.Host, dht: opts.DHT, names: opts.Names, Blocks: opts.Blocks, Pins: opts.Pins,
		fetcher: fetcher, cacheMB: opts.CacheMaxMB, log: opts.Logger, orderSources: opts.OrderSources,
		private: opts.Private, maxFetchMB: opts.MaxFetchMB,
	}
	if !opts.Private {
		s.server = exchange.NewServerWith(opts.Host, opts.DHTPrefix, opts.Blocks, opts.Logger, opts.Server)
	}
	return s
}

// Close stops serving blocks.
func (s *Service) Close() {
	if s.server != nil {
		s.server.Close()
	}
}

// ErrBadTarget wraps a get target that is neither NAME[/PATH] nor /cid/CID[/PATH].
var ErrBadTarget error = fault.New(fault.Invalid, "not a target")

// ErrPrivate is a publish refused on a node that serves no content.
var ErrPrivate = errors.New("this node serves no content (content.serve is false, as on a satellite); publish from a node that serves, such as your beacon")

// Progress is what a long publish or get reports while it works.
type Progress struct {
	Phase  string `json:"phase"` // "import" or "fetch"
	Bytes  int64  `json:"bytes"`
	Blocks int    `json:"blocks,omitempty"` // fetched or present so far
	Of     int    `json:"of,omitempty"`     // blocks known so far in the DAG
}

// throttled calls report at most five times a second.
func throttled(report func(Progress)) func(Progress) {
	if report == nil {
		return func(Progress) {}
	}
	var last time.Time
	return func(p Progress) {
		if time.Since(last) >= 200*time.Millisecond {
			last = time.Now()
			report(p)
		}
	}
}

// PublishResult is what a publish did; the control API answers it as api.PublishResult.
type PublishResult struct {
	Root      string `json:"root"`
	Name      string `json:"name,omitempty"`
	Seq       uint64 `json:"seq,omitempty"`
	Files     int    `json:"files"`
	Dirs      int    `json:"dirs"`
	Blocks    int    `json:"blocks"`
	NewBlocks int    `json:"new_blocks"`
	Bytes     int64  `json:"bytes"`
	Provided  bool   `json:"provided"`
}

// Publish imports dir, pins it, announces the root in the DHT and, with a
// name, sets the zone's ROOT to it and adds this node as a HOST, or the
// estate (an ID or label hosted here) as HOST estate:<ID>.
func (s *Service) Publish(ctx context.Context, dir, name, estate string, report func(Progress)) (*PublishResult, error) {
	if s.private {
		return nil, ErrPrivate
	}
	host, estateID := s.host.ID().String(), ""
	if estate != "" {
		if name == "" {
			return nil, fault.New(fault.Invalid, "--estate needs --name: the estate hosts a name")
		}
		h, err := s.names.HostedEstate(ctx, estate)
		if err != nil {
			return nil, err
		}
		if h.Retired != "" {
			return nil, fault.Errorf(fault.Refused, "estate %s was moved away (%s); publish on the machine that hosts it now", h.ID, h.Retired)
		}
		estateID = h.ID
		host = names.EstateHostPrefix + h.ID
	}
	s.gcMu.RLock() // until the root is pinned
	defer s.gcMu.RUnlock()
	progress := throttled(report)
	imp, err := content.Import(ctx, dir, s.Blocks, func(done int64) { progress(Progress{Phase: "import", Bytes: done}) })
	if err != nil {
		return nil, err
	}
	res := &PublishResult{Root: imp.Root.String(), Files: imp.Files, Dirs: imp.Dirs, Blocks: imp.Blocks,
		NewBlocks: imp.NewBlocks, Bytes: imp.Bytes}
	reason := importedPinReason
	if name != "" {
		reason = publishedPinReason + name
	}
	if err := s.Pins.Add(ctx, imp.Root, reason); err != nil {
		return nil, fmt.Errorf("pin %s: %w", imp.Root, err)
	}
	if name == "" {
		// No name to point, but the content is still announced, so that
		// `avnode get /cid/<root>` works from any node.
		res.Provided = s.provide(ctx, imp.Root)
		return res, nil
	}
	// Announce the content before the zone points at it, so that whoever
	// hears of the new version (a mirror, on pub/sub) finds its providers.
	res.Name = name
	res.Provided = s.provide(ctx, imp.Root)
	zone, err := s.names.ChangeRecord(ctx,
		naming.RecordChange{Name: name, Type: "ROOT", Value: imp.Root.String()},
		naming.RecordChange{Name: name, Type: "HOST", Value: host})
	if err != nil {
		return nil, err
	}
	res.Seq = zone.Seq
	if estateID != "" {
		n, _ := names.Parse(name)
		if err := s.names.AddEstateName(ctx, estateID, n.Registered()); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func (s *Service) provide(ctx context.Context, root cid.Cid) bool {
	ctx, cancel := context.WithTimeout(ctx, provideTimeout)
	defer cancel()
	if err := s.dht.Provide(ctx, root, true); err != nil {
		s.log.Warn("announce content", "root", root, "err", err)
		return false
	}
	return true
}

// Target is what `avnode get` was asked for: a name or a CID, and a path inside.
type Target struct {
	Name string
	Root cid.Cid
	Path string
}

// altScheme starts a name in the Alternet form, an://name:topic.
const altScheme = "an://"

// ParseTarget reads NAME[/PATH] (NAME dotted or an://name:topic) or
// /cid/CID[/PATH].
func ParseTarget(s string) (Target, error) {
	if rest, ok := strings.CutPrefix(s, "/cid/"); ok {
		cidText, path, _ := strings.Cut(rest, "/")
		c, err := cid.Decode(cidText)
		if err != nil {
			return Target{}, fmt.Errorf("%q: %q is not a CID (%v): %w", s, cidText, err, ErrBadTarget)
		}
		return Target{Root: c, Path: path}, nil
	}
	rest := strings.TrimPrefix(s, "/name/")
	if len(rest) >= len(altScheme) && strings.EqualFold(rest[:len(altScheme)], altScheme) {
		// an://name:topic/PATH: the path starts after the scheme's slashes.
		name, path, _ := strings.Cut(rest[len(altScheme):], "/")
		if name == "" {
			return Target{}, fmt.Errorf("%q: give an://NAME:TOPIC[/PATH]: %w", s, ErrBadTarget)
		}
		return Target{Name: altScheme + name, Path: path}, nil
	}
	name, path, _ := strings.Cut(rest, "/")
	if name == "" {
		return Target{}, fmt.Errorf("%q: give NAME[/PATH] or /cid/CID[/PATH]: %w", s, ErrBadTarget)
	}
	return Target{Name: name, Path: path}, nil
}

// GetResult is a fetched target; the control API answers it as api.GetResult.
type GetResult struct {
	Target  string          `json:"target"`
	Root    string          `json:"root"`
	CID     string          `json:"cid"`
	Kind    string          `json:"kind"`
	Size    int64           `json:"size"`
	Output  string          `json:"output,omitempty"`
	Entries []content.Entry `json:"entries,omitempty"`
	Stats   exchange.Stats  `json:"stats"`
}

// Fetch brings the content of target into the block store and returns what
// it is; Export or WriteFile then write it out.
//
// then, if not nil, runs after a successful fetch while garbage collection
// is still held off, to write the content out before a GC may take it.
func (s *Service) Fetch(ctx context.Context, targetText string, report func(Progress), then func(*GetResult) error) (*GetResult, error) {
	return s.fetch(ctx, targetText, nil, true, report, then)
}

// FetchUnannounced is Fetch without announcing the content as a provider
// afterwards: a gateway's browsing, which the node's provider records must
// not publish. The blocks are still served to peers that ask for them.
func (s *Service) FetchUnannounced(ctx context.Context, targetText string) (*GetResult, error) {
	return s.fetch(ctx, targetText, nil, false, nil, nil)
}

// FetchFrom is Fetch from these peers only, with no DHT provider lookup (a
// satellite fetching through its beacon). A name is still resolved, for
// its root.
func (s *Service) FetchFrom(ctx context.Context, targetText string, from []peer.ID) (*GetResult, error) {
	if len(from) == 0 {
		return nil, fmt.Errorf("get %s: no peer to fetch from", targetText)
	}
	return s.fetch(ctx, targetText, from, true, nil, nil)
}

func (s *Service) fetch(ctx context.Context, targetText string, from []peer.ID, announce bool, report func(Progress), then func(*GetResult) error) (*GetResult, error) {
	progress := throttled(report)
	t, err := ParseTarget(targetText)
	if err != nil {
		return nil, err
	}
	sources, asked := from, true
	if len(from) == 0 {
		sources, asked, err = s.resolveTarget(ctx, &t)
	} else if t.Name != "" {
		_, err = s.resolveName(ctx, &t) // for the root
	}
	if err != nil {
		return nil, err
	}
	s.trimCache(ctx)
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	res := &GetResult{Target: targetText, Root: t.Root.String()}
	at, err := s.pull(ctx, t, s.order(ctx, t.Root, sources), res, progress)
	if err != nil && !asked && ctx.Err() == nil && !errors.Is(err, content.ErrTooLarge) {
		// Blocks are missing below a root held here, and the hosts (if
		// any) did not have them: ask the DHT who provides them.
		if more := s.findProviders(ctx, t.Root); len(more) > 0 {
			at, err = s.pull(ctx, t, s.order(ctx, t.Root, append(sources, more...)), res, progress)
		}
	}
	if err != nil {
		return res, fmt.Errorf("get %s: %w", targetText, err)
	}
	// The caller (a plugin's Fetch, a gateway) reads what it fetched in a
	// later call: keep it from the cache's trims for a while, or a trim set
	// off by another get in between takes it.
	s.reads.holdFor(at, s.lease())
	if announce && !s.private && res.Stats.Fetched > 0 {
		go s.provide(context.Background(), at) // we hold all of it now: serve it to others
	}
	res.CID = at.String()
	if res.Kind, res.Size, err = s.VerifiedSize(ctx, at); err != nil {
		return res, fmt.Errorf("get %s: %w", targetText, err)
	}
	if res.Kind == "dir" {
		if res.Entries, err = content.List(at, s.Blocks); err != nil {
			return res, err
		}
	}
	if then != nil {
		if err := then(res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// GC removes blocks no pin reaches, once no publish or fetch is under way:
// the operator's `avnode repo gc`, which takes what recent fetches brought
// in too. It keeps what is being read, and does not wait for reads to end:
// a slow reader holds only what it reads.
func (s *Service) GC(ctx context.Context) (content.GCResult, error) {
	return s.collect(ctx, false)
}

// collect is GC; withLeases keeps also what fetches brought in less than
// FetchLease ago (the cache's own trims, which other gets set off).
func (s *Service) collect(ctx context.Context, withLeases bool) (content.GCResult, error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	s.reads.mu.Lock() // a read starts before this GC, and is kept, or after it
	defer s.reads.mu.Unlock()
	keep := slices.Collect(maps.Keys(s.reads.roots))
	if withLeases {
		keep = slices.AppendSeq(keep, maps.Keys(s.reads.leased))
	}
	return content.GC(ctx, s.Blocks, s.Pins, keep...)
}

// readHolds counts the reads of each root under way, and the leases of
// recent fetches.
type readHolds struct {
	mu     sync.Mutex // held by GC for its whole run
	roots  map[cid.Cid]int
	leased map[cid.Cid]int
}

// FetchLease is how long GC keeps what a fetch brought in, unpinned, for
// the reads that follow it in other calls.
const FetchLease = 2 * time.Minute

func (s *Service) lease() time.Duration {
	if s.fetchLease > 0 {
		return s.fetchLease
	}
	return FetchLease
}

// holdFor keeps root from the cache's trims for d.
func (h *readHolds) holdFor(root cid.Cid, d time.Duration) {
	time.AfterFunc(d, h.count(&h.leased, root))
}

// hold keeps root from GC until release is called.
func (h *readHolds) hold(root cid.Cid) (release func()) {
	return h.count(&h.roots, root)
}

func (h *readHolds) count(m *map[cid.Cid]int, root cid.Cid) (release func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if *m == nil {
		*m = map[cid.Cid]int{}
	}
	(*m)[root]++
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if (*m)[root]--; (*m)[root] == 0 {
			delete(*m, root)
		}
	}
}

// resolveTarget fills in the root from the name and gathers sources: the
// zone's hosts, and the DHT's providers of the root unless its block is
// here (then the content likely is too, and the providers are asked only
// if the fetch finds blocks missing); asked says whether they were.
func (s *Service) resolveTarget(ctx context.Context, t *Target) (sources []peer.ID, asked bool, err error) {
	if t.Name != "" {
		res, err := s.resolveName(ctx, t)
		if err != nil {
			return nil, false, err
		}
		// Hosts past the resolve's lookups have no addresses: dialing them
		// would walk the DHT for each, which the bound is there to stop.
		for _, h := range res.Hosts[:min(len(res.Hosts), naming.MaxHostLookups)] {
			if id, err := peer.Decode(h.PeerID); err == nil {
				s.rememberAddrs(id, h.Addrs)
				sources = append(sources, id)
			}
		}
	}
	if have, _ := s.Blocks.Has(t.Root); have {
		return sources, false, nil
	}
	return append(sources, s.findProviders(ctx, t.Root)...), true, nil
}

// order puts sources in the routing policy's order, if there is one. A
// peer found twice (a zone's HOST that also provides the content in the
// DHT) is one source, and one candidate for the policy.
func (s *Service) order(ctx context.Context, root cid.Cid, sources []peer.ID) []peer.ID {
	sources = uniquePeers(sources)
	if s.orderSources != nil && len(sources) > 1 {
		return s.orderSources(ctx, root, sources)
	}
	return sources
}

// pull fetches the directories along the target's path, then the whole
// tree at its end (a page of a large site does not wait for the rest of
// the site), counting into res.Stats; it returns the CID at the path.
func (s *Service) pull(ctx context.Context, t Target, sources []peer.ID, res *GetResult, progress func(Progress)) (cid.Cid, error) {
	at, pathStats, err := s.fetchPath(ctx, t.Root, t.Path, sources)
	res.Stats.Add(pathStats)
	if err != nil {
		return cid.Undef, err
	}
	limit, err := s.fetchLimit()
	if err != nil {
		return cid.Undef, err
	}
	stats, err := s.fetcher.FetchWithin(ctx, at, sources, limit, func(st exchange.Stats) {
		progress(Progress{Phase: "fetch", Bytes: st.Bytes, Blocks: st.Fetched + st.Present, Of: st.Blocks})
	})
	res.Stats.Add(stats)
	return at, s.explainLimit(err)
}

// fetchPath fetches the directory blocks along path from root, one at a
// time, and returns the CID the path names.
func (s *Service) fetchPath(ctx context.Context, root cid.Cid, path string, sources []peer.ID) (cid.Cid, exchange.Stats, error) {
	at := root
	var stats exchange.Stats
	for _, el := range strings.Split(path, "/") {
		if el == "" {
			continue
		}
		st, err := s.fetcher.FetchBlock(ctx, at, sources)
		stats.Add(st)
		if err != nil {
			return cid.Undef, stats, err
		}
		if at, err = content.ResolvePath(at, el, s.Blocks); err != nil {
			return cid.Undef, stats, err
		}
	}
	return at, stats, nil
}

// resolveName fills in the root from the name.
func (s *Service) resolveName(ctx context.Context, t *Target) (*naming.Resolution, error) {
	res, err := s.names.Resolve(ctx, t.Name)
	if err != nil {
		return nil, err
	}
	if res.Root == "" {
		return nil, fmt.Errorf("get %s: the name has no content yet (no ROOT record); its owner publishes with `avnode publish DIR --name %s`", t.Name, t.Name)
	}
	if t.Root, err = cid.Decode(res.Root); err != nil {
		return nil, fmt.Errorf("get %s: ROOT %q is not a CID: %w", t.Name, res.Root, err)
	}
	return res, nil
}

func (s *Service) rememberAddrs(id peer.ID, addrs []string) {
	for _, a := range addrs {
		if m, err := ma.NewMultiaddr(a); err == nil {
			s.host.Peerstore().AddAddr(id, m, peerstore.TempAddrTTL)
		}
	}
}

func (s *Service) findProviders(ctx context.Context, root cid.Cid) []peer.ID {
	ctx, cancel := context.WithTimeout(ctx, providerWait)
	defer cancel()
	var out []peer.ID
	for info := range s.dht.FindProvidersAsync(ctx, root, maxProviders) {
		if info.ID == s.host.ID() {
			continue
		}
		s.host.Peerstore().AddAddrs(info.ID, info.Addrs, peerstore.TempAddrTTL)
		out = append(out, info.ID)
	}
	return out
}

// trimCache collects unpinned blocks when the store is over its bound, so
// fetched content is kept (and served) until space is needed.
func (s *Service) trimCache(ctx context.Context) {
	if s.cacheMB <= 0 {
		return
	}
	_, used, err := s.Blocks.Usage(ctx)
	if err != nil || used <= int64(s.cacheMB)<<20 {
		return
	}
	res, err := s.collect(ctx, true)
	s.log.Info("block cache over its bound: collected unpinned blocks", "freed", res.Freed, "err", err)
}

// Export writes fetched content to path, once its size is verified. What it
// writes is kept from GC until it is written.
func (s *Service) Export(ctx context.Context, c cid.Cid, path string) error {
	defer s.reads.hold(c)()
	if _, _, err := s.VerifiedSize(ctx, c); err != nil {
		return fmt.Errorf("export %s to %s: %w", c, path, err)
	}
	return content.Export(ctx, c, path, s.Blocks)
}

// WriteFile streams a fetched file, once its size is verified.
func (s *Service) WriteFile(ctx context.Context, c cid.Cid, w io.Writer) (int64, error) {
	return s.WriteRange(ctx, c, 0, 0, w)
}

// WriteRange streams length bytes of a stored file from offset (length 0:
// to the end), once its size is verified; nothing is written otherwise.
// The file is kept from GC until it is written: a GC under way when the read
// starts may have taken it (then nothing is written), one that starts later
// keeps it.
func (s *Service) WriteRange(ctx context.Context, c cid.Cid, offset, length int64, w io.Writer) (int64, error) {
	defer s.reads.hold(c)()
	if _, _, err := s.VerifiedSize(ctx, c); err != nil {
		return 0, fmt.Errorf("read %s: %w", c, err)
	}
	return content.WriteRange(ctx, c, offset, length, w, s.Blocks)
}

// uniquePeers keeps the first of each peer, in order.
func uniquePeers(ids []peer.ID) []peer.ID {
	seen := make(map[peer.ID]bool, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
