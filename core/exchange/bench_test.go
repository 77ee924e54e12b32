package exchange

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// BenchmarkFetch compares, in one run on loopback:
//
//   - a bare libp2p stream copy of the file's bytes, disk to disk and
//     synced (baseline);
//
//   - a verified fetch of the same file from one source;
//
//   - the same from three sources.
//
//     go test -run '^$' -bench Fetch -benchtime 3x ./core/exchange/
//
// BENCH_FETCH_MB sets the file size (default 256).
func BenchmarkFetch(b *testing.B) {
	size := 256
	if s := os.Getenv("BENCH_FETCH_MB"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("BENCH_FETCH_MB=%q: want a number of MiB", s)
		}
		size = n
	}
	origin := newStore(b)
	root, data := publishRandom(b, origin, size<<20)
	srcFile := filepath.Join(b.TempDir(), "source.bin")
	os.WriteFile(srcFile, data, 0o600)
	data = nil

	servers := []server{newServer(b, origin), newServer(b, copyStore(b, origin)), newServer(b, copyStore(b, origin))}
	const rawProto = protocol.ID("/bench/raw/1.0.0")
	servers[0].h.SetStreamHandler(rawProto, func(st network.Stream) {
		defer st.Close()
		f, err := os.Open(srcFile)
		if err != nil {
			st.Reset()
			return
		}
		defer f.Close()
		io.Copy(st, f)
	})
	client := newHost(b)
	var ids []peer.ID
	for _, s := range servers {
		connect(b, client, s.h)
		ids = append(ids, s.h.ID())
	}

	// Each phase starts with the page cache flushed and ends with its bytes
	// on disk (fsync for the copy, the store's Sync for a fetch), so neither
	// pays for the other's writeback.
	var bare, one, three time.Duration
	for b.Loop() {
		syscall.Sync()
		bare += timed(b, func() error {
			return rawCopy(client, servers[0].h.ID(), rawProto, filepath.Join(b.TempDir(), "copy.bin"))
		})
		syscall.Sync()
		one += timed(b, func() error { return fetchFresh(b, client, root, ids[:1]) })
		syscall.Sync()
		three += timed(b, func() error { return fetchFresh(b, client, root, ids) })
	}
	mbps := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() }
	b.ReportMetric(mbps(bare), "bare-MB/s")
	b.ReportMetric(mbps(one), "one-source-MB/s")
	b.ReportMetric(mbps(three), "three-sources-MB/s")
	b.ReportMetric(bare.Seconds()/one.Seconds(), "one/bare")
	b.ReportMetric(one.Seconds()/three.Seconds(), "three/one")
}

func timed(b *testing.B, f func() error) time.Duration {
	start := time.Now()
	if err := f(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

func rawCopy(client host.Host, p peer.ID, proto protocol.ID, dest string) error {
	st, err := client.NewStream(context.Background(), p, proto)
	if err != nil {
		return err
	}
	defer st.Close()
	f, err := os.Create(dest)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(f, st); err != nil {
		return err
	}
	return f.Sync()
}

func fetchFresh(b *testing.B, client host.Host, root cid.Cid, sources []peer.ID) error {
	_, err := NewFetcher(client, prefix, newStore(b), quiet).Fetch(context.Background(), root, sources, nil)
	return err
}
