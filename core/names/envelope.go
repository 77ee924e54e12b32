package names

import (
	"encoding/binary"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/record"
	"google.golang.org/protobuf/encoding/protowire"
)

// Envelopes are libp2p's signed envelopes (core/record, RFC 0002), written
// and read here rather than by libp2p: libp2p's decoder refuses the hybrid
// key type (its key-type enum is closed), and a name's records must have one
// byte form, which libp2p does not check. For an Ed25519 key the bytes are
// exactly what record.Seal makes (tested).
//
// Envelope fields: 1 public_key (libp2p key framing), 2 payload_type,
// 3 payload, 5 signature. The signature covers uvarint(len) ‖ bytes of the
// domain, the payload type and the payload.

// seal signs rec with priv inside an envelope and returns its bytes.
func seal(rec record.Record, priv crypto.PrivKey) ([]byte, error) {
	key, err := marshalKey(priv.GetPublic())
	if err != nil {
		return nil, err
	}
	payload, err := rec.MarshalRecord()
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", rec.Domain(), err)
	}
	sig, err := priv.Sign(signedBytes(rec.Domain(), rec.Codec(), payload))
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", rec.Domain(), err)
	}
	return envelopeBytes(key, rec.Codec(), payload, sig), nil
}

func envelopeBytes(key, payloadType, payload, sig []byte) []byte {
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, key)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, payloadType)
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendBytes(b, payload)
	b = protowire.AppendTag(b, 5, protowire.BytesType)
	return protowire.AppendBytes(b, sig)
}

// signedBytes is what an envelope's signature covers, as libp2p defines it.
func signedBytes(domain string, payloadType, payload []byte) []byte {
	b := make([]byte, 0, len(domain)+len(payloadType)+len(payload)+12)
	for _, f := range [][]byte{[]byte(domain), payloadType, payload} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

// open verifies an envelope made by seal and decodes its payload into rec.
// The envelope must be in its one canonical form: its signature covers only
// the payload, so junk fields or a re-encoding around it would otherwise make
// a second valid copy of the owner's record. The key type and payload type
// are checked before the signature, so an unknown key type is reported as
// such rather than as a bad signature.
func open(b []byte, rec record.Record, memo *SignatureMemo) (crypto.PubKey, error) {
	f, ok := readEnvelope(b)
	if !ok {
		return nil, fmt.Errorf("envelope: not in canonical encoding: %w", ErrMalformed)
	}
	signer, err := decodeKey(f.key)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	if string(f.payloadType) != string(rec.Codec()) {
		return nil, fmt.Errorf("envelope holds payload type %x, want %s (%x): %w", f.payloadType, rec.Domain(), rec.Codec(), ErrMalformed)
	}
	if err := memo.verify(signer, signedBytes(rec.Domain(), f.payloadType, f.payload), f.sig, rec.Domain()); err != nil {
		return nil, err
	}
	if err := rec.UnmarshalRecord(f.payload); err != nil {
		return nil, fmt.Errorf("%s payload: %w", rec.Domain(), err)
	}
	return signer, nil
}

// verify checks sig by key over msg; what names the signed thing in errors.
func verify(key crypto.PubKey, msg, sig []byte, what string) error {
	if ok, err := key.Verify(msg, sig); err != nil || !ok {
		return fmt.Errorf("%s signature by %s does not verify; the record was altered or forged, fetch it from another peer: %w", what, KeyID(key), ErrBadSignature)
	}
	return nil
}

type envelopeFields struct{ key, payloadType, payload, sig []byte }

// readEnvelope reads the four fields in order, each once and non-empty, and
// nothing else.
func readEnvelope(b []byte) (envelopeFields, bool) {
	var f envelopeFields
	all := b
	for _, want := range []struct {
		num protowire.Number
		dst *[]byte
	}{{1, &f.key}, {2, &f.payloadType}, {3, &f.payload}, {5, &f.sig}} {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num != want.num || typ != protowire.BytesType {
			return f, false
		}
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 || len(v) == 0 {
			return f, false
		}
		*want.dst, b = v, b[n+m:]
	}
	if len(b) != 0 || string(envelopeBytes(f.key, f.payloadType, f.payload, f.sig)) != string(all) {
		return f, false
	}
	return f, true
}
