package names

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/record"
	recordpb "github.com/libp2p/go-libp2p/core/record/pb"
)

// seal signs rec with priv inside a libp2p envelope and returns its bytes.
func seal(rec record.Record, priv crypto.PrivKey) ([]byte, error) {
	if _, err := marshalKey(priv.GetPublic()); err != nil {
		return nil, err
	}
	env, err := record.Seal(rec, priv)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", rec.Domain(), err)
	}
	return env.Marshal()
}

// open verifies a libp2p envelope made by seal and decodes its payload into
// rec. The envelope itself must be canonical: its signature covers only the
// payload, so junk fields or a re-encoding around it would otherwise make a
// second valid copy of the owner's record. It looks at the key type and
// payload type before the signature, so an unknown key type is reported as
// such rather than as a bad signature.
func open(b []byte, rec record.Record) (crypto.PubKey, error) {
	var env recordpb.Envelope
	if err := unmarshalStrict(b, &env); err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}

	if t := env.GetPublicKey().GetType(); !acceptedKeyTypes[t] {
		return nil, fmt.Errorf("envelope signed with key type %v, which this avnode does not accept: %w", t, ErrUnknownKeyType)
	}
	if !bytes.Equal(env.GetPayloadType(), rec.Codec()) {
		return nil, fmt.Errorf("envelope holds payload type %x, want %s (%x): %w", env.GetPayloadType(), rec.Domain(), rec.Codec(), ErrMalformed)
	}
	e, err := record.ConsumeTypedEnvelope(b, rec)
	switch {
	case errors.Is(err, record.ErrInvalidSignature):
		return nil, fmt.Errorf("%s signature does not verify; the record was altered or forged, fetch it from another peer: %w", rec.Domain(), ErrBadSignature)
	case errors.Is(err, ErrMalformed):
		return nil, fmt.Errorf("%s payload: %w", rec.Domain(), err)
	case err != nil:
		return nil, fmt.Errorf("%s envelope: %v: %w", rec.Domain(), err, ErrMalformed)
	}
	return e.PublicKey, nil
}
