package names

import (
	"crypto/sha256"
	"encoding/binary"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// SignatureMemo remembers the signatures one node has found good, by the
// SHA-256 of key, message and signature. A record reaching a holder is
// checked several times on its way (validated, ranked against the one held,
// admitted, learned); with the memo only the first check verifies, the
// others cost a hash. Only good signatures are remembered: a forgery is
// verified, and refused, each time. Each node has its own memo, so that
// nodes sharing a process (the bench) do not share work a real network
// could not.
type SignatureMemo struct {
	good *lru.Cache[[sha256.Size]byte, struct{}]
}

// NewSignatureMemo remembers up to size signatures (about 100 bytes each).
func NewSignatureMemo(size int) *SignatureMemo {
	c, _ := lru.New[[sha256.Size]byte, struct{}](max(size, 1))
	return &SignatureMemo{good: c}
}

// verify is the package's verify, through the memo; a nil memo verifies.
func (m *SignatureMemo) verify(key crypto.PubKey, msg, sig []byte, what string) error {
	if m == nil {
		return verify(key, msg, sig, what)
	}
	raw, err := key.Raw()
	if err != nil {
		return verify(key, msg, sig, what)
	}
	h := sha256.New()
	for _, part := range [][]byte{{byte(key.Type())}, raw, msg, sig} {
		h.Write(binary.AppendUvarint(nil, uint64(len(part))))
		h.Write(part)
	}
	var id [sha256.Size]byte
	h.Sum(id[:0])
	if m.good.Contains(id) {
		return nil
	}
	if err := verify(key, msg, sig, what); err != nil {
		return err
	}
	m.good.Add(id, struct{}{})
	return nil
}
