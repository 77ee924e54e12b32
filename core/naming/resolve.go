package naming

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/avnode/avnode/core/fault"
	"github.com/avnode/avnode/core/names"
)

// ErrNotFound means no holder has the name.
var ErrNotFound error = fault.New(fault.NotFound, "not found")

// ErrNoPeers means this node knows no peer to ask: its routing table is
// empty, as before its first connection or after losing all of them.
var ErrNoPeers error = fault.New(fault.Unavailable,
	"this node knows no peers yet, so it cannot ask the network; check that it is connected (`avnode peers`) and that `bootstrap` in its config lists reachable peers")

const (
	maxCNAMEDepth = 8
	addrCacheTTL  = 30 * time.Second
	addrsKept     = 4096 // hosts whose addresses the cache keeps at most
	findPeerWait  = 5 * time.Second
	// hostWait bounds how long a resolve waits on one host's lookup. The
	// lookup of a host that is down ends on a dial to it that times out
	// (seconds on a real network, where a dead machine drops packets): it
	// carries on in the background and fills the address cache, and the
	// resolve lists the addresses this node knew, as FindPeer itself
	// answers after a failed dial.
	hostWait = time.Second
	// MaxHostLookups is how many of a name's hosts a resolve looks up
	// addresses for (in parallel, in the zone's order); the others are
	// listed without addresses. A zone can name a few hundred hosts, and a
	// lookup each on every resolve would let one zone's owner make every
	// reader walk the DHT hundreds of times.
	MaxHostLookups = 8
)

// Resolution is a name resolved through its three layers. The control API
// answers it as api.Resolution, with the copies and the beacon it came through.
type Resolution struct {
	Name string `json:"name"`
	Key  string `json:"key"`
	// KeyType is the current key's: Ed25519 or Ed25519+ML-DSA-65.
	KeyType string `json:"key_type"`
	// Rotations counts the key changes since the name was claimed.
	Rotations int          `json:"rotations"`
	Seq       uint64       `json:"seq"`
	Expires   time.Time    `json:"expires"`
	Records   []RecordInfo `json:"records"`
	Hosts     []HostInfo   `json:"hosts"`
	Root      string       `json:"root"`
	// Via lists the CNAME chain followed, if any.
	Via []string `json:"via,omitempty"`
	// Estates are the estates the name's HOST records name, with the
	// machines each runs on now; their machines are among Hosts.
	Estates []EstateInfo `json:"estates,omitempty"`
	// CopiesWanted is the owner's replication target (TXT copies=N).
	CopiesWanted int `json:"copies_wanted,omitempty"`
	// Disputed says, on the resolve that first learned the name's owner,
	// that some of its closest holders named another key: who held what.
	Disputed string `json:"disputed,omitempty"`
	// SignedZone and SignedClaim are the owner's records the resolution
	// rests on, as stored in the DHT: a mirror keeps them to put them
	// again while the owner is away.
	SignedZone  []byte `json:"-"`
	SignedClaim []byte `json:"-"`
}

// HostInfo is one machine hosting the name, with its current addresses.
type HostInfo struct {
	PeerID string   `json:"peer_id"`
	Addrs  []string `json:"addrs"`
}

type cachedZone struct {
	zone    *names.Zone
	fetched time.Time
}

func dhtQuorum(n int) routing.Option { return dht.Quorum(n) }

// Resolve walks the three layers: the zone (which carries the owner's
// claim), the records for the label (following CNAMEs), and each host's
// addresses, looked up in parallel.
func (s *Service) Resolve(ctx context.Context, nameText string) (*Resolution, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Names.ResolveTimeout.D())
	defer cancel()
	res, err := s.resolve(ctx, nameText, nil)
	s.metrics.observeResolve(time.Since(start), err)
	return res, err
}

