package names

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/avnode/avnode/core/names/pb"
)

// A name's key changes only by a chain of rotations hanging off its claim:
//
//	claim(K0, recovery R?) → step 1 (K0→K1) → step 2 (K1→K2) → …
//
// Each step is signed by its authority and by the new key (proof that the new
// owner holds it). The authority of a ROTATE step is the current key; of a
// RECOVER step, the recovery key the lineage commits to (by its hash, so the
// key stays unknown until used). The main key alone never changes or removes
// a recovery commitment; it may set one where none is set.
//
// Two chains of one claim are ordered (CompareLineages): where they first
// differ, a RECOVER step beats a ROTATE step, so the recovery key wins a race
// against a thief holding the main key however long the thief's chain; a
// chain that extends another beats it, so the old key's zones are refused
// once a rotation is known. Holders keep the best chain they saw
// (CheckSuccession).

// MaxRotations bounds a chain: each step travels inside every zone value.
// An Ed25519 step is 225 bytes; a step to a hybrid key 5.5 KB, between
// hybrid keys 8.8 KB (MaxRecordSize bounds a hybrid chain sooner).
const MaxRotations = 8

const (
	rotationDomain       = "avtr-rotation"
	rotationNewKeyDomain = "avtr-rotation/new-key"
)

// rotationCodec is the payload type both rotation signatures cover.
var rotationCodec = binary.AppendUvarint(nil, 0x300a05)

// RotationKind says who signed a step.
type RotationKind int32

const (
	KindRotate  = RotationKind(pb.RotationKind_ROTATION_KIND_ROTATE)
	KindRecover = RotationKind(pb.RotationKind_ROTATION_KIND_RECOVER)
)

func (k RotationKind) String() string {
	switch k {
	case KindRotate:
		return "rotate"
	case KindRecover:
		return "recover"
	}
	return fmt.Sprintf("kind%d", int32(k))
}

// Rotation is one step of a name's key chain. Treat it as read-only.
type Rotation struct {
	Name      Name
	Index     int
	Kind      RotationKind
	NewKey    crypto.PubKey
	Recovery  []byte        // commitment set by this step; nil keeps the one before
	Authority crypto.PubKey // the recovery key for RECOVER; nil for ROTATE

	prev    []byte
	payload []byte
	authSig []byte
	signed  []byte
}

// Signed is the step as carried in zones.
func (r *Rotation) Signed() []byte { return r.signed }

// Lineage is a claim and the rotations after it: who owns the name now.
// Steps nil means the chain is not known (a claim value alone, which says
// nothing of later rotations); empty means no rotation.
type Lineage struct {
	Claim *Claim
	Steps []*Rotation
}

// Head is the name's current key.
func (l *Lineage) Head() crypto.PubKey {
	if len(l.Steps) == 0 {
		return l.Claim.Owner
	}
	return l.Steps[len(l.Steps)-1].NewKey
}

// Recovery is the recovery commitment in force, or nil.
func (l *Lineage) Recovery() []byte {
	c := l.Claim.Recovery
	for _, s := range l.Steps {
		if s.Recovery != nil {
			c = s.Recovery
		}
	}
	return c
}

// HeadHash names the lineage's last link: the last step's hash, or the
// claim's when there is none. A zone's sequence counts within one head.
func (l *Lineage) HeadHash() []byte {
	if len(l.Steps) == 0 {
		b, _ := l.Claim.Marshal()
		return digest(b)
	}
	return digest(l.Steps[len(l.Steps)-1].signed)
}

// SignedSteps are the steps as carried in a zone.
func (l *Lineage) SignedSteps() [][]byte {
	out := make([][]byte, len(l.Steps))
	for i, s := range l.Steps {
		out[i] = s.signed
	}
	return out
}

// Prefix is the lineage up to and with step n (0: the claim alone).
func (l *Lineage) Prefix(n int) *Lineage {
	n = max(0, min(n, len(l.Steps)))
	return &Lineage{Claim: l.Claim, Steps: l.Steps[:n:n]}
}

// RecoveryCommitment is what a claim or rotation stores for a recovery key.
func RecoveryCommitment(pub crypto.PubKey) ([]byte, error) {
	b, err := marshalKey(pub)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(b)
	return h[:], nil
}

