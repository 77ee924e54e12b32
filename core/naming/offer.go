package naming

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/avnode/avnode/core/fault"
	"github.com/avnode/avnode/core/names"
)

// ErrRefused wraps every reason OfferZone refuses a zone.
var ErrRefused error = fault.New(fault.Refused, "zone refused")

// offerPuts bounds the offered zones being spread to the DHT at once: a
// put is a lookup plus a store at 20 peers, and peers choose how often
// they offer. Past it an offer is taken but not spread (the owner's node
// and mirrors republish on their own).
const offerPuts = 16

// OfferZone takes a signed zone from outside the DHT (a mirror got it over
// pub/sub): it is checked like a resolved zone (signature, owner against the
// pinned claim, no rollback below the highest seq seen, the accept policy),
// then cached, spread to the DHT's holders in the background if it is newer
// than any version this node had (not by a DHT client: a satellite keeps
// what its beacon hands it), and resolved.
func (s *Service) OfferZone(ctx context.Context, key string, data []byte) (*Resolution, error) {
	n, err := zoneKeyName(key)
	if err != nil {
		return nil, fmt.Errorf("offer %q: %w", key, err)
	}
	if err := s.checkOffered(ctx, n.Registered(), data); err != nil {
		return nil, fmt.Errorf("offer %s: %w: %w", n, ErrRefused, err)
	}
	had, _ := s.owners.zoneV.DecodeValid(names.ZoneKey(n.Registered()), data)
	var before uint64
	if had != nil {
		before, _ = s.highWater(ctx, had)
	}
	z, err := s.acceptZone(ctx, n.Registered(), data)
	if err != nil {
		return nil, fmt.Errorf("offer %s: %w: %w", n, ErrRefused, err)
	}
	if s.cfg.DHT.Mode != "client" && z.Seq > before {
		s.spread(z)
	}
	return s.resolve(ctx, n.String(), nil)
}

// zoneKeyName is the name of a zone key /avtr-zone/NAME.
func zoneKeyName(key string) (names.Name, error) {
	nameText, ok := strings.CutPrefix(key, "/"+names.ZoneNamespace+"/")
	if !ok {
		return names.Name{}, fmt.Errorf("not a zone key /%s/NAME: %w", names.ZoneNamespace, names.ErrMalformed)
	}
	return names.Parse(nameText)
}

// spread puts an offered zone to its holders in the background, unless
// offerPuts are in flight already.
func (s *Service) spread(z *names.Zone) {
	select {
	case s.putSlots <- struct{}{}:
		s.metrics.offerPuts.WithLabelValues("started").Inc()
	default:
		s.metrics.offerPuts.WithLabelValues("skipped").Inc()
		s.log.Debug("offered zone not spread: puts in flight at their limit", "name", z.Name, "seq", z.Seq, "limit", offerPuts)
		return
	}
	go func() {
		defer func() { <-s.putSlots }()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.put(ctx, z.Key(), z.Signed(), putHow{waitAll: true}); err != nil {
			s.log.Debug("spread offered zone", "name", z.Name, "err", err)
		}
	}()
}

// ErrAnnouncedBefore: an announced zone is older than a version this node
// holds; the announcement is stale, not forged.
var ErrAnnouncedBefore = errors.New("older than a version held")

// CheckAnnounced is the cheap check of a zone announced on a name's pub/sub
// topic, made before any role sees it and without asking the network: the
// zone must be validly signed, for name, by the owner this node binds to
// the name if it knows one (known reports whether it did), and not older
// than the highest version seen (ErrAnnouncedBefore). It returns the zone's seq.
func (s *Service) CheckAnnounced(ctx context.Context, nameText string, data []byte) (seq uint64, known bool, err error) {
	n, err := names.Parse(nameText)
	if err != nil {
		return 0, false, err
	}
	n = n.Registered()
	z, err := s.owners.zoneV.DecodeValid(names.ZoneKey(n), data)
	if err != nil {
		return 0, false, err
	}
	lineage, err := s.owners.KnownLineage(ctx, n)
	if err != nil {
		return 0, false, err
	}
	if err := names.CheckSuccession(lineage, z.Lineage()); err != nil {
		return 0, false, err
	}
	known = lineage != nil
	if seen, _ := s.highWater(ctx, z); z.Seq < seen {
		return 0, false, fmt.Errorf("zone %s: seq %d, seq %d held: %w", n, z.Seq, seen, ErrAnnouncedBefore)
	}
	return z.Seq, known, nil
}

