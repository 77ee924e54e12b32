package content

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cid "github.com/ipfs/go-cid"
)

func sampleTree() tree {
	return tree{
		"big.bin":               randBytes(10, 5_000_000),
		"exact.bin":             randBytes(11, ChunkSize),
		"empty.txt":             {},
		"empty-dir":             nil,
		"a/b/c/deep.txt":        []byte("deep\n"),
		"a/b/sibling.txt":       []byte("sibling\n"),
		"a/readme.md":           []byte("# hi\n"),
		"unicode/日本語.txt":       []byte("こんにちは"),
		"unicode/émoji-😀/ß.txt": []byte("strasse"),
		"unicode/Ελληνικά":      nil,
	}
}

func TestImportExportRoundTrip(t *testing.T) {
	src := t.TempDir()
	tr := sampleTree()
	writeTree(t, src, tr)
	bs := newStore(t)

	var last int64
	res, err := Import(t.Context(), src, bs, func(done int64) {
		if done < last {
			t.Errorf("progress went back from %d to %d", last, done)
		}
		last = done
	})
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, d := range tr {
		total += int64(len(d))
	}
	if res.Bytes != total || last != total {
		t.Errorf("Bytes = %d, progress ended at %d, want %d", res.Bytes, last, total)
	}
	// root, a, a/b, a/b/c, empty-dir, unicode, unicode/émoji-😀, unicode/Ελληνικά
	if res.Files != 8 || res.Dirs != 8 {
		t.Errorf("Files, Dirs = %d, %d; want 8, 8", res.Files, res.Dirs)
	}
	if res.NewBlocks != res.Blocks {
		t.Errorf("first import: NewBlocks %d != Blocks %d", res.NewBlocks, res.Blocks)
	}
	if n, _, _ := bs.Usage(t.Context()); n != res.Blocks {
		t.Errorf("store holds %d blocks, import reports %d", n, res.Blocks)
	}
	kind, size, err := Stat(res.Root, bs)
	if err != nil || kind != KindDir || size != total {
		t.Errorf("Stat = %s, %d, %v", kind, size, err)
	}

	out := filepath.Join(t.TempDir(), "out")
	if err := Export(t.Context(), res.Root, out, bs); err != nil {
		t.Fatal(err)
	}
	sameTree(t, tr, readTree(t, out))

	// Exporting into an existing empty directory works too.
	empty := t.TempDir()
	if err := Export(t.Context(), res.Root, empty, bs); err != nil {
		t.Fatal(err)
	}
	sameTree(t, tr, readTree(t, empty))

	again, err := Import(t.Context(), src, bs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Root.Equals(res.Root) || again.NewBlocks != 0 || again.Blocks != res.Blocks {
		t.Errorf("re-import: root %s (was %s), NewBlocks %d, Blocks %d (was %d)",
			again.Root, res.Root, again.NewBlocks, again.Blocks, res.Blocks)
	}

	// The same content elsewhere, with one byte changed.
	other := t.TempDir()
	tr2 := sampleTree()
	tr2["big.bin"][4_999_999] ^= 1
	writeTree(t, other, tr2)
	res2, err := Import(t.Context(), other, bs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Root.Equals(res.Root) {
		t.Error("one byte of difference, same root")
	}
	// Only the last chunk, big.bin's file node and the root dir are new.
	if res2.NewBlocks != 3 {
		t.Errorf("one byte changed: %d new blocks, want 3", res2.NewBlocks)
	}
}

func TestImportSingleFiles(t *testing.T) {
	bs := newStore(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name   string
		size   int
		codec  uint64
		blocks int
	}{
		{"empty", 0, codecRaw, 1},
		{"one byte", 1, codecRaw, 1},
		{"exactly one chunk", ChunkSize, codecRaw, 1},
		{"one chunk and a byte", ChunkSize + 1, codecJSON, 3},
		{"three chunks", 3 * ChunkSize, codecJSON, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := randBytes(uint64(tc.size), tc.size)
			p := filepath.Join(dir, tc.name)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			res, err := Import(t.Context(), p, bs, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Root.Type() != tc.codec || res.Blocks != tc.blocks || res.Files != 1 || res.Dirs != 0 {
				t.Fatalf("root codec 0x%x, %d blocks, %d files, %d dirs", res.Root.Type(), res.Blocks, res.Files, res.Dirs)
			}
			if tc.size <= ChunkSize && !res.Root.Equals(sumCID(codecRaw, data)) {
				t.Fatal("a small file's CID is not its raw block's")
			}
			var buf bytes.Buffer
			n, err := WriteFile(t.Context(), res.Root, &buf, bs)
			if err != nil || n != int64(tc.size) || !bytes.Equal(buf.Bytes(), data) {
				t.Fatalf("WriteFile = %d, %v", n, err)
			}
			out := filepath.Join(t.TempDir(), "f")
			if err := Export(t.Context(), res.Root, out, bs); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
				t.Fatal("exported file differs")
			}
		})
	}
}

// TestFileTree shrinks maxFileLinks so a few MiB need several levels of file nodes.
func TestFileTree(t *testing.T) {
	saved := maxFileLinks
	t.Cleanup(func() { maxFileLinks = saved })
	maxFileLinks = 3

	for _, chunks := range []int{2, 3, 4, 9, 10, 11, 27, 28, 31} {
		bs := newStore(t)
		data := randBytes(uint64(chunks), chunks*ChunkSize-chunks) // last chunk short
		p := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := Import(t.Context(), p, bs, nil)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := WriteFile(t.Context(), res.Root, &buf, bs); err != nil || !bytes.Equal(buf.Bytes(), data) {
			t.Fatalf("%d chunks: round trip failed: %v", chunks, err)
		}
		// Every node respects the link limit, and the tree is no deeper than needed.
		depth, nodes := 0, 0
		var walkDepth func(c cid.Cid, d int)
		walkDepth = func(c cid.Cid, d int) {
			depth = max(depth, d)
			if c.Type() == codecRaw {
				return
			}
			nodes++
			n, err := loadNode(c, bs)
			if err != nil {
				t.Fatal(err)
			}
			if len(n.chunks) > maxFileLinks || len(n.chunks) < 2 {
				t.Fatalf("%d chunks: node with %d links", chunks, len(n.chunks))
			}
			for _, l := range n.chunks {
				walkDepth(l.c, d+1)
			}
		}
		walkDepth(res.Root, 0)
		wantDepth := 0
		for n := 1; n < chunks; n *= maxFileLinks {
			wantDepth++
		}
		if depth != wantDepth {
			t.Errorf("%d chunks: depth %d, want %d (%d nodes)", chunks, depth, wantDepth, nodes)
		}
		if kind, size, _ := Stat(res.Root, bs); kind != KindFile || size != int64(len(data)) {
			t.Errorf("%d chunks: Stat = %s %d", chunks, kind, size)
		}
	}
}

func TestImportSymlinks(t *testing.T) {
	bs := newStore(t)
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644)

	t.Run("escaping the root", func(t *testing.T) {
		src := t.TempDir()
		writeTree(t, src, tree{"ok.txt": []byte("ok")})
		link := filepath.Join(src, "escape")
		os.Symlink(filepath.Join(outside, "secret"), link)
		_, err := Import(t.Context(), src, bs, nil)
		wantErr(t, err, link, "outside")
	})
	t.Run("relative escape", func(t *testing.T) {
		src := t.TempDir()
		writeTree(t, src, tree{"sub": nil})
		link := filepath.Join(src, "sub", "up")
		os.Symlink("../..", link)
		_, err := Import(t.Context(), src, bs, nil)
		wantErr(t, err, link, "outside")
	})
	t.Run("broken", func(t *testing.T) {
		src := t.TempDir()
		link := filepath.Join(src, "dangling")
		os.Symlink("nowhere", link)
		_, err := Import(t.Context(), src, bs, nil)
		wantErr(t, err, link, "broken")
	})
	t.Run("cycle", func(t *testing.T) {
		src := t.TempDir()
		writeTree(t, src, tree{"a/b": nil})
		link := filepath.Join(src, "a", "b", "loop")
		os.Symlink("../../a", link)
		_, err := Import(t.Context(), src, bs, nil)
		wantErr(t, err, link, "cycle")
	})
	t.Run("inside is followed", func(t *testing.T) {
		src := t.TempDir()
		writeTree(t, src, tree{"data/f.txt": []byte("content"), "data/g.txt": []byte("more")})
		os.Symlink("data/f.txt", filepath.Join(src, "file-link"))
		os.Symlink("data", filepath.Join(src, "dir-link"))
		res, err := Import(t.Context(), src, bs, nil)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "out")
		if err := Export(t.Context(), res.Root, out, bs); err != nil {
			t.Fatal(err)
		}
		sameTree(t, tree{
			"data": nil, "data/f.txt": []byte("content"), "data/g.txt": []byte("more"),
			"file-link": []byte("content"),
			"dir-link":  nil, "dir-link/f.txt": []byte("content"), "dir-link/g.txt": []byte("more"),
		}, readTree(t, out))
		if res.Files != 5 || res.Dirs != 3 {
			t.Errorf("Files, Dirs = %d, %d; want 5, 3", res.Files, res.Dirs)
		}
	})
	t.Run("root given as a symlink", func(t *testing.T) {
		src := t.TempDir()
		writeTree(t, src, tree{"real/x": []byte("x")})
		os.Symlink(filepath.Join(src, "real"), filepath.Join(src, "alias"))
		a, err1 := Import(t.Context(), filepath.Join(src, "alias"), bs, nil)
		b, err2 := Import(t.Context(), filepath.Join(src, "real"), bs, nil)
		if err1 != nil || err2 != nil || !a.Root.Equals(b.Root) {
			t.Fatalf("%v %v %s %s", err1, err2, a.Root, b.Root)
		}
	})
}