// Rotate signs the next step of l: from its head key (headPriv) to newPriv.
// recovery sets a recovery commitment; it is refused if one is set already,
// because only the recovery key may change it (Recover).
func Rotate(l *Lineage, headPriv, newPriv crypto.PrivKey, recovery []byte) (*Rotation, error) {
	if !headPriv.GetPublic().Equals(l.Head()) {
		return nil, fmt.Errorf("rotate %s: the name's key is %s, not %s: %w", l.Claim.Name, KeyID(l.Head()), KeyID(headPriv.GetPublic()), ErrWrongOwner)
	}
	if recovery != nil && l.Recovery() != nil {
		return nil, fmt.Errorf("rotate %s: a recovery key is set already; only it can change the commitment (`avnode key recovery set` with --recovery-key): %w", l.Claim.Name, ErrWrongOwner)
	}
	return mintStep(l, KindRotate, headPriv, newPriv, recovery)
}

// Recover signs the next step of l with the recovery key it commits to,
// handing the name to newPriv. recovery, if not nil, replaces the commitment.
func Recover(l *Lineage, recoveryPriv, newPriv crypto.PrivKey, recovery []byte) (*Rotation, error) {
	want := l.Recovery()
	if want == nil {
		return nil, fmt.Errorf("recover %s: the name commits to no recovery key; it cannot be recovered: %w", l.Claim.Name, ErrWrongOwner)
	}
	got, err := RecoveryCommitment(recoveryPriv.GetPublic())
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(got, want) {
		return nil, fmt.Errorf("recover %s: key %s is not the recovery key the name commits to: %w", l.Claim.Name, KeyID(recoveryPriv.GetPublic()), ErrWrongOwner)
	}
	return mintStep(l, KindRecover, recoveryPriv, newPriv, recovery)
}

func mintStep(l *Lineage, kind RotationKind, authPriv, newPriv crypto.PrivKey, recovery []byte) (*Rotation, error) {
	n := l.Claim.Name
	if len(l.Steps) >= MaxRotations {
		return nil, fmt.Errorf("rotate %s: the name has rotated %d times, the most a chain holds: %w", n, MaxRotations, ErrBadRotation)
	}
	if recovery != nil && len(recovery) != sha256.Size {
		return nil, fmt.Errorf("rotate %s: a recovery commitment is a SHA-256: %w", n, ErrBadRotation)
	}
	newKey, err := marshalKey(newPriv.GetPublic())
	if err != nil {
		return nil, fmt.Errorf("rotate %s: new key: %w", n, err)
	}
	if err := checkNewKey(l, newPriv.GetPublic(), recovery); err != nil {
		return nil, err
	}
	prev := l.HeadHash()
	payload, err := marshalCanonical(&pb.RotationPayload{
		Name: n.String(), Index: uint32(len(l.Steps) + 1), Prev: prev,
		Kind: pb.RotationKind(kind), NewKey: newKey, Recovery: recovery,
	})
	if err != nil {
		return nil, err
	}
	sr := &pb.SignedRotation{Payload: payload}
	if kind == KindRecover {
		if sr.AuthorityKey, err = marshalKey(authPriv.GetPublic()); err != nil {
			return nil, err
		}
	}
	if sr.AuthoritySignature, err = authPriv.Sign(signedBytes(rotationDomain, rotationCodec, payload)); err != nil {
		return nil, fmt.Errorf("rotate %s: sign: %w", n, err)
	}
	if sr.NewKeySignature, err = newPriv.Sign(signedBytes(rotationNewKeyDomain, rotationCodec, payload)); err != nil {
		return nil, fmt.Errorf("rotate %s: sign with the new key: %w", n, err)
	}
	signed, err := marshalCanonical(sr)
	if err != nil {
		return nil, err
	}
	return decodeStep(l, signed)
}