func (s *Service) resolve(ctx context.Context, nameText string, via []string) (*Resolution, error) {
	n, err := names.Parse(nameText)
	if err != nil {
		return nil, err
	}
	z, found, err := s.fetchZone(ctx, n.Registered())
	if err != nil {
		if n.Sub() != "" {
			// The error names the registered name looked up; say which
			// name the user asked for.
			return nil, fmt.Errorf("%s is under %s: %w", n, n.Registered(), err)
		}
		return nil, err
	}
	label := n.Sub()
	if cname := z.RecordsFor(label); len(cname) > 0 && cname[0].Type == names.TypeCNAME && len(cname) == 1 {
		if len(via) >= maxCNAMEDepth {
			return nil, fmt.Errorf("resolve %s: more than %d CNAMEs in a row (%v); the chain loops or is too long", n, maxCNAMEDepth, via)
		}
		for _, seen := range via {
			if seen == n.String() {
				return nil, fmt.Errorf("resolve %s: CNAME loop through %v", n, via)
			}
		}
		return s.resolve(ctx, cname[0].Value, append(via, n.String()))
	}
	records := z.RecordsFor(label)
	if label != "" && len(records) == 0 {
		return nil, fmt.Errorf("resolve %s: zone %s (seq %d) has no records for label %q: %w", n, z.Name, z.Seq, label, ErrNotFound)
	}
	res := &Resolution{
		Name: n.String(), Key: names.KeyID(z.Owner), KeyType: names.KeyType(z.Owner), Rotations: len(z.Rotations),
		Seq: z.Seq, Expires: z.Expiry.UTC(), Records: []RecordInfo{}, Hosts: []HostInfo{}, Via: via,
		SignedZone: z.Signed(), SignedClaim: z.SignedClaim(), CopiesWanted: z.CopiesWanted(),
		Disputed: found.dispute,
	}
	for _, r := range records {
		res.Records = append(res.Records, RecordInfo{Type: r.Type.String(), Label: r.Label, Value: r.Value})
		if r.Type == names.TypeROOT {
			res.Root = r.Value
		}
	}
	hostRecords := records
	if label != "" && len(hostIDs(records))+len(estateIDs(records)) == 0 {
		hostRecords = z.RecordsFor("") // a sub-label is hosted where its parent is, unless it says otherwise
	}
	hosts := hostIDs(hostRecords)
	if estates := estateIDs(hostRecords); len(estates) > 0 {
		var more []peer.ID
		res.Estates, more = s.resolveEstates(ctx, estates)
		for _, id := range more {
			if !slices.Contains(hosts, id) {
				hosts = append(hosts, id)
			}
		}
	}
	res.Hosts = s.hostAddrs(ctx, hosts, checkGlue(found.glue, hosts[:min(len(hosts), MaxHostLookups)]))
	if s.policy != nil && len(res.Hosts) > 1 {
		res.Hosts = s.policy.OrderHosts(ctx, res.Name, res.Hosts)
	}
	return res, nil
}

// fetchZone returns the zone from the cache while its TTL lasts, else from
// the DHT, checked against the owner this node knows and the high-water mark.
// A name whose owner this node knows is a plain DHT lookup: the validators
// drop every value by another key. A name it never saw is decided by the
// agreement of its closest holders (zoneByAgreement), then bound.
//
// What the holders agreed on comes back too (its dispute and glue); it is
// empty when the zone came from the cache or a plain lookup.
func (s *Service) fetchZone(ctx context.Context, n names.Name) (*names.Zone, agreed, error) {
	if z := s.cachedZone(n); z != nil {
		s.metrics.cacheHits.Inc()
		return z, agreed{}, nil
	}
	held, err := s.owners.Known(ctx, n)
	if err != nil {
		return nil, agreed{}, fmt.Errorf("resolve %s: %w", n, err)
	}
	var found agreed
	if held != nil {
		found.zone, err = s.dht.GetValue(ctx, names.ZoneKey(n), dhtQuorum(s.cfg.Names.ResolveQuorum))
	} else {
		found, err = s.zoneByAgreement(ctx, n)
	}
	if err != nil {
		if errors.Is(err, routing.ErrNotFound) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrNotFound) {
			if s.dht.RoutingTable().Size() == 0 {
				// "Not found" would blame the name for this node's state.
				return nil, agreed{}, fmt.Errorf("resolve %s: %w", n, ErrNoPeers)
			}
			return nil, agreed{}, fmt.Errorf("resolve %s: %w", n, ErrNotFound)
		}
		return nil, agreed{}, fmt.Errorf("resolve %s: %w", n, err)
	}
	z, err := s.acceptZone(ctx, n, found.zone)
	if err != nil {
		return nil, agreed{}, fmt.Errorf("resolve %s: %w", n, err)
	}
	return z, found, nil
}