func TestImportFileChanging(t *testing.T) {
	bs := newStore(t)
	src := t.TempDir()
	p := filepath.Join(src, "growing.log")
	if err := os.WriteFile(p, randBytes(20, 3*ChunkSize+5), 0o644); err != nil {
		t.Fatal(err)
	}
	appended := false
	res, err := Import(t.Context(), src, bs, func(done int64) {
		if !appended && done >= ChunkSize {
			appended = true
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("one more line\n"))
			f.Close()
		}
	})
	wantErr(t, err, p, "changed while it was read", "retry")
	if res.Root.Defined() {
		t.Fatalf("a root was returned: %s", res.Root)
	}
	if nodes := jsonBlocks(t, bs); len(nodes) != 0 {
		t.Fatalf("file or dir nodes were stored: %v", nodes)
	}
}

func TestImportShrinkingFile(t *testing.T) {
	bs := newStore(t)
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, randBytes(21, 3*ChunkSize), 0o644)
	_, err := Import(t.Context(), p, bs, func(done int64) {
		os.Truncate(p, ChunkSize+10)
	})
	wantErr(t, err, p, "changed")
}

func TestImportBadNames(t *testing.T) {
	bs := newStore(t)
	src := t.TempDir()
	bad := filepath.Join(src, "bad\xffname")
	if err := os.WriteFile(bad, nil, 0o644); err != nil {
		t.Skip("file system refuses invalid UTF-8 names")
	}
	_, err := Import(t.Context(), src, bs, nil)
	wantErr(t, err, "UTF-8", "rename it")
}