// checkNewKey refuses a step back to a key the lineage used before (a loop:
// a key rotated away may be the stolen one), and a step to the same key that
// does not change the recovery commitment (it would do nothing).
func checkNewKey(l *Lineage, next crypto.PubKey, recovery []byte) error {
	if next.Equals(l.Head()) {
		if recovery == nil {
			return fmt.Errorf("rotate %s: the new key is the current key and the step changes nothing: %w", l.Claim.Name, ErrBadRotation)
		}
		return nil
	}
	if l.Claim.Owner.Equals(next) {
		return fmt.Errorf("rotate %s: key %s owned the name before; a chain never returns to an old key: %w", l.Claim.Name, KeyID(next), ErrBadRotation)
	}
	for _, s := range l.Steps {
		if s.NewKey.Equals(next) {
			return fmt.Errorf("rotate %s: key %s owned the name before; a chain never returns to an old key: %w", l.Claim.Name, KeyID(next), ErrBadRotation)
		}
	}
	return nil
}

// NewLineage checks a chain of signed steps against the claim it hangs off
// and returns the lineage.
func NewLineage(c *Claim, steps [][]byte) (*Lineage, error) {
	if len(steps) > MaxRotations {
		return nil, fmt.Errorf("%s: %d rotations, at most %d: %w", c.Name, len(steps), MaxRotations, ErrBadRotation)
	}
	l := &Lineage{Claim: c, Steps: make([]*Rotation, 0, len(steps))}
	for _, b := range steps {
		s, err := decodeStep(l, b)
		if err != nil {
			return nil, err
		}
		l.Steps = append(l.Steps, s)
	}
	return l, nil
}

// decodeStep checks one signed step as the next step of l.
func decodeStep(l *Lineage, b []byte) (*Rotation, error) {
	n, index := l.Claim.Name, len(l.Steps)+1
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: rotation %d: %s: %w", n, index, fmt.Sprintf(format, args...), ErrBadRotation)
	}
	var sr pb.SignedRotation
	if err := unmarshalStrict(b, &sr); err != nil {
		return nil, fmt.Errorf("%s: rotation %d: %w", n, index, err)
	}
	var p pb.RotationPayload
	if err := unmarshalStrict(sr.GetPayload(), &p); err != nil {
		return nil, fmt.Errorf("%s: rotation %d payload: %w", n, index, err)
	}
	switch {
	case p.GetName() != n.String():
		return nil, fmt.Errorf("%s: rotation %d is for %q: %w", n, index, p.GetName(), ErrNameMismatch)
	case int(p.GetIndex()) != index:
		return nil, fail("says it is rotation %d", p.GetIndex())
	case !bytes.Equal(p.GetPrev(), l.HeadHash()):
		return nil, fail("does not follow this claim and chain (another lineage, or steps out of order)")
	case p.GetRecovery() != nil && len(p.GetRecovery()) != sha256.Size:
		return nil, fail("recovery commitment is not a SHA-256")
	}
	newKey, err := decodeKey(p.GetNewKey())
	if err != nil {
		return nil, fmt.Errorf("%s: rotation %d new key: %w", n, index, err)
	}
	s := &Rotation{Name: n, Index: index, Kind: RotationKind(p.GetKind()), NewKey: newKey, Recovery: p.GetRecovery(),
		prev: p.GetPrev(), payload: sr.GetPayload(), authSig: sr.GetAuthoritySignature(), signed: b}
	authority, err := stepAuthority(l, s, sr.GetAuthorityKey())
	if err != nil {
		return nil, err
	}
	if err := checkNewKey(l, newKey, s.Recovery); err != nil {
		return nil, fmt.Errorf("%s: rotation %d: %w", n, index, err)
	}
	if err := verify(authority, signedBytes(rotationDomain, rotationCodec, s.payload), s.authSig, fmt.Sprintf("rotation %d of %s", index, n)); err != nil {
		return nil, err
	}
	if err := verify(newKey, signedBytes(rotationNewKeyDomain, rotationCodec, s.payload), sr.GetNewKeySignature(), fmt.Sprintf("new key of rotation %d of %s", index, n)); err != nil {
		return nil, err
	}
	return s, nil
}

