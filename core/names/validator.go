package names

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
)

const (
	// ClaimNamespace and ZoneNamespace are the DHT key namespaces, for
	// registering the validators in a record.NamespacedValidator.
	ClaimNamespace = "avtr-claim"
	ZoneNamespace  = "avtr-zone"

	// MaxClockSkew is how far in the future a claim's creation time may be
	// before validators refuse it.
	MaxClockSkew = 10 * time.Minute
)

// ClaimKey is the DHT key of the claim of n's registered name:
// /avtr-claim/<registered name>.
func ClaimKey(n Name) string { return "/" + ClaimNamespace + "/" + n.Registered().String() }

// ZoneKey is the DHT key of the zone of n's registered name:
// /avtr-zone/<registered name>. It shares nothing with ClaimKey but the name,
// so a resolver can fetch both at once.
func ZoneKey(n Name) string { return "/" + ZoneNamespace + "/" + n.Registered().String() }

// nameFromKey reads /<ns>/<name> and insists on the canonical key, so one
// name has exactly one DHT key.
func nameFromKey(key, ns string) (Name, error) {
	rest, ok := strings.CutPrefix(key, "/"+ns+"/")
	if !ok {
		return Name{}, fmt.Errorf("key %q: want /%s/<name>: %w", key, ns, ErrMalformed)
	}
	n, err := Parse(rest)
	if err != nil {
		return Name{}, fmt.Errorf("key %q: %v: %w", key, err, ErrMalformed)
	}
	if "/"+ns+"/"+n.String() != key || !n.IsRegistered() {
		return Name{}, fmt.Errorf("key %q: use the canonical key /%s/%s: %w", key, ns, n.Registered(), ErrMalformed)
	}
	return n, nil
}

// ClaimValidator is the DHT validator for /avtr-claim/ keys. Its zero value
// uses DefaultDifficulty and time.Now.
//
// It knows nothing of who holds a name: a claim is valid on its own, and
// Select between claims of different keys falls back to the proof-of-work
// hash only because it must return something. The node wraps it with its
// memory of owners (core/naming), which is what refuses another key.
type ClaimValidator struct {
	// MinDifficulty is the proof of work (leading zero bits) the network
	// requires; 0 or less means DefaultDifficulty.
	MinDifficulty int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Memo, if set, remembers good signatures, for claims and for the
	// zones of a ZoneValidator with these Claims.
	Memo *SignatureMemo
}

var _ record.Validator = ClaimValidator{}

func (v ClaimValidator) minDifficulty() int {
	if v.MinDifficulty <= 0 {
		return DefaultDifficulty
	}
	return v.MinDifficulty
}

func (v ClaimValidator) now() time.Time {
	if v.Now == nil {
		return time.Now()
	}
	return v.Now()
}

// Validate implements record.Validator.
func (v ClaimValidator) Validate(key string, value []byte) error {
	_, err := v.DecodeValid(key, value)
	return err
}

// DecodeValid runs every check of Validate and returns the claim.
func (v ClaimValidator) DecodeValid(key string, value []byte) (*Claim, error) {
	if err := checkSize("key "+key, value); err != nil {
		return nil, err
	}
	name, err := nameFromKey(key, ClaimNamespace)
	if err != nil {
		return nil, err
	}
	c, err := decodeClaim(value, v.Memo)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", key, err)
	}
	if err := v.checkClaim(name, c); err != nil {
		return nil, fmt.Errorf("key %s: %w", key, err)
	}
	return c, nil
}

// Decode is DecodeClaim, through the memo: no network rule is applied.
func (v ClaimValidator) Decode(b []byte) (*Claim, error) { return decodeClaim(b, v.Memo) }

// checkClaim applies the network's rules, which DecodeClaim cannot know.
func (v ClaimValidator) checkClaim(name Name, c *Claim) error {
	if c.Name != name {
		return fmt.Errorf("record claims %s: %w", c.Name, ErrNameMismatch)
	}
	if min := v.minDifficulty(); c.Difficulty < min {
		return fmt.Errorf("claim %s has difficulty %d, this network needs %d; mint it again: %w", c.Name, c.Difficulty, min, ErrInsufficientWork)
	}
	if limit := v.now().Add(MaxClockSkew); c.Created.After(limit) {
		return fmt.Errorf("claim %s is dated %s, after %s; check the minting clock: %w", c.Name, c.Created, limit.UTC(), ErrFromFuture)
	}
	return nil
}

