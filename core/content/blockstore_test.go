package content

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	cid "github.com/ipfs/go-cid"
	datastore "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
)

func TestBlockstoreBasics(t *testing.T) {
	bs := newStore(t)
	data := randBytes(2, 5000)
	c := sumCID(codecRaw, data)

	if has, err := bs.Has(c); err != nil || has {
		t.Fatalf("Has before Put = %v, %v", has, err)
	}
	if _, err := bs.Get(c); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get before Put: %v, want ErrNotFound", err)
	}
	if _, err := bs.GetSize(c); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetSize before Put: %v, want ErrNotFound", err)
	}
	for range 2 { // the second Put is a no-op
		if err := bs.Put(c, data); err != nil {
			t.Fatal(err)
		}
	}
	got, err := bs.Get(c)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get = %d bytes, %v", len(got), err)
	}
	if n, err := bs.GetSize(c); err != nil || n != len(data) {
		t.Fatalf("GetSize = %d, %v", n, err)
	}
	empty := sumCID(codecRaw, nil)
	if err := bs.Put(empty, nil); err != nil {
		t.Fatal(err)
	}
	keys, err := bs.AllKeys(t.Context())
	if err != nil || len(keys) != 2 {
		t.Fatalf("AllKeys = %v, %v", keys, err)
	}
	if n, size, err := bs.Usage(t.Context()); err != nil || n != 2 || size != 5000 {
		t.Fatalf("Usage = %d, %d, %v", n, size, err)
	}
	if err := bs.Delete(c); err != nil {
		t.Fatal(err)
	}
	if err := bs.Delete(c); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if has, _ := bs.Has(c); has {
		t.Fatal("Has after Delete")
	}
	// CIDs this format never uses cannot be in the store.
	for _, c := range []cid.Cid{cid.Undef, cid.NewCidV1(cid.DagCBOR, c.Hash())} {
		if has, err := bs.Has(c); has || err != nil {
			t.Errorf("Has(%s) = %v, %v", c, has, err)
		}
		if _, err := bs.Get(c); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%s) = %v, want ErrNotFound", c, err)
		}
	}
	// A store reopened on the same directory sees the same blocks.
	again, err := OpenBlockstore(bs.dir)
	if err != nil {
		t.Fatal(err)
	}
	if has, _ := again.Has(empty); !has {
		t.Fatal("block lost on reopen")
	}
}

func TestBlockstoreRefusesBadBlocks(t *testing.T) {
	bs := newStore(t)
	data := randBytes(3, 2000)
	c := sumCID(codecRaw, data)
	bad := bytes.Clone(data)
	bad[0] ^= 1
	big := make([]byte, MaxBlockSize+1)
	for name, tc := range map[string]struct {
		c    cid.Cid
		data []byte
	}{
		"flipped bit": {c, bad},
		"short":       {c, data[:10]},
		"oversized":   {sumCID(codecRaw, big), big},
	} {
		if err := bs.Put(tc.c, tc.data); !errors.Is(err, ErrInvalidBlock) {
			t.Errorf("%s: Put = %v, want ErrInvalidBlock", name, err)
		}
		if has, _ := bs.Has(tc.c); has {
			t.Errorf("%s: stored", name)
		}
	}
	if n, _, _ := bs.Usage(t.Context()); n != 0 {
		t.Fatalf("%d blocks stored", n)
	}
	if list, _ := os.ReadDir(filepath.Join(bs.dir, tmpDirName)); len(list) != 0 {
		t.Fatalf("temp files left: %v", list)
	}
}

func TestBlockstoreCleansStrayTempFiles(t *testing.T) {
	bs := newStore(t)
	stray := filepath.Join(bs.dir, tmpDirName, "put-123456")
	if err := os.WriteFile(stray, []byte("half a blo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBlockstore(bs.dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stray); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stray temp file still there: %v", err)
	}
}

func TestBlockstoreIgnoresForeignFiles(t *testing.T) {
	bs := newStore(t)
	data := []byte("hello")
	c := sumCID(codecRaw, data)
	if err := bs.Put(c, data); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(bs.dir, "README"), []byte("x"), 0o600)
	os.MkdirAll(filepath.Join(bs.dir, "zz"), 0o700)
	os.WriteFile(filepath.Join(bs.dir, "zz", "notacid"), []byte("x"), 0o600)
	keys, err := bs.AllKeys(t.Context())
	if err != nil || len(keys) != 1 || !keys[0].Equals(c) {
		t.Fatalf("AllKeys = %v, %v", keys, err)
	}
}

// fullDisk writes part of a block, then fails as a full disk does.
type fullDisk struct {
	*os.File
	room int
}

func (f *fullDisk) Write(p []byte) (int, error) {
	if len(p) <= f.room {
		f.room -= len(p)
		return f.File.Write(p)
	}
	n, _ := f.File.Write(p[:f.room])
	f.room = 0
	return n, &fs.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
}