func TestImportCanceled(t *testing.T) {
	bs := newStore(t)
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, randBytes(22, 3*ChunkSize), 0o644)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, err := Import(ctx, p, bs, func(int64) { cancel() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestExportRefuses(t *testing.T) {
	bs := newStore(t)
	src := t.TempDir()
	writeTree(t, src, tree{"a/b.txt": []byte("b"), "c.bin": randBytes(30, 2*ChunkSize+1)})
	res, err := Import(t.Context(), src, bs, nil)
	if err != nil {
		t.Fatal(err)
	}
	file, err := ResolvePath(res.Root, "c.bin", bs)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("non-empty directory", func(t *testing.T) {
		dst := t.TempDir()
		os.WriteFile(filepath.Join(dst, "keep"), []byte("mine"), 0o644)
		wantErr(t, Export(t.Context(), res.Root, dst, bs), "not empty")
		if got := readTree(t, dst); len(got) != 1 {
			t.Fatalf("destination touched: %v", got)
		}
	})
	t.Run("existing file", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "x")
		os.WriteFile(dst, []byte("mine"), 0o644)
		wantErr(t, Export(t.Context(), file, dst, bs), "already exists")
		wantErr(t, Export(t.Context(), res.Root, dst, bs), "already exists")
		if got, _ := os.ReadFile(dst); string(got) != "mine" {
			t.Fatal("file overwritten")
		}
	})
	t.Run("file into an empty directory", func(t *testing.T) {
		wantErr(t, Export(t.Context(), file, t.TempDir(), bs), "already exists")
	})
	t.Run("missing block", func(t *testing.T) {
		n, _ := loadNode(file, bs)
		missing := n.chunks[1].c
		data, _ := bs.Get(missing)
		bs.Delete(missing)
		defer bs.Put(missing, data)
		parent := t.TempDir()
		err := Export(t.Context(), res.Root, filepath.Join(parent, "out"), bs)
		wantErr(t, err, missing.String())
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("%v does not wrap ErrNotFound", err)
		}
		if list, _ := os.ReadDir(parent); len(list) != 0 {
			t.Fatalf("left behind: %v", list)
		}
		var buf bytes.Buffer
		if _, err := WriteFile(t.Context(), file, &buf, bs); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), missing.String()) {
			t.Fatalf("WriteFile: %v", err)
		}
	})
}

