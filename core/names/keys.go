package names

import (
	"bytes"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	cryptopb "github.com/libp2p/go-libp2p/core/crypto/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multibase"

	"github.com/avnode/avnode/core/idkey"
)

// acceptedKeyTypes lists the key types this version verifies for identity
// keys. Every signed format carries the key's type (crypto.MarshalPublicKey),
// so a post-quantum type is added here, not by a new wire format. RSA and the
// others libp2p knows are refused on purpose: large keys and slow checks for
// no benefit.
var acceptedKeyTypes = map[cryptopb.KeyType]bool{
	cryptopb.KeyType_Ed25519: true,
	idkey.KeyTypeHybrid:      true, // Ed25519 + ML-DSA-65: both halves must verify
}

// KeyID is the printable form of a public key, the same string IPNS uses for a
// key: the libp2p-key CIDv1 of the key's peer ID in base36, e.g.
// k51qzi5uqu5d…. It differs on purpose from the 12D3KooW… form used for node
// peer IDs, so users can tell an identity key from a machine at a glance.
func KeyID(pub crypto.PubKey) string {
	if pub == nil {
		return "<no key>"
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		return "<invalid key>"
	}
	s, err := peer.ToCid(id).StringOfBase(multibase.Base36)
	if err != nil {
		return id.String()
	}
	return s
}

// marshalKey encodes pub with its key type, refusing types we do not verify.
func marshalKey(pub crypto.PubKey) ([]byte, error) {
	if pub == nil || !acceptedKeyTypes[pub.Type()] {
		return nil, fmt.Errorf("key type %v is not accepted; use Ed25519 or a hybrid (Ed25519 + ML-DSA-65): %w", KeyType(pub), ErrUnknownKeyType)
	}
	b, err := idkey.MarshalPublic(pub)
	if err != nil {
		return nil, fmt.Errorf("encode key %s: %v: %w", KeyID(pub), err, ErrMalformed)
	}
	return b, nil
}

// decodeKey reads crypto.MarshalPublicKey bytes. It refuses key types we do
// not verify and any encoding other than the canonical one, so one key has
// exactly one byte form (the proof of work depends on it).
func decodeKey(b []byte) (crypto.PubKey, error) {
	if idkey.IsHybridFrame(b) {
		pub, err := idkey.UnmarshalPublic(b) // the frame is canonical already
		if err != nil {
			return nil, fmt.Errorf("public key: %v: %w", err, ErrMalformed)
		}
		return pub, nil
	}
	var kp cryptopb.PublicKey
	if err := unmarshalStrict(b, &kp); err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	if !acceptedKeyTypes[kp.GetType()] {
		return nil, fmt.Errorf("key type %v is not accepted; upgrade avnode if it is newer: %w", kp.GetType(), ErrUnknownKeyType)
	}
	pub, err := crypto.PublicKeyFromProto(&kp)
	if err != nil {
		return nil, fmt.Errorf("public key: %v: %w", err, ErrMalformed)
	}
	canon, err := crypto.MarshalPublicKey(pub)
	if err != nil || !bytes.Equal(canon, b) {
		return nil, fmt.Errorf("public key is not in canonical encoding: %w", ErrMalformed)
	}
	return pub, nil
}

// KeyType is a key's type as users see it: Ed25519 or Ed25519+ML-DSA-65.
func KeyType(pub crypto.PubKey) string { return idkey.TypeName(pub) }
