package exchange

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"

	"github.com/avnode/avnode/core/content"
)

// putBlock stores data under its CID of codec.
func putBlock(t *testing.T, bs *content.Blockstore, codec uint64, data []byte) cid.Cid {
	t.Helper()
	d := sha256.Sum256(data)
	m, _ := mh.Encode(d[:], mh.SHA2_256)
	c := cid.NewCidV1(codec, m)
	if err := bs.Put(c, data); err != nil {
		t.Fatal(err)
	}
	return c
}

// putFileNode stores a file node of n links to child, each declared each
// bytes, spelled as the format's canonical JSON.
func putFileNode(t *testing.T, bs *content.Blockstore, child cid.Cid, n int, each int64) cid.Cid {
	var b strings.Builder
	fmt.Fprintf(&b, `{"kind":"file","size":%d,"chunks":[`, int64(n)*each)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"cid":"%s","size":%d}`, child, each)
	}
	b.WriteString("]}")
	return putBlock(t, bs, 0x0200, []byte(b.String()))
}

// Sizes are checked as blocks arrive, before they are stored: a root over
// the limit, and a piece holding more than its parent declares, end the
// fetch with nothing of them stored.
func TestFetchChecksSizesAsBlocksArrive(t *testing.T) {
	origin := newStore(t)
	chunk := make([]byte, 64<<10)
	rand.Read(chunk)
	chunkCID := putBlock(t, origin, 0x55, chunk)
	mid := putFileNode(t, origin, chunkCID, 4096, 64<<10) // 256 MiB declared
	bomb := putFileNode(t, origin, mid, 4096, 256<<20)    // 1 TiB declared
	liar := putFileNode(t, origin, mid, 2, 64<<10)        // 128 KiB declared, 512 MiB held
	src := newServer(t, origin)
	client := newHost(t)
	connect(t, client, src.h)
	ctx := context.Background()

	bs := newStore(t)
	f := NewFetcher(client, prefix, bs, quiet)
	_, err := f.FetchWithin(ctx, bomb, []peer.ID{src.h.ID()}, 1<<20, nil)
	var tooLarge *content.TooLargeError
	if !errors.As(err, &tooLarge) || tooLarge.Declared != 1<<40 {
		t.Fatalf("bomb: %v", err)
	}
	if n, bytes, _ := bs.Usage(t.Context()); n != 0 {
		t.Fatalf("the bomb's root was refused, yet %d blocks (%d bytes) were stored", n, bytes)
	}

	_, err = f.FetchWithin(ctx, liar, []peer.ID{src.h.ID()}, 1<<20, nil)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%s holds %d bytes but its parent says %d", mid, 256<<20, 64<<10)) {
		t.Fatalf("liar: %v", err)
	}
	if has, _ := bs.Has(mid); has {
		t.Fatal("the piece that holds more than declared was stored")
	}

	// The fetch's bytes count too: a node of 256 one-byte pieces declares
	// 256 bytes but is itself some 22 KB.
	var links []string
	for i := range 256 {
		links = append(links, fmt.Sprintf(`{"cid":"%s","size":1}`, putBlock(t, origin, 0x55, []byte{byte(i)})))
	}
	wide := putBlock(t, origin, 0x0200, []byte(`{"kind":"file","size":256,"chunks":[`+strings.Join(links, ",")+`]}`))
	_, err = f.FetchWithin(ctx, wide, []peer.ID{src.h.ID()}, 1000, nil)
	if !errors.Is(err, content.ErrTooLarge) || !strings.Contains(err.Error(), "over 1000 bytes") {
		t.Fatalf("a node larger than the limit: %v", err)
	}
	if _, err := f.FetchWithin(ctx, wide, []peer.ID{src.h.ID()}, 1<<20, nil); err != nil {
		t.Fatalf("the same within a larger limit: %v", err)
	}
}
