package content

import (
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
)

// BenchmarkImport imports a fresh 64 MiB file into an empty store each round:
// read, hash, sync and rename every chunk. MB/s is file bytes per second.
func BenchmarkImport(b *testing.B) {
	const size = 64 << 20
	p := filepath.Join(b.TempDir(), "big.bin")
	if err := os.WriteFile(p, randBytes(99, size), 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		bs, err := OpenBlockstore(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		res, err := Import(b.Context(), p, bs, nil)
		if err != nil {
			b.Fatal(err)
		}
		if res.NewBlocks != size/ChunkSize+1 {
			b.Fatalf("%d new blocks", res.NewBlocks)
		}
	}
}

// BenchmarkImportUnchanged re-imports a file already in the store: hashing only.
func BenchmarkImportUnchanged(b *testing.B) {
	const size = 64 << 20
	p := filepath.Join(b.TempDir(), "big.bin")
	if err := os.WriteFile(p, randBytes(98, size), 0o644); err != nil {
		b.Fatal(err)
	}
	bs := newStore(b)
	if _, err := Import(b.Context(), p, bs, nil); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	for b.Loop() {
		if res, err := Import(b.Context(), p, bs, nil); err != nil || res.NewBlocks != 0 {
			b.Fatal(res, err)
		}
	}
}

// BenchmarkBlockstorePut stores new 1 MiB blocks, verified as from a peer.
func BenchmarkBlockstorePut(b *testing.B) {
	bs := newStore(b)
	data := randBytes(97, ChunkSize)
	b.SetBytes(ChunkSize)
	i := 0
	for b.Loop() {
		b.StopTimer()
		data[0], data[1], data[2], data[3] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
		i++
		c := sumCID(codecRaw, data)
		b.StartTimer()
		if err := bs.Put(c, data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteFile(b *testing.B) {
	const size = 64 << 20
	p := filepath.Join(b.TempDir(), "big.bin")
	if err := os.WriteFile(p, randBytes(96, size), 0o644); err != nil {
		b.Fatal(err)
	}
	bs := newStore(b)
	res, err := Import(b.Context(), p, bs, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	for b.Loop() {
		if _, err := WriteFile(b.Context(), res.Root, discard{}, bs); err != nil {
			b.Fatal(err)
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkBlockstorePutParallel stores new 1 MiB blocks from 8 goroutines, as
// a fetch from several peers does; syncs overlap.
func BenchmarkBlockstorePutParallel(b *testing.B) {
	bs := newStore(b)
	b.SetBytes(ChunkSize)
	b.SetParallelism(8 / max(1, runtime.GOMAXPROCS(0)))
	var seq atomic.Uint64
	b.RunParallel(func(pb *testing.PB) {
		data := randBytes(seq.Add(1)<<32, ChunkSize)
		for pb.Next() {
			n := seq.Add(1)
			data[0], data[1], data[2], data[3] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
			if err := bs.Put(sumCID(codecRaw, data), data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