// stepAuthority is the key that must have signed s: the current key for
// ROTATE, the committed recovery key for RECOVER.
func stepAuthority(l *Lineage, s *Rotation, authorityKey []byte) (crypto.PubKey, error) {
	n, index := l.Claim.Name, s.Index
	switch s.Kind {
	case KindRotate:
		if len(authorityKey) != 0 {
			return nil, fmt.Errorf("%s: rotation %d carries an authority key; a rotation is signed by the current key: %w", n, index, ErrMalformed)
		}
		if s.Recovery != nil && l.Recovery() != nil {
			return nil, fmt.Errorf("%s: rotation %d changes the recovery commitment without the recovery key: %w", n, index, ErrWrongOwner)
		}
		return l.Head(), nil
	case KindRecover:
		commitment := l.Recovery()
		if commitment == nil {
			return nil, fmt.Errorf("%s: rotation %d is a recovery, but the name commits to no recovery key: %w", n, index, ErrWrongOwner)
		}
		key, err := decodeKey(authorityKey)
		if err != nil {
			return nil, fmt.Errorf("%s: rotation %d recovery key: %w", n, index, err)
		}
		if h := sha256.Sum256(authorityKey); !bytes.Equal(h[:], commitment) {
			return nil, fmt.Errorf("%s: rotation %d is signed by key %s, not the recovery key the name commits to: %w", n, index, KeyID(key), ErrWrongOwner)
		}
		s.Authority = key
		return key, nil
	}
	return nil, fmt.Errorf("%s: rotation %d has unknown kind %d: %w", n, index, s.Kind, ErrMalformed)
}

// CompareLineages orders two lineages of one claim: +1 if a is ahead, -1 if
// b is, 0 if they are the same. Where they first differ, RECOVER beats
// ROTATE; a chain that extends the other is ahead; between two steps of the
// same kind (a key that signed two different successors) the lower step
// hash is ahead, a tie-break only: holders keep the one they saw first.
func CompareLineages(a, b *Lineage) int {
	i := divergence(a, b)
	switch {
	case i == len(a.Steps) && i == len(b.Steps):
		return 0
	case i == len(a.Steps):
		return -1
	case i == len(b.Steps):
		return 1
	case a.Steps[i].Kind != b.Steps[i].Kind:
		if a.Steps[i].Kind == KindRecover {
			return 1
		}
		return -1
	}
	return -bytes.Compare(digest(a.Steps[i].signed), digest(b.Steps[i].signed))
}

// divergence is the index of the first step where a and b differ.
func divergence(a, b *Lineage) int {
	i := 0
	for i < len(a.Steps) && i < len(b.Steps) && bytes.Equal(a.Steps[i].signed, b.Steps[i].signed) {
		i++
	}
	return i
}

// CheckSuccession is the holder's rule for a name's key: having known
// lineage known (nil if none), it accepts incoming if it is the same, extends
// it, or replaces it by a recovery where they first differ. It refuses the
// chain a rotation left behind (ErrRotated: the old key's zones) and a
// rival branch signed by the same authority (first seen stands). Once a
// name has rotated or commits to a recovery key, every record must hang off
// the one claim known: a stolen first key must not start over on a fresh
// claim. An incoming lineage with Steps nil is a claim value alone: only its
// owner and claim are checked.
func CheckSuccession(known, incoming *Lineage) error {
	if known == nil {
		return nil
	}
	n := incoming.Claim.Name
	if !known.Claim.Owner.Equals(incoming.Claim.Owner) {
		return HolderCheck(known.Claim, n, incoming.Claim.Owner)
	}
	if len(known.Steps)+len(incoming.Steps) > 0 || known.Claim.Recovery != nil || incoming.Claim.Recovery != nil {
		kb, _ := known.Claim.Marshal()
		ib, _ := incoming.Claim.Marshal()
		if !bytes.Equal(kb, ib) {
			return fmt.Errorf("%s: the record carries another claim than the one its key chain or recovery key hangs off: %w", n, ErrWrongOwner)
		}
	}
	if incoming.Steps == nil {
		return nil
	}
	i := divergence(known, incoming)
	switch {
	case i == len(known.Steps):
		return nil
	case i == len(incoming.Steps):
		return fmt.Errorf("%s: signed by key %s, which rotated away to %s at step %d; ignore it: %w",
			n, KeyID(incoming.Head()), KeyID(known.Steps[i].NewKey), i+1, ErrRotated)
	case incoming.Steps[i].Kind == KindRecover && known.Steps[i].Kind == KindRotate:
		return nil
	}
	return fmt.Errorf("%s: step %d hands the name to key %s, but this node holds a %s to %s there first: %w",
		n, i+1, KeyID(incoming.Steps[i].NewKey), known.Steps[i].Kind, KeyID(known.Steps[i].NewKey), ErrRotated)
}