// checkOffered asks the name's closest holders about a name this node never
// saw before it takes an offered zone: whoever hands a node its first copy
// (a pub/sub peer, a satellite's beacon) must not decide the owner alone.
func (s *Service) checkOffered(ctx context.Context, n names.Name, data []byte) error {
	held, err := s.owners.Known(ctx, n)
	if err != nil || held != nil {
		return err // a known owner is checked by acceptZone
	}
	offered, err := s.owners.zoneOwner(names.ZoneKey(n), data)
	if err != nil {
		return err
	}
	agreed, err := s.zoneByAgreement(ctx, n)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil // nobody holds it: the offer is the first copy
	case err != nil:
		return err
	}
	claim, err := s.owners.zoneOwner(names.ZoneKey(n), agreed.zone)
	if err != nil {
		return err
	}
	if _, err := s.owners.Bind(ctx, claim); err != nil {
		return err
	}
	if err := names.HolderCheck(claim, n, offered.Owner); err != nil {
		s.owners.Refused(err, "name", n)
		return err
	}
	return nil
}

// Owns reports whether this node holds the key of a name it claimed.
func (s *Service) Owns(ctx context.Context, nameText string) bool {
	n, err := names.Parse(nameText)
	if err != nil {
		return false
	}
	_, ok, err := s.get(ctx, nameKey(ownedPrefix, n.Registered()))
	return err == nil && ok
}

// copiesWait bounds the lookup of attested copies; copiesFresh is how long
// its answer is reused, so a page of `resolve --copies` calls walks the DHT
// once per name and version.
const (
	copiesWait  = 2 * time.Second
	copiesFresh = 10 * time.Second
	copiesKept  = 4096 // names and versions whose copies are remembered
)

// Copies lists the peers that attested to holding version seq of a name (or
// of the registered name above a label), within copiesWait; none is an
// empty list. It is a DHT search of its own, so resolve asks for it only
// when the user does.
func (s *Service) Copies(ctx context.Context, name string, seq uint64) []string {
	if n, err := names.Parse(name); err == nil {
		name = n.Registered().String()
	}
	key := fmt.Sprintf("%s/%d", name, seq)
	if out, ok := s.copies.Get(key); ok {
		return out
	}
	search, cancel := context.WithTimeout(ctx, copiesWait)
	defer cancel()
	out := []string{}
	for info := range s.dht.FindProvidersAsync(search, CopyCID(name, seq), 0) {
		out = append(out, info.ID.String())
	}
	if ctx.Err() == nil { // a caller that gave up early got a cut-off list: not kept
		s.copies.Add(key, out)
	}
	return out
}

// AttestCopy provides the name's copy key: this node holds that version.
func (s *Service) AttestCopy(ctx context.Context, name string, seq uint64) error {
	return s.dht.Provide(ctx, CopyCID(name, seq), true)
}

// CopyCID is the DHT key under which nodes attest that they hold version seq
// of a name: they provide it as content, so finding copies is finding
// providers, each of them a peer that announced itself over an
// authenticated connection.
func CopyCID(name string, seq uint64) cid.Cid {
	mh, _ := multihash.Sum([]byte(fmt.Sprintf("avtr-copy/%s/%d", name, seq)), multihash.SHA2_256, -1)
	return cid.NewCidV1(cid.Raw, mh)
}
