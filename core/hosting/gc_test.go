package hosting

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"

	"github.com/avnode/avnode/core/content"
	"github.com/avnode/avnode/sdk/sdktest"
)

// storeOnly is a Service with a block store and pins, no network: enough
// to read what is stored and to collect it.
func storeOnly(t *testing.T) *Service {
	t.Helper()
	bs, err := content.OpenBlockstore(filepath.Join(t.TempDir(), "blocks"))
	if err != nil {
		t.Fatal(err)
	}
	return &Service{Blocks: bs, Pins: content.NewPins(dssync.MutexWrap(datastore.NewMapDatastore())), maxFetchMB: 64}
}

// importUnpinned stores a file as a fetch leaves it: every block here, none pinned.
func importUnpinned(t *testing.T, s *Service, data []byte) cid.Cid {
	t.Helper()
	path := filepath.Join(t.TempDir(), "file.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	imp, err := content.Import(t.Context(), path, s.Blocks, nil)
	if err != nil {
		t.Fatal(err)
	}
	return imp.Root
}

// gcOnFirstWrite runs a GC when the read has written its first bytes: a
// cache trim by another get, or `avnode repo gc`, in the middle of a read.
type gcOnFirstWrite struct {
	ctx  context.Context
	s    *Service
	out  bytes.Buffer
	gc   content.GCResult
	err  error
	done bool
}

func (w *gcOnFirstWrite) Write(p []byte) (int, error) {
	if !w.done {
		w.done = true
		w.gc, w.err = w.s.GC(w.ctx)
	}
	return w.out.Write(p)
}

// A GC while a file is read keeps what the read needs, and collects it
// once the read is over.
func TestGCDuringReadKeepsTheFile(t *testing.T) {
	s := storeOnly(t)
	data := make([]byte, 3<<20) // several blocks
	rand.NewChaCha8([32]byte{19}).Read(data)
	root := importUnpinned(t, s, data)

	w := &gcOnFirstWrite{ctx: t.Context(), s: s}
	n, err := s.WriteFile(t.Context(), root, w)
	if err != nil {
		t.Fatalf("read with a GC in its middle: %v after %d of %d bytes (GC %+v)", err, n, len(data), w.gc)
	}
	if w.err != nil || w.gc.Removed != 0 {
		t.Fatalf("GC during the read = %+v, %v; want nothing removed", w.gc, w.err)
	}
	if !bytes.Equal(w.out.Bytes(), data) {
		t.Fatalf("read %d bytes, not the %d stored", w.out.Len(), len(data))
	}

	res, err := s.GC(t.Context())
	if err != nil || res.Removed == 0 || res.Kept != 0 {
		t.Fatalf("GC after the read = %+v, %v; want every block of the unpinned file removed", res, err)
	}
}

// What a fetch brings in stays through the cache's trims until the caller
// has read it in a later call (a plugin's Fetch then ReadFile, a gateway's
// get then its reads), and is collected once the lease is over. The
// operator's GC takes it at once.
func TestGCBetweenFetchAndReadKeepsTheFetched(t *testing.T) {
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	blocks := storeOnly(t)
	s := New(Options{Host: h, Blocks: blocks.Blocks, Pins: blocks.Pins, Private: true, MaxFetchMB: 64, Logger: slog.New(slog.DiscardHandler)})
	s.fetchLease = 300 * time.Millisecond
	data := make([]byte, 3<<20)
	rand.NewChaCha8([32]byte{20}).Read(data)
	root := importUnpinned(t, s, data)

	res, err := s.FetchUnannounced(t.Context(), "/cid/"+root.String())
	if err != nil {
		t.Fatal(err)
	}
	if gc, err := s.collect(t.Context(), true); err != nil || gc.Removed != 0 {
		t.Fatalf("a cache trim right after the fetch = %+v, %v; want nothing of the fetched file removed", gc, err)
	}
	var out bytes.Buffer
	if _, err := s.WriteFile(t.Context(), root, &out); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("read after fetch and GC: %d of %d bytes, %v", out.Len(), res.Size, err)
	}
	if _, err := s.FetchUnannounced(t.Context(), "/cid/"+root.String()); err != nil {
		t.Fatal(err)
	}
	if gc, err := s.GC(t.Context()); err != nil || gc.Removed == 0 {
		t.Fatalf("the operator's GC after a fetch = %+v, %v; want the unpinned file collected", gc, err)
	}
	importUnpinned(t, s, data) // back, for the lease to run out on

	sdktest.Eventually(t, 10*time.Second, "the fetched file collected once its lease is over", func() error {
		gc, err := s.collect(t.Context(), true)
		if err == nil && gc.Removed == 0 {
			err = fmt.Errorf("GC = %+v", gc)
		}
		return err
	})
}