func TestBlockstoreDiskFull(t *testing.T) {
	bs := newStore(t)
	saved := createTemp
	t.Cleanup(func() { createTemp = saved })
	createTemp = func(dir string) (tempFile, error) {
		f, err := os.CreateTemp(dir, "put-*")
		return &fullDisk{File: f, room: 100}, err
	}
	data := randBytes(4, 4096)
	c := sumCID(codecRaw, data)
	err := bs.Put(c, data)
	wantErr(t, err, c.String(), "no space left", "free space")
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("%v does not wrap ENOSPC", err)
	}
	if has, _ := bs.Has(c); has {
		t.Fatal("partial block stored")
	}
	if list, _ := os.ReadDir(filepath.Join(bs.dir, tmpDirName)); len(list) != 0 {
		t.Fatalf("temp files left: %v", list)
	}
}

func TestBlockstoreConcurrentPut(t *testing.T) {
	bs := newStore(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 20 {
				data := randBytes(uint64(j), 3000+i%2) // overlapping blocks
				if err := bs.Put(sumCID(codecRaw, data), data); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if n, _, err := bs.Usage(t.Context()); err != nil || n != 40 {
		t.Fatalf("Usage = %d, %v; want 40", n, err)
	}
}

func TestImportDiskFull(t *testing.T) {
	bs := newStore(t)
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, randBytes(5, 6*ChunkSize), 0o644)
	saved := createTemp
	t.Cleanup(func() { createTemp = saved })
	var mu sync.Mutex
	room := 3*ChunkSize + 1000
	createTemp = func(dir string) (tempFile, error) {
		f, err := os.CreateTemp(dir, "put-*")
		mu.Lock()
		defer mu.Unlock()
		r := min(room, ChunkSize)
		room -= r
		return &fullDisk{File: f, room: r}, err
	}
	res, err := Import(t.Context(), p, bs, nil)
	wantErr(t, err, p, "no space left", "free space")
	if res.Root.Defined() {
		t.Fatal("a root was returned")
	}
	if nodes := jsonBlocks(t, bs); len(nodes) != 0 {
		t.Fatalf("nodes stored: %v", nodes)
	}
	if list, _ := os.ReadDir(filepath.Join(bs.dir, tmpDirName)); len(list) != 0 {
		t.Fatalf("temp files left: %v", list)
	}
}

// A block damaged on disk (say by a crash before Sync) is found when read
// after a restart, removed, and reported as missing so it is fetched again.
func TestDamagedBlockIsRemovedOnRead(t *testing.T) {
	dir := t.TempDir()
	bs, err := OpenBlockstore(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("a block that will be damaged")
	c := sumCID(codecRaw, data)
	if err := bs.Put(c, data); err != nil {
		t.Fatal(err)
	}
	p, err := bs.path(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("a block that will be dAmaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	reopened, err := OpenBlockstore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reopened.Get(c); !errors.Is(err, ErrNotFound) {
		t.Fatalf("damaged block: got %v, want ErrNotFound", err)
	}
	if has, _ := reopened.Has(c); has {
		t.Fatal("damaged block still in the store")
	}
}

// The store counts its blocks once and then keeps the count as blocks are
// put (alone and concurrently), deleted, collected and found damaged: every
// answer equals a fresh scan of the directory, and none scans again.
func TestUsageIsKeptWithoutRescanning(t *testing.T) {
	dir := t.TempDir()
	bs, err := OpenBlockstore(dir)
	if err != nil {
		t.Fatal(err)
	}
	put := func(seed uint64, n int) cid.Cid {
		data := randBytes(seed, n)
		c := sumCID(codecRaw, data)
		if err := bs.Put(c, data); err != nil {
			t.Fatal(err)
		}
		return c
	}
	agrees := func(when string) {
		t.Helper()
		blocks, bytes, err := bs.Usage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		fresh, err := OpenBlockstore(dir)
		if err != nil {
			t.Fatal(err)
		}
		wantBlocks, wantBytes, err := fresh.Usage(t.Context())
		if err != nil || blocks != wantBlocks || bytes != wantBytes {
			t.Fatalf("%s: Usage %d blocks, %d bytes; a fresh scan finds %d, %d (%v)", when, blocks, bytes, wantBlocks, wantBytes, err)
		}
	}
	first := put(1, 1000)
	put(2, 2000)

	// Puts and deletes racing the first count and each other.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 20 {
				c := put(uint64(100+i*20+j), 100+j)
				if j%3 == 0 {
					if err := bs.Delete(c); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Go(func() { bs.Usage(t.Context()) })
	wg.Wait()
	put(2, 2000) // already there: not counted again
	if err := bs.Delete(first); err != nil {
		t.Fatal(err)
	}
	if err := bs.Delete(first); err != nil { // gone already: not uncounted again
		t.Fatal(err)
	}
	agrees("after concurrent puts and deletes")

	damaged := put(3, 3000)
	p, _ := bs.path(damaged)
	os.WriteFile(p, randBytes(4, 3000), 0o600)
	bs.checked.remove(damaged)
	if _, err := bs.Get(damaged); !errors.Is(err, ErrNotFound) {
		t.Fatalf("damaged block: %v", err)
	}
	agrees("after a damaged block was removed")

	if _, err := GC(t.Context(), bs, NewPins(dssync.MutexWrap(datastore.NewMapDatastore()))); err != nil {
		t.Fatal(err)
	}
	agrees("after GC removed everything")
	if n := bs.used.scans.Load(); n != 1 {
		t.Fatalf("the store was scanned %d times; want once", n)
	}
}
