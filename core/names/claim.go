package names

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/avnode/avnode/core/names/pb"
)

// Claim binds a registered name to its owner's identity key (layer 1). The
// owner signs the name, key, creation time and proof of work, and the claim
// is nothing but that signed envelope: nothing a third party adds can change
// its bytes or its rank. Treat the fields as read-only: Marshal writes the
// signed bytes kept inside, not the fields.
type Claim struct {
	Name       Name // always a registered name, e.g. einstein.avtr
	Owner      crypto.PubKey
	Created    time.Time // informational; anyone can write any time
	Difficulty int
	Nonce      uint64
	// Recovery is the SHA-256 of the recovery key (RecoveryCommitment), or
	// nil: the key that can take the name back from a lost or stolen key.
	Recovery []byte

	envelope []byte   // the owner's signed envelope, as on the wire
	work     [32]byte // proof-of-work hash, also the claim's tie-break
}

// MintClaim solves the proof of work and signs a claim of name for ownerPriv's
// key. It uses every CPU and stops early when ctx ends. Only a registered name
// (label.topic) can be claimed; sub-labels live in its zone.
func MintClaim(ctx context.Context, name Name, ownerPriv crypto.PrivKey, difficulty int, now time.Time) (*Claim, error) {
	return MintClaimWithRecovery(ctx, name, ownerPriv, nil, difficulty, now)
}

// MintClaimWithRecovery is MintClaim with a recovery commitment (from
// RecoveryCommitment; nil for none).
func MintClaimWithRecovery(ctx context.Context, name Name, ownerPriv crypto.PrivKey, recovery []byte, difficulty int, now time.Time) (*Claim, error) {
	if recovery != nil && len(recovery) != sha256.Size {
		return nil, fmt.Errorf("claim %s: a recovery commitment is a SHA-256: %w", name, ErrMalformed)
	}
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
		Difficulty: uint32(difficulty), Nonce: nonce, Recovery: recovery,
	}}
	env, err := seal(rec, ownerPriv)
	if err != nil {
		return nil, fmt.Errorf("claim %s: %w", name, err)
	}
	return &Claim{
		Name: name, Owner: ownerPriv.GetPublic(), Created: time.Unix(created, 0).UTC(),
		Difficulty: difficulty, Nonce: nonce, Recovery: recovery, envelope: env, work: powHash(seed, nonce),
	}, nil
}

// Work is the claim's proof-of-work hash: the last tie-break between claims.
func (c *Claim) Work() [32]byte { return c.work }

// Key returns the DHT key of c, /avtr-claim/<name>.
func (c *Claim) Key() string { return ClaimKey(c.Name) }

// Marshal encodes c as stored in the DHT.
func (c *Claim) Marshal() ([]byte, error) {
	if len(c.envelope) == 0 {
		return nil, fmt.Errorf("claim %s: not signed; create claims with MintClaim or DecodeClaim: %w", c.Name, ErrMalformed)
	}
	b, err := marshalCanonical(&pb.SignedClaim{Envelope: c.envelope})
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
// difficulty or the clock; ClaimValidator does.
func DecodeClaim(b []byte) (*Claim, error) { return decodeClaim(b, nil) }

func decodeClaim(b []byte, memo *SignatureMemo) (*Claim, error) {
	if err := checkSize("claim", b); err != nil {
		return nil, err
	}
	var sc pb.SignedClaim
	if err := unmarshalStrict(b, &sc); err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	return decodeClaimEnvelope(sc.GetEnvelope(), memo)
}

// decodeClaimEnvelope verifies the owner's envelope and its proof of work.
func decodeClaimEnvelope(env []byte, memo *SignatureMemo) (*Claim, error) {
	var rec claimRecord
	signer, err := open(env, &rec, memo)
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
	if r := p.GetRecovery(); r != nil && len(r) != sha256.Size {
		return nil, fmt.Errorf("claim %s: recovery commitment is %d bytes, want a SHA-256: %w", name, len(r), ErrMalformed)
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
		Difficulty: int(d), Nonce: p.GetNonce(), Recovery: p.GetRecovery(), envelope: env, work: work,
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
