package idkey

import (
	"bytes"
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestHybridSignsAndVerifiesOnlyWithBothHalves(t *testing.T) {
	priv, err := GenerateHybrid()
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("einstein.avtr")
	sig, err := priv.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	if len(sig) != HybridSigSize {
		t.Fatalf("signature is %d bytes, want %d", len(sig), HybridSigSize)
	}
	if ok, err := priv.GetPublic().Verify(msg, sig); !ok || err != nil {
		t.Fatalf("genuine signature refused: %v %v", ok, err)
	}
	for name, at := range map[string]int{"Ed25519 half": 10, "ML-DSA-65 half": 64 + 100} {
		bad := bytes.Clone(sig)
		bad[at] ^= 1
		if ok, _ := priv.GetPublic().Verify(msg, bad); ok {
			t.Errorf("a signature with a forged %s verified", name)
		}
	}
	// An Ed25519 signature alone, by the hybrid's own Ed25519 half, is not
	// a hybrid signature.
	edSig, _ := priv.ed.Sign(msg)
	if ok, _ := priv.GetPublic().Verify(msg, edSig); ok {
		t.Error("the Ed25519 half alone verified as the hybrid key")
	}
}

func TestKeysRoundTripInOneByteForm(t *testing.T) {
	for _, typ := range []string{TypeEd25519, TypeHybrid} {
		priv, err := Generate(typ)
		if err != nil {
			t.Fatal(err)
		}
		if got := TypeName(priv.GetPublic()); got != typ {
			t.Fatalf("TypeName = %q, want %q", got, typ)
		}
		pb, err := MarshalPublic(priv.GetPublic())
		if err != nil {
			t.Fatal(err)
		}
		pub, err := UnmarshalPublic(pb)
		if err != nil || !pub.Equals(priv.GetPublic()) {
			t.Fatalf("%s public key did not round-trip: %v", typ, err)
		}
		// libp2p's own framing gives the same bytes, so peer IDs and key
		// IDs derive the same way for both kinds.
		if lb, err := crypto.MarshalPublicKey(priv.GetPublic()); err != nil || !bytes.Equal(lb, pb) {
			t.Fatalf("%s: libp2p frames the key differently (%v)", typ, err)
		}
		if _, err := peer.IDFromPublicKey(pub); err != nil {
			t.Fatal(err)
		}
		sb, err := MarshalPrivate(priv)
		if err != nil {
			t.Fatal(err)
		}
		back, err := UnmarshalPrivate(sb)
		if err != nil || !back.Equals(priv) || !back.GetPublic().Equals(priv.GetPublic()) {
			t.Fatalf("%s private key did not round-trip: %v", typ, err)
		}
	}
}

func TestCraftedHybridKeysAreRefused(t *testing.T) {
	priv, _ := GenerateHybrid()
	good, _ := MarshalPublic(priv.GetPublic())
	cases := map[string][]byte{
		"short":       frame(KeyTypeHybrid, priv.pub.raw[:100]),
		"long":        frame(KeyTypeHybrid, append(bytes.Clone(priv.pub.raw), 0)),
		"trailing":    append(bytes.Clone(good), 0x18, 0x01),
		"long varint": append([]byte{0x08, 0xe4, 0x80, 0x00}, good[2:]...),
	}
	for name, b := range cases {
		if k, err := UnmarshalPublic(b); err == nil && k.Type() == KeyTypeHybrid {
			t.Errorf("%s: decoded a hybrid key", name)
		}
	}
	if _, err := UnmarshalPublic(frame(KeyTypeHybrid, nil)); !errors.Is(err, ErrBadKey) {
		t.Errorf("empty hybrid key: %v, want ErrBadKey", err)
	}
}

// FuzzPublicKey feeds key bytes: whatever decodes re-encodes to itself.
func FuzzPublicKey(f *testing.F) {
	for _, typ := range []string{TypeEd25519, TypeHybrid} {
		priv, err := Generate(typ)
		if err != nil {
			f.Fatal(err)
		}
		b, _ := MarshalPublic(priv.GetPublic())
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pub, err := UnmarshalPublic(b)
		if err != nil || pub.Type() != KeyTypeHybrid {
			return // libp2p's own types are libp2p's business
		}
		again, err := MarshalPublic(pub)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("a decoded hybrid key is not its input bytes")
		}
	})
}
