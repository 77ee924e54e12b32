package names

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/avnode/avnode/core/names/pb"
)

const (
	// MaxWitnesses caps the countersignatures a claim carries. It is the DHT's
	// replication factor: only the 20 closest holders witness a claim at one
	// time, and more would add size and checks, not safety.
	MaxWitnesses = 20
	// DefaultQuorum is how many valid distinct witnesses make a claim
	// certified when a validator does not set its own.
	DefaultQuorum = 3

	witnessDomain = "avtr-claim-witness/v1"
)

// Claim binds a registered name to its owner's identity key (layer 1). The
// owner signs the name, key, creation time and proof of work; DHT holders
// add witness countersignatures afterwards. Treat the fields as read-only:
// Marshal writes the signed bytes kept inside, not the fields.
type Claim struct {
	Name       Name // always a registered name, e.g. einstein.avtr
	Owner      crypto.PubKey
	Created    time.Time // informational; anyone can write any time
	Difficulty int
	Nonce      uint64
	Witnesses  []Witness

	envelope []byte   // the owner's signed envelope, as on the wire
	work     [32]byte // proof-of-work hash, also the claim's tie-break
}

// Witness is a DHT holder's countersignature: "I held no other claim for
// NAME when I stored this claim by KEY at TIME".
type Witness struct {
	Key       crypto.PubKey // the holder's node key
	Time      time.Time
	Signature []byte
}

// MintClaim solves the proof of work and signs a claim of name for ownerPriv's
// key. It uses every CPU and stops early when ctx ends. Only a registered name
// (label.topic) can be claimed; sub-labels live in its zone.
func MintClaim(ctx context.Context, name Name, ownerPriv crypto.PrivKey, difficulty int, now time.Time) (*Claim, error) {
	if name.IsZero() || !name.IsRegistered() {
		return nil, fmt.Errorf("claim %q: only a registered name (label.topic, here %q) can be claimed; sub-labels go in its zone: %w", name, name.Registered(), ErrBadName)
	}
	if difficulty < 0 || difficulty > MaxDifficulty {
		return nil, fmt.Errorf("claim %s: difficulty %d is outside 0..%d: %w", name, difficulty, MaxDifficulty, ErrInsufficientWork)
	}
	ownerKey, err := marshalKey(ownerPriv.GetPublic())
	if err != nil {
		return nil, fmt.Errorf("claim %s: %w", name, err)
	}
	created := now.Unix()
	seed := powSeed(name.String(), ownerKey, created, uint32(difficulty))
	nonce, err := solve(ctx, seed, difficulty)
	if err != nil {
		return nil, fmt.Errorf("claim %s: %w", name, err)
	}
	rec := &claimRecord{p: &pb.ClaimPayload{
		Name: name.String(), OwnerKey: ownerKey, CreatedUnix: created,
		Difficulty: uint32(difficulty), Nonce: nonce,
	}}
	env, err := seal(rec, ownerPriv)
	if err != nil {
		return nil, fmt.Errorf("claim %s: %w", name, err)
	}
	return &Claim{
		Name: name, Owner: ownerPriv.GetPublic(), Created: time.Unix(created, 0).UTC(),
		Difficulty: difficulty, Nonce: nonce, envelope: env, work: powHash(seed, nonce),
	}, nil
}

// AddWitness countersigns c with a holder's node key. Call it only after the
// holder stored c with no other claim for the name (see HolderCheck). Adding
// the same key twice is a no-op.
func (c *Claim) AddWitness(nodePriv crypto.PrivKey, now time.Time) error {
	pub := nodePriv.GetPublic()
	if _, err := marshalKey(pub); err != nil {
		return fmt.Errorf("witness claim %s: %w", c.Name, err)
	}
	if pub.Equals(c.Owner) {
		return fmt.Errorf("witness claim %s: the owner's key cannot witness its own claim; use a node key: %w", c.Name, ErrBadWitness)
	}
	for _, w := range c.Witnesses {
		if pub.Equals(w.Key) {
			return nil
		}
	}
	if len(c.Witnesses) >= MaxWitnesses {
		return fmt.Errorf("witness claim %s: already has %d witnesses, the most a claim carries: %w", c.Name, MaxWitnesses, ErrBadWitness)
	}
	at := now.Unix()
	if at < c.Created.Unix() {
		return fmt.Errorf("witness claim %s: time %s is before the claim was created (%s); check the clock: %w", c.Name, now.UTC(), c.Created, ErrBadWitness)
	}
	sig, err := nodePriv.Sign(c.witnessStatement(at))
	if err != nil {
		return fmt.Errorf("witness claim %s: sign: %w", c.Name, err)
	}
	c.Witnesses = append(c.Witnesses, Witness{Key: pub, Time: time.Unix(at, 0).UTC(), Signature: sig})
	return nil
}

// witnessStatement is the text a witness signs. It names the claim by its
// work hash, so a countersignature cannot be moved to another claim, and
// starts with its own domain so it is no valid signature of anything else.
func (c *Claim) witnessStatement(at int64) []byte {
	return fmt.Appendf(nil, "%s\nI held no other claim for %s when I stored this claim by %s at %d\nclaim work %x\n",
		witnessDomain, c.Name, KeyID(c.Owner), at, c.work)
}

