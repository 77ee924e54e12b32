// Package idkey is the identity keys avnode signs names with: libp2p's
// Ed25519 keys, and a post-quantum hybrid of Ed25519 and ML-DSA-65 (FIPS 204)
// that implements libp2p's crypto.PubKey and crypto.PrivKey, so every signed
// format of the name system carries either kind the same way.
//
// A hybrid signature is the Ed25519 signature followed by the ML-DSA-65
// signature of the same message; it verifies only if both halves do, so a
// forger must break both schemes. The hybrid key is written in libp2p's key
// framing (a crypto.pb.PublicKey with key type KeyTypeHybrid), which
// libp2p's own decoder refuses (its key-type enum is closed), so names and
// the keystore decode keys through this package.
//
// The package holds no key material of its own and does no I/O.
package idkey

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/libp2p/go-libp2p/core/crypto"
	cryptopb "github.com/libp2p/go-libp2p/core/crypto/pb"
	"google.golang.org/protobuf/encoding/protowire"
)

// KeyTypeHybrid is the key type number of a hybrid key, outside libp2p's
// enum (0-3) so it can never be read as one of libp2p's types.
const KeyTypeHybrid cryptopb.KeyType = 100

// Type names as users see them (key ls, resolve --json, the SDK).
const (
	TypeEd25519 = "Ed25519"
	TypeHybrid  = "Ed25519+ML-DSA-65"
)

// Sizes of a hybrid key's parts.
const (
	edPublicSize      = 32
	edPrivateSize     = 64
	HybridPublicSize  = edPublicSize + mldsa65.PublicKeySize
	HybridSigSize     = 64 + mldsa65.SignatureSize
	hybridPrivateSize = edPrivateSize + mldsa65.SeedSize
)

// mldsaContext separates avnode's ML-DSA signatures from any other use of
// the same key (FIPS 204's context string).
var mldsaContext = []byte("avnode-hybrid/v1")

// ErrBadKey means key bytes are not a key this package reads.
var ErrBadKey = errors.New("bad identity key")

// HybridPubKey is the public half of an Ed25519 + ML-DSA-65 key.
type HybridPubKey struct {
	ed crypto.PubKey
	pq *mldsa65.PublicKey
	// raw is ed ‖ pq as on the wire.
	raw []byte
}

// HybridPrivKey is the private half: the Ed25519 key and the ML-DSA-65 seed.
type HybridPrivKey struct {
	ed   crypto.PrivKey
	seed [mldsa65.SeedSize]byte
	pq   *mldsa65.PrivateKey
	pub  *HybridPubKey
}

var (
	_ crypto.PubKey  = (*HybridPubKey)(nil)
	_ crypto.PrivKey = (*HybridPrivKey)(nil)
)

// GenerateHybrid makes a new hybrid key from the system's randomness.
func GenerateHybrid() (*HybridPrivKey, error) {
	ed, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate hybrid key: %w", err)
	}
	var seed [mldsa65.SeedSize]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("generate hybrid key: %w", err)
	}
	return newHybridPriv(ed, seed)
}

func newHybridPriv(ed crypto.PrivKey, seed [mldsa65.SeedSize]byte) (*HybridPrivKey, error) {
	pqPub, pqPriv := mldsa65.NewKeyFromSeed(&seed)
	edRaw, err := ed.GetPublic().Raw()
	if err != nil {
		return nil, err
	}
	raw := append(edRaw, pqPub.Bytes()...)
	return &HybridPrivKey{ed: ed, seed: seed, pq: pqPriv, pub: &HybridPubKey{ed: ed.GetPublic(), pq: pqPub, raw: raw}}, nil
}

// Type implements crypto.Key.
func (k *HybridPubKey) Type() cryptopb.KeyType { return KeyTypeHybrid }

// Raw implements crypto.Key: the Ed25519 public key then the ML-DSA-65 one.
func (k *HybridPubKey) Raw() ([]byte, error) { return bytes.Clone(k.raw), nil }

// Equals implements crypto.Key.
func (k *HybridPubKey) Equals(o crypto.Key) bool {
	other, ok := o.(*HybridPubKey)
	return ok && bytes.Equal(k.raw, other.raw)
}

// Verify implements crypto.PubKey: both halves must verify.
func (k *HybridPubKey) Verify(data, sig []byte) (bool, error) {
	if len(sig) != HybridSigSize {
		return false, fmt.Errorf("hybrid signature is %d bytes, want %d", len(sig), HybridSigSize)
	}
	edOK, err := k.ed.Verify(data, sig[:64])
	if err != nil || !edOK {
		return false, err
	}
	return mldsa65.Verify(k.pq, data, mldsaContext, sig[64:]), nil
}

// Type implements crypto.Key.
func (k *HybridPrivKey) Type() cryptopb.KeyType { return KeyTypeHybrid }

// Raw implements crypto.Key: the Ed25519 private key then the ML-DSA-65 seed.
func (k *HybridPrivKey) Raw() ([]byte, error) {
	edRaw, err := k.ed.Raw()
	if err != nil {
		return nil, err
	}
	return append(edRaw, k.seed[:]...), nil
}

// Equals implements crypto.Key.
func (k *HybridPrivKey) Equals(o crypto.Key) bool {
	other, ok := o.(*HybridPrivKey)
	if !ok {
		return false
	}
	a, _ := k.Raw()
	b, _ := other.Raw()
	return subtle.ConstantTimeCompare(a, b) == 1
}

