package content

import (
	"errors"
	"path/filepath"
	"testing"

	cid "github.com/ipfs/go-cid"
	datastore "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	leveldb "github.com/ipfs/go-ds-leveldb"
)

// reachable returns the blocks of root's DAG that are present, with their sizes.
func reachable(t *testing.T, root cid.Cid, bs *Blockstore) map[string]int {
	t.Helper()
	out := map[string]int{}
	err := Walk(t.Context(), root, bs, func(c cid.Cid) error {
		n, err := bs.GetSize(c)
		out[c.KeyString()] = n
		return err
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPinsAndGC(t *testing.T) {
	bs := newStore(t)
	shared := randBytes(40, 2*ChunkSize+100)

	srcA, srcB := t.TempDir(), t.TempDir()
	writeTree(t, srcA, tree{"shared.bin": shared, "a-only.txt": []byte("a"), "sub/x": randBytes(41, 5000)})
	writeTree(t, srcB, tree{"shared.bin": shared, "b-only.bin": randBytes(42, ChunkSize+7), "empty": nil})
	a, err := Import(t.Context(), srcA, bs, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Import(t.Context(), srcB, bs, nil)
	if err != nil {
		t.Fatal(err)
	}
	inA, inB := reachable(t, a.Root, bs), reachable(t, b.Root, bs)
	wantRemoved, wantFreed := 0, int64(0)
	for k, size := range inB {
		if _, ok := inA[k]; !ok {
			wantRemoved++
			wantFreed += int64(size)
		}
	}
	if wantRemoved == len(inB) {
		t.Fatal("test setup: the DAGs share no block")
	}

	pins := NewPins(dssync.MutexWrap(datastore.NewMapDatastore()))
	if err := pins.Add(t.Context(), a.Root, "published a.code"); err != nil {
		t.Fatal(err)
	}
	res, err := GC(t.Context(), bs, pins)
	if err != nil {
		t.Fatal(err)
	}
	if res.Removed != wantRemoved || res.Freed != wantFreed || res.Kept != len(inA) {
		t.Fatalf("GC = %+v, want removed %d, freed %d, kept %d", res, wantRemoved, wantFreed, len(inA))
	}
	for k := range inA {
		c, _ := cid.Cast([]byte(k))
		if has, _ := bs.Has(c); !has {
			t.Fatalf("pinned block %s removed", c)
		}
	}
	if err := Export(t.Context(), a.Root, filepath.Join(t.TempDir(), "a"), bs); err != nil {
		t.Fatalf("pinned DAG broken after GC: %v", err)
	}
	if has, _ := bs.Has(b.Root); has {
		t.Fatal("unpinned root kept")
	}

	// A second GC has nothing to do.
	if res, err := GC(t.Context(), bs, pins); err != nil || res.Removed != 0 || res.Kept != len(inA) {
		t.Fatalf("second GC = %+v, %v", res, err)
	}

	// A pinned DAG with a missing block keeps everything else it reaches.
	file, err := ResolvePath(a.Root, "shared.bin", bs)
	if err != nil {
		t.Fatal(err)
	}
	fn, err := loadNode(file, bs)
	if err != nil {
		t.Fatal(err)
	}
	if err := bs.Delete(fn.chunks[0].c); err != nil {
		t.Fatal(err)
	}
	if res, err := GC(t.Context(), bs, pins); err != nil || res.Removed != 0 || res.Kept != len(inA)-1 {
		t.Fatalf("GC with a hole = %+v, %v", res, err)
	}

	// Unpinning frees the rest.
	if err := pins.Remove(t.Context(), a.Root); err != nil {
		t.Fatal(err)
	}
	if err := pins.Remove(t.Context(), a.Root); !errors.Is(err, ErrNotPinned) {
		t.Fatalf("second Remove = %v, want ErrNotPinned", err)
	}
	if res, err := GC(t.Context(), bs, pins); err != nil || res.Kept != 0 || res.Removed != len(inA)-1 {
		t.Fatalf("GC after unpin = %+v, %v", res, err)
	}
}

func TestGCRefusesUnreadablePin(t *testing.T) {
	bs := newStore(t)
	keep := []byte("keep me")
	kc := sumCID(codecRaw, keep)
	bs.Put(kc, keep)
	// A node that hashes correctly but does not decode.
	bad := []byte(`{"kind":"dir","entries":[ ]}`)
	bc := sumCID(codecJSON, bad)
	bs.Put(bc, bad)
	pins := NewPins(dssync.MutexWrap(datastore.NewMapDatastore()))
	pins.Add(t.Context(), bc, "broken")
	_, err := GC(t.Context(), bs, pins)
	wantErr(t, err, bc.String(), "nothing was removed")
	if has, _ := bs.Has(kc); !has {
		t.Fatal("GC removed a block despite failing")
	}
}

func TestPinsSurviveReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "datastore")
	open := func() *leveldb.Datastore {
		d, err := leveldb.NewDatastore(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	c1, c2 := sumCID(codecRaw, []byte("1")), sumCID(codecJSON, []byte("2"))
	d := open()
	// Keys outside /pins are someone else's.
	d.Put(t.Context(), datastore.NewKey("/pinsx/y"), []byte("z"))
	d.Put(t.Context(), datastore.NewKey("/names/x"), []byte("z"))
	p := NewPins(d)
	if err := p.Add(t.Context(), c1, "published coolblog.code"); err != nil {
		t.Fatal(err)
	}
	p.Add(t.Context(), c2, "mirror einstein.avtr")
	p.Add(t.Context(), c2, "mirror x") // replaces the reason
	if err := p.Add(t.Context(), cid.Undef, "nothing"); err == nil {
		t.Fatal("pinned an undefined CID")
	}
	d.Close()

	d = open()
	defer d.Close()
	got, err := NewPins(d).List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[c1] != "published coolblog.code" || got[c2] != "mirror x" {
		t.Fatalf("after reopen: %v", got)
	}
}
