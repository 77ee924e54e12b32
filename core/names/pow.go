package names

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
)

const (
	// DefaultDifficulty is the proof-of-work (leading zero bits) a claim
	// needs unless the network's config says otherwise. Measured in
	// README.md: 1.4 s on average to mint on a 2-core machine.
	DefaultDifficulty = 25
	// MaxDifficulty bounds the difficulty a claim may declare; 256 bits is
	// the whole hash, and more than 64 is beyond anyone's reach anyway.
	MaxDifficulty = 64

	powDomain = "avtr-claim-pow/v1"
	// checkEvery is how many nonces a miner tries between looks at ctx.
	checkEvery = 1 << 14
)

// powSeed is the hash of everything a claim's proof of work binds: name,
// owner key, creation time and declared difficulty. Hashing it once keeps the
// per-nonce input to one SHA-256 block (seed || nonce).
func powSeed(name string, ownerKey []byte, createdUnix int64, difficulty uint32) [32]byte {
	b := []byte(powDomain)
	b = append(b, 0)
	b = binary.AppendUvarint(b, uint64(len(name)))
	b = append(b, name...)
	b = binary.AppendUvarint(b, uint64(len(ownerKey)))
	b = append(b, ownerKey...)
	b = binary.BigEndian.AppendUint64(b, uint64(createdUnix))
	b = binary.BigEndian.AppendUint32(b, difficulty)
	return sha256.Sum256(b)
}

// powHash is the work hash of one nonce: sha256(seed || nonce big-endian).
func powHash(seed [32]byte, nonce uint64) [32]byte {
	var buf [40]byte
	copy(buf[:], seed[:])
	binary.BigEndian.PutUint64(buf[32:], nonce)
	return sha256.Sum256(buf[:])
}

// leadingZeros counts the leading zero bits of h.
func leadingZeros(h [32]byte) int {
	n := 0
	for i := 0; i < len(h); i += 8 {
		w := binary.BigEndian.Uint64(h[i:])
		n += bits.LeadingZeros64(w)
		if w != 0 {
			break
		}
	}
	return n
}

// WorkMeter counts the hashes a claim's proof of work has tried, for a
// progress line: Tried is read while the work runs.
type WorkMeter struct{ tried atomic.Uint64 }

// Tried is how many nonces have been tried so far.
func (m *WorkMeter) Tried() uint64 { return m.tried.Load() }

// Expected is how many nonces a proof of work at difficulty takes on
// average; any one claim may take several times that (the tail is long).
func Expected(difficulty int) uint64 { return 1 << min(difficulty, 63) }

type meterKey struct{}

// WithWorkMeter has the proofs of work minted under ctx count into m.
func WithWorkMeter(ctx context.Context, m *WorkMeter) context.Context {
	return context.WithValue(ctx, meterKey{}, m)
}

// solve searches nonces on every CPU until one gives at least difficulty
// leading zero bits, or ctx ends.
func solve(ctx context.Context, seed [32]byte, difficulty int) (uint64, error) {
	workers := uint64(runtime.GOMAXPROCS(0))
	meter, _ := ctx.Value(meterKey{}).(*WorkMeter)
	var (
		found  atomic.Bool
		result atomic.Uint64
		wg     sync.WaitGroup
	)
	for w := uint64(0); w < workers; w++ {
		wg.Add(1)
		go func(start uint64) {
			defer wg.Done()
			for nonce, i := start, 0; ; nonce, i = nonce+workers, i+1 {
				if i%checkEvery == 0 {
					if found.Load() || ctx.Err() != nil {
						return
					}
					if meter != nil && i > 0 {
						meter.tried.Add(checkEvery)
					}
				}
				if leadingZeros(powHash(seed, nonce)) >= difficulty {
					if found.CompareAndSwap(false, true) {
						result.Store(nonce)
					}
					return
				}
			}
		}(w)
	}
	wg.Wait()
	if !found.Load() {
		return 0, fmt.Errorf("proof of work at difficulty %d: %w", difficulty, context.Cause(ctx))
	}
	return result.Load(), nil
}
