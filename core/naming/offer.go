package naming

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/avnode/avnode/core/names"
)

// ErrRefused wraps every reason OfferZone refuses a zone.
var ErrRefused = errors.New("zone refused")

// OfferZone takes a signed zone from outside the DHT (a mirror got it over
// pub/sub): it is checked like a resolved zone (signature, owner against the
// pinned claim, no rollback below the highest seq seen, the accept policy),
// then cached, spread to the DHT's holders in the background (not by a DHT
// client: a satellite keeps what its beacon hands it), and resolved.
func (s *Service) OfferZone(ctx context.Context, key string, data []byte) (*Resolution, error) {
	nameText, ok := strings.CutPrefix(key, "/"+names.ZoneNamespace+"/")
	if !ok {
		return nil, fmt.Errorf("offer %q: not a zone key /%s/NAME: %w", key, names.ZoneNamespace, names.ErrMalformed)
	}
	n, err := names.Parse(nameText)
	if err != nil {
		return nil, err
	}
	if err := s.checkOffered(ctx, n.Registered(), data); err != nil {
		return nil, fmt.Errorf("offer %s: %w: %w", n, ErrRefused, err)
	}
	z, err := s.acceptZone(ctx, n.Registered(), data)
	if err != nil {
		return nil, fmt.Errorf("offer %s: %w: %w", n, ErrRefused, err)
	}
	if s.cfg.DHT.Mode == "client" {
		return s.resolve(ctx, n.String(), nil) // a light node keeps it, spreads nothing
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.dht.PutValue(ctx, z.Key(), data); err != nil {
			s.log.Debug("spread offered zone", "name", z.Name, "err", err)
		}
	}()
	return s.resolve(ctx, n.String(), nil)
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
	agreed, _, err := s.zoneByAgreement(ctx, n)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil // nobody holds it: the offer is the first copy
	case err != nil:
		return err
	}
	claim, err := s.owners.zoneOwner(names.ZoneKey(n), agreed)
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

// CopyCID is the DHT key under which nodes attest that they hold version seq
// of a name: they provide it as content, so finding copies is finding
// providers, each of them a peer that announced itself over an
// authenticated connection.
func CopyCID(name string, seq uint64) cid.Cid {
	mh, _ := multihash.Sum([]byte(fmt.Sprintf("avtr-copy/%s/%d", name, seq)), multihash.SHA2_256, -1)
	return cid.NewCidV1(cid.Raw, mh)
}