// validWitness reports whether w is a genuine countersignature of c by a key
// other than the owner's, made no earlier than the claim.
func (c *Claim) validWitness(w Witness) bool {
	if w.Key == nil || !acceptedKeyTypes[w.Key.Type()] || w.Key.Equals(c.Owner) {
		return false
	}
	at := w.Time.Unix()
	if at < c.Created.Unix() {
		return false
	}
	ok, err := w.Key.Verify(c.witnessStatement(at), w.Signature)
	return ok && err == nil
}

// CertifiedBy counts c's valid witnesses, each key once. Forged, duplicate and
// self-made witnesses do not count.
func CertifiedBy(c *Claim) int {
	seen := make(map[string]bool, len(c.Witnesses))
	for _, w := range c.Witnesses {
		if w.Key == nil {
			continue
		}
		id := KeyID(w.Key)
		if !seen[id] && c.validWitness(w) {
			seen[id] = true
		}
	}
	return len(seen)
}

// Key returns the DHT key of c, /avtr-claim/<name>.
func (c *Claim) Key() string { return ClaimKey(c.Name) }

// Marshal encodes c with its witnesses as stored in the DHT.
func (c *Claim) Marshal() ([]byte, error) {
	if len(c.envelope) == 0 {
		return nil, fmt.Errorf("claim %s: not signed; create claims with MintClaim or DecodeClaim: %w", c.Name, ErrMalformed)
	}
	sc := &pb.SignedClaim{Envelope: c.envelope}
	for _, w := range c.Witnesses {
		k, err := marshalKey(w.Key)
		if err != nil {
			return nil, fmt.Errorf("claim %s: witness: %w", c.Name, err)
		}
		sc.Witnesses = append(sc.Witnesses, &pb.Witness{Key: k, TimeUnix: w.Time.Unix(), Signature: w.Signature})
	}
	b, err := marshalCanonical(sc)
	if err != nil {
		return nil, fmt.Errorf("claim %s: encode: %w", c.Name, err)
	}
	if err := checkSize("claim "+c.Name.String(), b); err != nil {
		return nil, err
	}
	return b, nil
}

// DecodeClaim checks and decodes a claim as stored in the DHT: size, encoding,
// key type, the owner's signature, the name and that the proof of work meets
// the difficulty the claim declares. It does not check the network's minimum
// difficulty, the clock or the witnesses; ClaimValidator and CertifiedBy do.
func DecodeClaim(b []byte) (*Claim, error) {
	if err := checkSize("claim", b); err != nil {
		return nil, err
	}
	var sc pb.SignedClaim
	if err := unmarshalStrict(b, &sc); err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	if n := len(sc.GetWitnesses()); n > MaxWitnesses {
		return nil, fmt.Errorf("claim: %d witnesses, at most %d allowed: %w", n, MaxWitnesses, ErrTooLarge)
	}
	c, err := decodeClaimEnvelope(sc.GetEnvelope())
	if err != nil {
		return nil, err
	}
	for _, w := range sc.GetWitnesses() {
		k, err := decodeKey(w.GetKey())
		if err != nil {
			return nil, fmt.Errorf("claim %s: witness: %w", c.Name, err)
		}
		c.Witnesses = append(c.Witnesses, Witness{Key: k, Time: time.Unix(w.GetTimeUnix(), 0).UTC(), Signature: w.GetSignature()})
	}
	return c, nil
}

// decodeClaimEnvelope verifies the owner's envelope and its proof of work.
func decodeClaimEnvelope(env []byte) (*Claim, error) {
	var rec claimRecord
	signer, err := open(env, &rec)
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	p := rec.p
	name, err := parseRegistered(p.GetName())
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	owner, err := decodeKey(p.GetOwnerKey())
	if err != nil {
		return nil, fmt.Errorf("claim %s: owner: %w", name, err)
	}
	if !owner.Equals(signer) {
		return nil, fmt.Errorf("claim %s: names owner %s but is signed by %s: %w", name, KeyID(owner), KeyID(signer), ErrWrongOwner)
	}
	d := p.GetDifficulty()
	if d > MaxDifficulty {
		return nil, fmt.Errorf("claim %s: difficulty %d is above %d: %w", name, d, MaxDifficulty, ErrMalformed)
	}
	work := powHash(powSeed(p.GetName(), p.GetOwnerKey(), p.GetCreatedUnix(), d), p.GetNonce())
	if got := leadingZeros(work); got < int(d) {
		return nil, fmt.Errorf("claim %s: proof of work has %d leading zero bits, claim says %d; mint it again: %w", name, got, d, ErrInsufficientWork)
	}
	return &Claim{
		Name: name, Owner: owner, Created: time.Unix(p.GetCreatedUnix(), 0).UTC(),
		Difficulty: int(d), Nonce: p.GetNonce(), envelope: env, work: work,
	}, nil
}

// parseRegistered accepts only a registered name already in canonical form,
// as records must carry it.
func parseRegistered(s string) (Name, error) {
	n, err := Parse(s)
	if err != nil {
		return Name{}, fmt.Errorf("%v: %w", err, ErrMalformed)
	}
	if n.String() != s || !n.IsRegistered() {
		return Name{}, fmt.Errorf("name %q is not a registered name in canonical form (%q): %w", s, n.Registered(), ErrMalformed)
	}
	return n, nil
}