// Select implements record.Validator. It ignores invalid values and picks
// the claim with the lower proof-of-work hash, then the smaller bytes, so
// every node picks the same value from the same set in any order.
func (v ClaimValidator) Select(key string, values [][]byte) (int, error) {
	best := -1
	var bestClaim *Claim
	var firstErr error
	for i, val := range values {
		c, err := v.DecodeValid(key, val)
		if err != nil {
			firstErr = cmpErr(firstErr, err)
			continue
		}
		if best < 0 || claimBeats(c, val, bestClaim, values[best]) {
			best, bestClaim = i, c
		}
	}
	if best < 0 {
		return 0, noneValid(key, len(values), firstErr)
	}
	return best, nil
}

func claimBeats(a *Claim, aBytes []byte, b *Claim, bBytes []byte) bool {
	if c := CompareClaims(a, b); c != 0 {
		return c > 0
	}
	return bytes.Compare(aBytes, bBytes) < 0
}

// CompareClaims ranks two valid claims for the same name by their proof of
// work alone: +1 if a has the lower hash, -1 if b has, 0 if equal. It is a
// deterministic tie-break, never an ownership rule: a rival beats any given
// hash with an even chance per proof of work, so holders decide ownership by
// what they already hold (HolderCheck), not by this.
func CompareClaims(a, b *Claim) int {
	return -bytes.Compare(a.work[:], b.work[:])
}

// HolderCheck is the ownership rule: a node that knows held (nil if none) as
// the claim of a name refuses an incoming claim or zone by any other key for
// it. Holders apply it to every record that enters (DHT put, claim protocol,
// pub/sub, mirrors), resolvers to everything they fetch after they trusted
// an owner.
func HolderCheck(held *Claim, name Name, incoming crypto.PubKey) error {
	switch {
	case held == nil:
		return nil
	case incoming == nil:
		return fmt.Errorf("%s: a record with no key: %w", name, ErrMalformed)
	case held.Name != name.Registered():
		return fmt.Errorf("%s: compared with a held claim for %s; this is a bug in the caller: %w", name, held.Name, ErrNameMismatch)
	case !held.Owner.Equals(incoming):
		return fmt.Errorf("%s is held by key %s; refused a record by key %s: %w", held.Name, KeyID(held.Owner), KeyID(incoming), ErrNameTaken)
	}
	return nil
}

// ZoneValidator is the DHT validator for /avtr-zone/ keys. Its zero value
// uses time.Now and ClaimValidator's defaults for the embedded claim.
type ZoneValidator struct {
	// Now is the clock; nil means time.Now. It overrides Claims.Now.
	Now func() time.Time
	// Claims checks each zone's embedded claim and ranks the owners.
	Claims ClaimValidator
}

var _ record.Validator = ZoneValidator{}

func (v ZoneValidator) claims() ClaimValidator {
	c := v.Claims
	if v.Now != nil {
		c.Now = v.Now
	}
	return c
}

// Validate implements record.Validator.
func (v ZoneValidator) Validate(key string, value []byte) error {
	_, err := v.DecodeValid(key, value)
	return err
}

// DecodeValid runs every check of Validate and returns the zone, so a
// resolver checks and decodes in one pass.
func (v ZoneValidator) DecodeValid(key string, value []byte) (*Zone, error) {
	if err := checkSize("key "+key, value); err != nil {
		return nil, err
	}
	name, err := nameFromKey(key, ZoneNamespace)
	if err != nil {
		return nil, err
	}
	z, err := decodeZone(value, v.Claims.Memo)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", key, err)
	}
	if z.Name != name {
		return nil, fmt.Errorf("key %s: record is the zone of %s: %w", key, z.Name, ErrNameMismatch)
	}
	claims := v.claims()
	if err := claims.checkClaim(name, z.Claim); err != nil {
		return nil, fmt.Errorf("key %s: embedded %w", key, err)
	}
	if now := claims.now(); !now.Before(z.Expiry) {
		return nil, fmt.Errorf("key %s: zone expired at %s (seq %d); the owner must republish: %w", key, z.Expiry, z.Seq, ErrExpired)
	}
	return z, nil
}

// Decode is DecodeZone, through the claims' memo: no network rule is applied.
func (v ZoneValidator) Decode(b []byte) (*Zone, error) { return decodeZone(b, v.Claims.Memo) }