// TestExportHostileDAG builds DAGs that decode but lie, as a hostile publisher could.
func TestExportHostileDAG(t *testing.T) {
	bs := newStore(t)
	put := func(data []byte, codec uint64) cid.Cid {
		c := sumCID(codec, data)
		if err := bs.Put(c, data); err != nil {
			t.Fatal(err)
		}
		return c
	}
	leaf := put([]byte("12345"), codecRaw)
	lying := put(mustDir(t, dirEntry{name: "f", c: leaf, kind: KindFile, size: 3}), codecJSON)
	fileAsDir := put(mustDir(t, dirEntry{name: "d", c: put(mustFile(t, link{leaf, 5}, link{leaf, 5}), codecJSON), kind: KindDir, size: 10}), codecJSON)

	for name, root := range map[string]cid.Cid{"size lie": lying, "file node as dir": fileAsDir} {
		parent := t.TempDir()
		err := Export(t.Context(), root, filepath.Join(parent, "out"), bs)
		if err == nil {
			t.Errorf("%s: exported", name)
		}
		if list, _ := os.ReadDir(parent); len(list) != 0 {
			t.Errorf("%s: left behind %v", name, list)
		}
	}
}

func mustDir(t *testing.T, entries ...dirEntry) []byte {
	data, _, err := encodeDirNode(entries)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func mustFile(t *testing.T, links ...link) []byte {
	data, _, err := encodeFileNode(links)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestListResolveStat(t *testing.T) {
	bs := newStore(t)
	src := t.TempDir()
	writeTree(t, src, tree{"a/b/c.txt": []byte("ccc"), "a/d.txt": []byte("dd"), "e": nil})
	res, err := Import(t.Context(), src, bs, nil)
	if err != nil {
		t.Fatal(err)
	}
	list, err := List(res.Root, bs)
	if err != nil || len(list) != 2 || list[0].Name != "a" || list[0].Kind != KindDir || list[0].Size != 5 || list[1].Name != "e" || list[1].Size != 0 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	for _, tc := range []struct {
		path string
		kind string
		size int64
		err  error
	}{
		{"", KindDir, 5, nil},
		{"/", KindDir, 5, nil},
		{"a", KindDir, 5, nil},
		{"a/b/c.txt", KindFile, 3, nil},
		{"/a//d.txt", KindFile, 2, nil},
		{"a/nope", "", 0, ErrNoEntry},
		{"a/d.txt/x", "", 0, nil},
		{"a/../e", "", 0, nil},
	} {
		c, err := ResolvePath(res.Root, tc.path, bs)
		if tc.kind == "" {
			if err == nil || (tc.err != nil && !errors.Is(err, tc.err)) {
				t.Errorf("ResolvePath(%q) = %s, %v; want error %v", tc.path, c, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ResolvePath(%q): %v", tc.path, err)
			continue
		}
		kind, size, err := Stat(c, bs)
		if err != nil || kind != tc.kind || size != tc.size {
			t.Errorf("Stat(%q) = %s %d %v", tc.path, kind, size, err)
		}
	}
	f, _ := ResolvePath(res.Root, "a/d.txt", bs)
	if _, err := List(f, bs); err == nil {
		t.Error("List of a file succeeded")
	}
}