// acceptZone validates a zone found in the network, refuses one whose owner
// differs from the owner this node knows or whose sequence is below the
// high-water mark, then binds its owner if the name was new here, raises the
// mark and caches it.
func (s *Service) acceptZone(ctx context.Context, n names.Name, data []byte) (*names.Zone, error) {
	z, err := s.owners.zoneV.DecodeValid(names.ZoneKey(n), data)
	if err != nil {
		return nil, err
	}
	if s.policy != nil {
		if err := s.policy.AcceptZone(ctx, z, len(data)); err != nil {
			return nil, fmt.Errorf("zone refused by policy: %w", err)
		}
	}
	if _, err := s.owners.Bind(ctx, z.Claim); err != nil {
		s.owners.Refused(err, "name", n)
		return nil, err
	}
	if err := s.owners.CheckLineage(ctx, z.Lineage()); err != nil {
		s.owners.Refused(err, "name", n)
		return nil, err
	}
	seen, _ := s.highWater(ctx, z)
	if err := names.HighWater(z.Name, seen, z.Seq); err != nil {
		return nil, err
	}
	s.setHighWater(ctx, z)
	// Cache first: a watcher told of the new version resolves at once and
	// must not get the old one from the cache.
	s.cacheZone(z)
	if z.Seq > seen {
		s.notify(Update{Name: z.Name.String(), Key: names.KeyID(z.Owner), Seq: z.Seq})
	}
	return z, nil
}

// maxZoneCache caps how long a zone is served from the cache whatever TTL
// its signer chose, so a new version always reaches this node within it.
const maxZoneCache = 24 * time.Hour

func (s *Service) cachedZone(n names.Name) *names.Zone {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.zoneCache[n.String()]
	if !ok || time.Since(c.fetched) > min(c.zone.TTL, maxZoneCache) || time.Now().After(c.zone.Expiry) {
		return nil
	}
	return c.zone
}

// forgetZone drops a name's cached zone: its key chain changed, and the
// cached zone may be signed by a key it rotated away from.
func (s *Service) forgetZone(n names.Name) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.zoneCache, n.String())
}

func (s *Service) cacheZone(z *names.Zone) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.zoneCache[z.Name.String()] = cachedZone{zone: z, fetched: time.Now()}
}