// Select implements record.Validator. It ignores invalid values and ranks
// the rest by BestZone.
func (v ZoneValidator) Select(key string, values [][]byte) (int, error) {
	return SelectZone(key, values, func(key string, value []byte) (*ZoneRank, error) {
		z, err := v.DecodeValid(key, value)
		if err != nil {
			return nil, err
		}
		return z.Rank(), nil
	})
}

// SelectZone is Select with the values checked by rank, which returns the
// rank of a valid zone value (a caller that keeps the ranks of values it
// checked before need not decode them again).
func SelectZone(key string, values [][]byte, rank func(key string, value []byte) (*ZoneRank, error)) (int, error) {
	ranks := make([]*ZoneRank, len(values))
	var firstErr error
	for i, val := range values {
		r, err := rank(key, val)
		if err != nil {
			firstErr = cmpErr(firstErr, err)
			continue
		}
		ranks[i] = r
	}
	best := BestZone(ranks, values)
	if best < 0 {
		return 0, noneValid(key, len(values), firstErr)
	}
	return best, nil
}

// ZoneRank is what zones are ranked by: a checked zone without its records
// or bytes, small enough to keep for a value seen again.
type ZoneRank struct {
	Claim      *Claim
	Lineage    *Lineage
	Seq        uint64
	Expiry     time.Time
	claimBytes []byte
}

// Rank is what z is ranked by.
func (z *Zone) Rank() *ZoneRank {
	return &ZoneRank{Claim: z.Claim, Lineage: z.Lineage(), Seq: z.Seq, Expiry: z.Expiry, claimBytes: z.claimBytes}
}

// BestZone ranks checked zones: ranks[i] is the rank of the zone stored as
// values[i], nil for one that is not valid (skipped). It returns the index
// of the best, -1 when all are nil. The owner is the best embedded claim by
// CompareClaims, a deterministic fallback for a node that knows no owner
// (core/naming filters the values to the owner and key chain it knows
// first). Among the zones on that exact claim: the lineage ahead
// (CompareLineages: a rotation's zones beat the old key's), then highest
// seq, then later expiry, then larger bytes.
func BestZone(ranks []*ZoneRank, values [][]byte) int {
	owner := -1
	for i, r := range ranks {
		if r != nil && (owner < 0 || claimBeats(r.Claim, r.claimBytes, ranks[owner].Claim, ranks[owner].claimBytes)) {
			owner = i
		}
	}
	if owner < 0 {
		return -1
	}
	// Only zones on the winning claim itself compete: a second claim of
	// the same key (a thief's, without the owner's recovery key) is a
	// rival, not the same owner.
	best := owner
	for i, r := range ranks {
		if r != nil && bytes.Equal(r.claimBytes, ranks[owner].claimBytes) && r.ahead(values[i], ranks[best], values[best]) {
			best = i
		}
	}
	return best
}

// ZoneAhead reports whether zone a is ahead of zone b of the same owner:
// the lineage ahead first, then the higher seq, the later expiry, the
// larger bytes.
func ZoneAhead(a, b *Zone) bool { return a.Rank().ahead(a.signed, b.Rank(), b.signed) }

// ahead is ZoneAhead on ranks, with each zone's bytes as stored.
func (a *ZoneRank) ahead(aBytes []byte, b *ZoneRank, bBytes []byte) bool {
	if c := CompareLineages(a.Lineage, b.Lineage); c != 0 {
		return c > 0
	}
	switch {
	case a.Seq != b.Seq:
		return a.Seq > b.Seq
	case !a.Expiry.Equal(b.Expiry):
		return a.Expiry.After(b.Expiry)
	}
	return bytes.Compare(aBytes, bBytes) > 0
}

// HighWater is the resolver's rollback check: having seen seq highestSeen for
// name's zone before, a fetched zone with a lower seq is refused. Equal is
// accepted (the same zone again, or a re-signed copy).
func HighWater(name Name, highestSeen, fetched uint64) error {
	if fetched < highestSeen {
		return fmt.Errorf("zone %s: seq %d is lower than seq %d seen before; a peer served an old copy, ask another: %w", name.Registered(), fetched, highestSeen, ErrRolledBack)
	}
	return nil
}

// cmpErr keeps the first error, for the message when nothing is valid.
func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

func noneValid(key string, n int, first error) error {
	if first == nil {
		first = errors.New("no values")
	}
	return fmt.Errorf("key %s: none of %d values is valid; first reason: %w", key, n, first)
}
