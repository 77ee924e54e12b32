package names

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	record "github.com/libp2p/go-libp2p-record"
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
// uses DefaultDifficulty, DefaultQuorum and time.Now.
type ClaimValidator struct {
	// MinDifficulty is the proof of work (leading zero bits) the network
	// requires; 0 or less means DefaultDifficulty.
	MinDifficulty int
	// Quorum is how many valid distinct witnesses certify a claim; 0 or
	// less means DefaultQuorum.
	Quorum int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

var _ record.Validator = ClaimValidator{}

func (v ClaimValidator) minDifficulty() int {
	if v.MinDifficulty <= 0 {
		return DefaultDifficulty
	}
	return v.MinDifficulty
}

func (v ClaimValidator) quorum() int {
	if v.Quorum <= 0 {
		return DefaultQuorum
	}
	return v.Quorum
}

func (v ClaimValidator) now() time.Time {
	if v.Now == nil {
		return time.Now()
	}
	return v.Now()
}

// Certified reports whether c has at least Quorum valid distinct witnesses.
// Resolvers pin the first certified claim they see for a name.
func (v ClaimValidator) Certified(c *Claim) bool { return CertifiedBy(c) >= v.quorum() }

// Validate implements record.Validator.
func (v ClaimValidator) Validate(key string, value []byte) error {
	_, err := v.decode(key, value)
	return err
}

// decode runs every check of Validate and returns the claim.
func (v ClaimValidator) decode(key string, value []byte) (*Claim, error) {
	if err := checkSize("key "+key, value); err != nil {
		return nil, err
	}
	name, err := nameFromKey(key, ClaimNamespace)
	if err != nil {
		return nil, err
	}
	c, err := DecodeClaim(value)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", key, err)
	}
	if err := v.checkClaim(name, c); err != nil {
		return nil, fmt.Errorf("key %s: %w", key, err)
	}
	return c, nil
}

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
// the best claim by CompareClaims; equal ranks go to the smaller bytes, so
// every node picks the same value from the same set in any order.
func (v ClaimValidator) Select(key string, values [][]byte) (int, error) {
	best, bestRank := -1, claimRank{}
	var firstErr error
	for i, val := range values {
		c, err := v.decode(key, val)
		if err != nil {
			firstErr = cmpErr(firstErr, err)
			continue
		}
		r := rankClaim(c, v.quorum(), val)
		if best < 0 || r.beats(bestRank) {
			best, bestRank = i, r
		}
	}
	if best < 0 {
		return 0, noneValid(key, len(values), firstErr)
	}
	return best, nil
}

// claimRank holds what CompareClaims looks at, computed once per value
// because counting witnesses verifies their signatures.
type claimRank struct {
	certified bool
	witnesses int
	work      [32]byte
	value     []byte // the encoded claim, for the last tie-break
}

func rankClaim(c *Claim, quorum int, value []byte) claimRank {
	if quorum <= 0 {
		quorum = DefaultQuorum
	}
	n := CertifiedBy(c)
	return claimRank{certified: n >= quorum, witnesses: n, work: c.work, value: value}
}

// compare is CompareClaims on ranks: +1 if a wins, -1 if b wins, 0 if equal.
func (a claimRank) compare(b claimRank) int {
	switch {
	case a.certified != b.certified:
		return boolCmp(a.certified)
	case a.witnesses != b.witnesses:
		return boolCmp(a.witnesses > b.witnesses)
	}
	return -bytes.Compare(a.work[:], b.work[:])
}

// beats adds the byte tie-break, so two different values never rank equal.
func (a claimRank) beats(b claimRank) bool {
	if c := a.compare(b); c != 0 {
		return c > 0
	}
	return bytes.Compare(a.value, b.value) < 0
}

// CompareClaims ranks two valid claims for the same name: +1 if a wins, -1
// if b wins, 0 if they rank equal. In order: a claim with at least quorum
// valid distinct witnesses beats one without; then more such witnesses win;
// then the lower proof-of-work hash wins. Keys, creation times and arrival
// order never decide, because anyone can choose them.
func CompareClaims(a, b *Claim, quorum int) int {
	return rankClaim(a, quorum, nil).compare(rankClaim(b, quorum, nil))
}

func boolCmp(aWins bool) int {
	if aWins {
		return 1
	}
	return -1
}

// HolderCheck is what a DHT holder applies before it replaces the claim it
// holds (existing, nil if none) with an incoming one, after Validate passed.
// Ownership is permanent: a claim by another key is always refused. A claim
// by the same key replaces the held one unless it ranks lower (fewer
// witnesses), so witnesses only accumulate. Resolvers use the same check
// against the claim they pinned.
func HolderCheck(existing, incoming []byte) error {
	in, err := DecodeClaim(incoming)
	if err != nil {
		return err
	}
	if len(existing) == 0 {
		return nil
	}
	held, err := DecodeClaim(existing)
	if err != nil {
		// What we hold no longer decodes (damaged store or older format);
		// a valid claim is better than nothing.
		return nil
	}
	switch {
	case held.Name != in.Name:
		return fmt.Errorf("claim %s: compared with a held claim for %s; this is a bug in the caller: %w", in.Name, held.Name, ErrNameMismatch)
	case !held.Owner.Equals(in.Owner):
		return fmt.Errorf("claim %s: name already held by key %s; choose another name: %w", in.Name, KeyID(held.Owner), ErrNameTaken)
	case CompareClaims(in, held, DefaultQuorum) < 0:
		return fmt.Errorf("claim %s: ranks below the held claim by the same key (%d valid witnesses against %d, or a higher work hash); keeping the held one: %w", in.Name, CertifiedBy(in), CertifiedBy(held), ErrWorseClaim)
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
	_, err := v.decode(key, value)
	return err
}

func (v ZoneValidator) decode(key string, value []byte) (*Zone, error) {
	if err := checkSize("key "+key, value); err != nil {
		return nil, err
	}
	name, err := nameFromKey(key, ZoneNamespace)
	if err != nil {
		return nil, err
	}
	z, err := DecodeZone(value)
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

// Select implements record.Validator. It ignores invalid values. The owner
// is the key of the best embedded claim (CompareClaims, then smaller claim
// bytes), so nobody can displace a zone by signing one with a higher seq
// under their own key. Among that owner's zones: highest seq, then later
// expiry, then larger bytes.
func (v ZoneValidator) Select(key string, values [][]byte) (int, error) {
	zones := make([]*Zone, len(values))
	owner, ownerRank := -1, claimRank{}
	var firstErr error
	for i, val := range values {
		z, err := v.decode(key, val)
		if err != nil {
			firstErr = cmpErr(firstErr, err)
			continue
		}
		zones[i] = z
		r := rankClaim(z.Claim, v.claims().quorum(), z.claimBytes)
		if owner < 0 || r.beats(ownerRank) {
			owner, ownerRank = i, r
		}
	}
	if owner < 0 {
		return 0, noneValid(key, len(values), firstErr)
	}
	best := owner
	for i, z := range zones {
		if z != nil && z.Owner.Equals(zones[owner].Owner) && zoneNewer(z, values[i], zones[best], values[best]) {
			best = i
		}
	}
	return best, nil
}

func zoneNewer(a *Zone, aBytes []byte, b *Zone, bBytes []byte) bool {
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
