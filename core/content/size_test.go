package content

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"

	cid "github.com/ipfs/go-cid"
)

// putNode stores a file node of n links to child, each declared each bytes.
func putNode(t *testing.T, bs *Blockstore, child cid.Cid, n int, each int64) (cid.Cid, int64) {
	t.Helper()
	links := make([]link, n)
	for i := range links {
		links[i] = link{c: child, size: each}
	}
	data, size, err := encodeFileNode(links)
	if err != nil {
		t.Fatal(err)
	}
	c := sumCID(codecJSON, data)
	if err := bs.Put(c, data); err != nil {
		t.Fatal(err)
	}
	return c, size
}

func TestGetRangeReadsOnlyTheRange(t *testing.T) {
	bs := newStore(t)
	data := randBytes(1, ChunkSize)
	c := sumCID(codecRaw, data)
	if err := bs.Put(c, data); err != nil {
		t.Fatal(err)
	}
	r, err := bs.GetRange(c, 1000, 1)
	if err != nil || r.Read != 1 || len(r.Data) != 1 || r.Data[0] != data[1000] || r.Size != ChunkSize {
		t.Fatalf("1-byte range: read %d, %d bytes, %v", r.Read, len(r.Data), err)
	}
	if _, err := bs.GetRange(c, ChunkSize+1, 1); !errors.Is(err, ErrRange) {
		t.Fatalf("range past the end: %v", err)
	}
	// Another process (a new store on the same directory) hashes the block
	// whole on its first read, then reads ranges only.
	again, err := OpenBlockstore(bs.dir)
	if err != nil {
		t.Fatal(err)
	}
	if r, err = again.GetRange(c, 5, 10); err != nil || r.Read != ChunkSize || string(r.Data) != string(data[5:15]) {
		t.Fatalf("first range read: read %d, %v", r.Read, err)
	}
	if r, err = again.GetRange(c, 5, 10); err != nil || r.Read != 10 {
		t.Fatalf("second range read: read %d, %v", r.Read, err)
	}
	// A block damaged on disk is never served, not even in part.
	p, _ := bs.path(c)
	damaged := append([]byte{}, data...)
	damaged[0] ^= 1
	if err := os.WriteFile(p, damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	third, _ := OpenBlockstore(bs.dir)
	if _, err := third.GetRange(c, 1, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("range of a damaged block: %v", err)
	}
}

func TestVerifySize(t *testing.T) {
	ctx := context.Background()
	bs := newStore(t)
	chunk := randBytes(2, 1024)
	chunkCID := sumCID(codecRaw, chunk)
	if err := bs.Put(chunkCID, chunk); err != nil {
		t.Fatal(err)
	}
	// A bomb: one 1 KiB chunk named 1000 × 1000 times, about 1 GB declared.
	mid, midSize := putNode(t, bs, chunkCID, 1000, 1024)
	bomb, bombSize := putNode(t, bs, mid, 1000, midSize)

	_, _, err := VerifySize(ctx, bomb, bs, 1<<20)
	var tooLarge *TooLargeError
	if !errors.As(err, &tooLarge) || tooLarge.Declared != bombSize || tooLarge.Limit != 1<<20 || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("bomb over the limit: %v", err)
	}
	wantErr(t, err, "declares 1024000000 bytes (976.6 MiB), over the limit of 1048576 bytes (1.0 MiB)")
	// Within the limit it verifies, each distinct block once.
	if kind, size, err := VerifySize(ctx, bomb, bs, -1); err != nil || kind != KindFile || size != bombSize {
		t.Fatalf("bomb, no limit: %s %d %v", kind, size, err)
	}

	// A liar declares less than its pieces hold.
	liar, _ := putNode(t, bs, mid, 4, 1024)
	_, _, err = VerifySize(ctx, liar, bs, -1)
	wantErr(t, err, "holds 1024000 bytes but its parent says 1024")

	// A piece missing from the store.
	missing := sumCID(codecRaw, []byte("not stored"))
	gap, _ := putNode(t, bs, missing, 2, 10)
	if _, _, err := VerifySize(ctx, gap, bs, -1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing piece: %v", err)
	}
}

// A range of a large file reads the chunks it covers, and of those only
// the bytes asked.
func TestWriteRangeReadsOnlyTheRange(t *testing.T) {
	bs := newStore(t)
	data := randBytes(3, 3*ChunkSize+100)
	dir := t.TempDir()
	writeTree(t, dir, tree{"f": data})
	res, err := Import(context.Background(), dir, bs, nil)
	if err != nil {
		t.Fatal(err)
	}
	root := res.Root
	f, err := ResolvePath(root, "f", bs)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	before := bs.read.Load()
	if _, err := WriteRange(context.Background(), f, ChunkSize+500, 10, &buf, bs); err != nil {
		t.Fatal(err)
	}
	if buf.String() != string(data[ChunkSize+500:ChunkSize+510]) {
		t.Fatal("wrong bytes")
	}
	// The file node (a few hundred bytes) and the 10 bytes.
	if n := bs.read.Load() - before; n > 4096 {
		t.Fatalf("a 10-byte range read %d bytes from the store", n)
	}
}