// hostIDs are the distinct peers the HOST records among rs name, in order.
func hostIDs(rs []names.Record) []peer.ID {
	var ids []peer.ID
	for _, r := range rs {
		if r.Type != names.TypeHOST {
			continue
		}
		if id, err := peer.Decode(r.Value); err == nil && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// hostAddrs finds the first MaxHostLookups hosts' addresses in parallel
// (layer 3), from a short cache, the glue that came with the zone (checked:
// glued), or the DHT's peer routing; the rest are listed with no addresses.
// A host that cannot be found is listed with no addresses rather than
// failing the whole resolve.
func (s *Service) hostAddrs(ctx context.Context, hosts []peer.ID, glued map[peer.ID]hostRecord) []HostInfo {
	out := make([]HostInfo, len(hosts))
	var wg sync.WaitGroup
	for i, id := range hosts {
		out[i] = HostInfo{PeerID: id.String(), Addrs: []string{}}
		if i >= MaxHostLookups {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var g *hostRecord
			if h, ok := glued[id]; ok {
				g = &h
			}
			out[i].Addrs = s.peerAddrs(ctx, id, g)
		}()
	}
	wg.Wait()
	sort.SliceStable(out, func(i, j int) bool { return len(out[i].Addrs) > len(out[j].Addrs) })
	return out
}

// peerAddrs is id's addresses. A host this node is not connected to is
// dialed first at the addresses its glue signed (glued, or else the record
// of it this node kept: keptAddrs), if any; the
// lookup, a walk of the DHT, starts only when that dial failed or went
// glueHeadStart without an answer, and then the first of the two to find
// the host answers.
func (s *Service) peerAddrs(ctx context.Context, id peer.ID, glued *hostRecord) []string {
	if addrs, ok := s.addrCache.Get(id); ok {
		return addrs
	}
	if id == s.host.ID() {
		return addrStrings(s.host.Addrs())
	}
	if glued == nil {
		glued = s.keptRecord(id)
	}
	var dialed chan []string // nil: no dial going on
	if glued != nil && s.host.Network().Connectedness(id) != network.Connected {
		dialed = make(chan []string, 1)
		go func() {
			// Shared by the resolves of this host: on the service's
			// context, to glueDialWait, not the one that started it.
			r := <-s.lookups.DoChan("glue/"+string(id), func() (any, error) {
				addrs := s.dialGlued(s.life, id, glued.rec.Addrs)
				if glued.env != nil && reachedGlue(addrs, glued.rec.Addrs) {
					s.keepPeerRecord(id, glued.env)
				}
				return addrs, nil
			})
			dialed <- r.Val.([]string)
		}()
		headStart := time.NewTimer(glueHeadStart)
		select {
		case addrs := <-dialed:
			dialed = nil
			if addrs != nil {
				s.addrCache.Add(id, addrs)
				return addrs
			}
		case <-headStart.C:
		case <-ctx.Done():
		}
		headStart.Stop()
	}
	found := s.lookups.DoChan(string(id), func() (any, error) { return s.findPeer(id), nil })
	wait := time.NewTimer(hostWait)
	defer wait.Stop()
	for {
		select {
		case addrs := <-dialed:
			dialed = nil
			if addrs != nil {
				s.addrCache.Add(id, addrs)
				return addrs
			}
		case r := <-found:
			return r.Val.([]string)
		case <-wait.C:
			return s.provenAddrs(id, s.host.Peerstore().Addrs(id))
		case <-ctx.Done():
			return s.provenAddrs(id, s.host.Peerstore().Addrs(id))
		}
	}
}

// findPeer looks a host's addresses up in the DHT and caches them. It runs
// on the service's context, not the resolve's: a resolve that stops
// waiting leaves it to finish for the next one, and concurrent resolves
// share it (lookups).
func (s *Service) findPeer(id peer.ID) []string {
	ctx, cancel := context.WithTimeout(s.life, findPeerWait)
	defer cancel()
	info, err := s.findPeerDHT(ctx, id)
	if err != nil {
		return []string{}
	}
	addrs := s.provenAddrs(id, info.Addrs)
	s.addrCache.Add(id, addrs)
	return addrs
}

func addrStrings(addrs []ma.Multiaddr) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.String())
	}
	sort.Strings(out)
	return out
}

// highWater is the highest sequence seen for z's name under z's key chain
// head: sequences count within one head, so a rotation or recovery starts
// from whatever sequence its first zone carries, and a thief's huge sequence
// on a branch that lost does not block the owner's zones.
func (s *Service) highWater(ctx context.Context, z *names.Zone) (uint64, error) {
	b, ok, err := s.get(ctx, nameKey(seqPrefix, z.Name))
	if err != nil || !ok || len(b) < 8 {
		return 0, err
	}
	if len(b) > 8 && !bytes.Equal(b[8:], z.Lineage().HeadHash()) {
		return 0, nil // another head: its marks do not apply
	}
	return binary.BigEndian.Uint64(b), nil
}

func (s *Service) setHighWater(ctx context.Context, z *names.Zone) {
	if seen, _ := s.highWater(ctx, z); seen >= z.Seq {
		return
	}
	mark := append(binary.BigEndian.AppendUint64(nil, z.Seq), z.Lineage().HeadHash()...)
	if err := s.store.Put(ctx, nameKey(seqPrefix, z.Name), mark); err != nil {
		s.log.Warn("keep high-water mark", "name", z.Name, "err", err)
	}
}