// Sign implements crypto.PrivKey: Ed25519 then ML-DSA-65 (hedged) over data.
func (k *HybridPrivKey) Sign(data []byte) ([]byte, error) {
	edSig, err := k.ed.Sign(data)
	if err != nil {
		return nil, err
	}
	sig := make([]byte, HybridSigSize)
	copy(sig, edSig)
	if err := mldsa65.SignTo(k.pq, data, mldsaContext, true, sig[64:]); err != nil {
		return nil, fmt.Errorf("ML-DSA-65 sign: %w", err)
	}
	return sig, nil
}

// GetPublic implements crypto.PrivKey.
func (k *HybridPrivKey) GetPublic() crypto.PubKey { return k.pub }

// TypeName is a key's type as users see it.
func TypeName(k crypto.Key) string {
	switch {
	case k == nil:
		return "none"
	case k.Type() == KeyTypeHybrid:
		return TypeHybrid
	case k.Type() == cryptopb.KeyType_Ed25519:
		return TypeEd25519
	}
	return k.Type().String()
}

// ParseType reads a --type value: ed25519 or hybrid.
func ParseType(s string) (string, error) {
	switch s {
	case "", "ed25519", "Ed25519":
		return TypeEd25519, nil
	case "hybrid", TypeHybrid:
		return TypeHybrid, nil
	}
	return "", fmt.Errorf("key type %q: use ed25519 or hybrid (Ed25519 + ML-DSA-65, post-quantum)", s)
}

// Generate makes a new key of a type ParseType returned.
func Generate(typeName string) (crypto.PrivKey, error) {
	if typeName == TypeHybrid {
		return GenerateHybrid()
	}
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	return priv, err
}

// MarshalPublic encodes a public key in libp2p's framing, hybrids included.
func MarshalPublic(pub crypto.PubKey) ([]byte, error) {
	if h, ok := pub.(*HybridPubKey); ok {
		return frame(KeyTypeHybrid, h.raw), nil
	}
	return crypto.MarshalPublicKey(pub)
}

// UnmarshalPublic decodes MarshalPublic's bytes. A hybrid must be in its one
// canonical form; other types are left to libp2p (callers check the type).
func UnmarshalPublic(b []byte) (crypto.PubKey, error) {
	t, data, ok := unframe(b)
	if !ok || t != KeyTypeHybrid {
		return crypto.UnmarshalPublicKey(b)
	}
	if len(data) != HybridPublicSize {
		return nil, fmt.Errorf("hybrid public key is %d bytes, want %d: %w", len(data), HybridPublicSize, ErrBadKey)
	}
	ed, err := crypto.UnmarshalEd25519PublicKey(data[:edPublicSize])
	if err != nil {
		return nil, fmt.Errorf("hybrid public key: %v: %w", err, ErrBadKey)
	}
	var pq mldsa65.PublicKey
	if err := pq.UnmarshalBinary(data[edPublicSize:]); err != nil {
		return nil, fmt.Errorf("hybrid public key: %v: %w", err, ErrBadKey)
	}
	return &HybridPubKey{ed: ed, pq: &pq, raw: bytes.Clone(data)}, nil
}

// IsHybridFrame reports whether b is framed as a hybrid key, whatever its
// contents, so decoders can route it here before libp2p refuses the type.
func IsHybridFrame(b []byte) bool {
	t, _, ok := unframe(b)
	return ok && t == KeyTypeHybrid
}

// MarshalPrivate encodes a private key for the keystore, hybrids included.
func MarshalPrivate(priv crypto.PrivKey) ([]byte, error) {
	if h, ok := priv.(*HybridPrivKey); ok {
		raw, err := h.Raw()
		if err != nil {
			return nil, err
		}
		return frame(KeyTypeHybrid, raw), nil
	}
	return crypto.MarshalPrivateKey(priv)
}

// UnmarshalPrivate decodes MarshalPrivate's bytes.
func UnmarshalPrivate(b []byte) (crypto.PrivKey, error) {
	t, data, ok := unframe(b)
	if !ok || t != KeyTypeHybrid {
		return crypto.UnmarshalPrivateKey(b)
	}
	if len(data) != hybridPrivateSize {
		return nil, fmt.Errorf("hybrid private key is %d bytes, want %d: %w", len(data), hybridPrivateSize, ErrBadKey)
	}
	ed, err := crypto.UnmarshalEd25519PrivateKey(data[:edPrivateSize])
	if err != nil {
		return nil, fmt.Errorf("hybrid private key: %v: %w", err, ErrBadKey)
	}
	var seed [mldsa65.SeedSize]byte
	copy(seed[:], data[edPrivateSize:])
	return newHybridPriv(ed, seed)
}

// frame writes libp2p's key message {1: type, 2: data} by hand: protobuf's
// closed enum would not carry a type libp2p does not list.
func frame(t cryptopb.KeyType, data []byte) []byte {
	b := protowire.AppendTag(nil, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(t))
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	return protowire.AppendBytes(b, data)
}

// unframe reads exactly what frame writes and nothing else: a long varint,
// a repeated or extra field is not a frame.
func unframe(b []byte) (cryptopb.KeyType, []byte, bool) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || num != 1 || typ != protowire.VarintType {
		return 0, nil, false
	}
	rest := b[n:]
	t, n := protowire.ConsumeVarint(rest)
	if n < 0 || t > 1<<31 {
		return 0, nil, false
	}
	rest = rest[n:]
	num, typ, n = protowire.ConsumeTag(rest)
	if n < 0 || num != 2 || typ != protowire.BytesType {
		return 0, nil, false
	}
	data, n := protowire.ConsumeBytes(rest[n:])
	if n < 0 {
		return 0, nil, false
	}
	kt := cryptopb.KeyType(t)
	return kt, data, bytes.Equal(frame(kt, data), b)
}
