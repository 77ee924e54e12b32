package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	cid "github.com/ipfs/go-cid"
)

// Entry is one directory entry, as listings show it.
type Entry struct {
	Name string `json:"name"`
	CID  string `json:"cid"`
	Kind string `json:"kind"` // KindFile or KindDir
	Size int64  `json:"size"` // file bytes, for a directory all of them below it
}

// loadNode reads and decodes the node block c.
func loadNode(c cid.Cid, bs *Blockstore) (*node, error) {
	if err := checkCID(c); err != nil {
		return nil, err
	}
	if c.Type() != codecJSON {
		return nil, fmt.Errorf("%s is a raw block (a file of at most one chunk), not a node", c)
	}
	data, err := bs.Get(c)
	if err != nil {
		return nil, err
	}
	n, err := decodeNode(data)
	if err != nil {
		return nil, fmt.Errorf("block %s: %w", c, err)
	}
	return n, nil
}

func loadDir(c cid.Cid, bs *Blockstore) (*node, error) {
	if c.Defined() && c.Type() == codecRaw {
		return nil, fmt.Errorf("%s is a file, not a directory", c)
	}
	n, err := loadNode(c, bs)
	if err != nil {
		return nil, err
	}
	if n.kind != KindDir {
		return nil, fmt.Errorf("%s is a file, not a directory", c)
	}
	return n, nil
}

// Stat says whether root is a file or a directory and how many file bytes it holds.
func Stat(root cid.Cid, bs *Blockstore) (kind string, size int64, err error) {
	if err := checkCID(root); err != nil {
		return "", 0, fmt.Errorf("stat: %w", err)
	}
	if root.Type() == codecRaw {
		n, err := bs.GetSize(root)
		if err != nil {
			return "", 0, fmt.Errorf("stat %s: %w", root, err)
		}
		return KindFile, int64(n), nil
	}
	n, err := loadNode(root, bs)
	if err != nil {
		return "", 0, fmt.Errorf("stat %s: %w", root, err)
	}
	return n.kind, n.size, nil
}

// List returns the entries of the directory node dir, sorted by name.
func List(dir cid.Cid, bs *Blockstore) ([]Entry, error) {
	n, err := loadDir(dir, bs)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	out := make([]Entry, len(n.entries))
	for i, e := range n.entries {
		out[i] = Entry{Name: e.name, CID: e.c.String(), Kind: e.kind, Size: e.size}
	}
	return out, nil
}

// ResolvePath follows a slash-separated path ("a/b/c.txt") down from the
// directory root; "" is root itself. A missing element gives an error wrapping
// ErrNoEntry; a missing block one wrapping ErrNotFound.
func ResolvePath(root cid.Cid, path string, bs *Blockstore) (cid.Cid, error) {
	if err := checkCID(root); err != nil {
		return cid.Undef, fmt.Errorf("resolve %q: %w", path, err)
	}
	cur := root
	var walked []string
	for _, el := range strings.Split(path, "/") {
		if el == "" {
			continue
		}
		if el == "." || el == ".." {
			return cid.Undef, fmt.Errorf("resolve %s/%s: %q is not allowed in a path", root, path, el)
		}
		n, err := loadDir(cur, bs)
		if err != nil {
			return cid.Undef, fmt.Errorf("resolve %s/%s: at /%s: %w", root, path, strings.Join(walked, "/"), err)
		}
		i, ok := slices.BinarySearchFunc(n.entries, el, func(e dirEntry, name string) int {
			return strings.Compare(e.name, name)
		})
		if !ok {
			return cid.Undef, fmt.Errorf("resolve %s/%s: %q in /%s: %w", root, path, el, strings.Join(walked, "/"), ErrNoEntry)
		}
		cur = n.entries[i].c
		walked = append(walked, el)
	}
	return cur, nil
}

// Walk visits every block reachable from root that is in bs, each once, parents
// before children. A missing block is reported to missing (if not nil) and not
// descended into. It stops at the first error of visit, of the store, or of a
// malformed node.
func Walk(ctx context.Context, root cid.Cid, bs *Blockstore, visit func(cid.Cid) error, missing func(cid.Cid)) error {
	return walk(ctx, root, bs, make(map[string]struct{}), visit, missing)
}

// walk is Walk with the set of blocks already seen, so GC can share it across pins.
func walk(ctx context.Context, root cid.Cid, bs *Blockstore, seen map[string]struct{}, visit func(cid.Cid) error, missing func(cid.Cid)) error {
	stack := []cid.Cid{root}
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		k := c.KeyString()
		if _, ok := seen[k]; ok {
			continue
		}
		seen[k] = struct{}{}
		if err := ctx.Err(); err != nil {
			return err
		}
		var links []cid.Cid
		if c.Type() == codecRaw {
			has, err := bs.Has(c)
			if err != nil {
				return fmt.Errorf("walk %s: %w", root, err)
			}
			if !has {
				if missing != nil {
					missing(c)
				}
				continue
			}
		} else {
			data, err := bs.Get(c)
			if errors.Is(err, ErrNotFound) {
				if missing != nil {
					missing(c)
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("walk %s: %w", root, err)
			}
			if links, err = Links(c, data); err != nil {
				return fmt.Errorf("walk %s: %w", root, err)
			}
		}
		if visit != nil {
			if err := visit(c); err != nil {
				return err
			}
		}
		for i := len(links) - 1; i >= 0; i-- {
			stack = append(stack, links[i])
		}
	}
	return nil
}

// WriteFile streams the file at root (a raw block or a file node) to w and
// returns the bytes written. It checks every size the DAG declares.
func WriteFile(ctx context.Context, root cid.Cid, w io.Writer, bs *Blockstore) (int64, error) {
	return WriteRange(ctx, root, 0, 0, w, bs)
}

// WriteRange is WriteFile for length bytes from offset (length 0: to the
// end), as byte-range requests ask. Chunks wholly before offset are skipped
// without being read.
func WriteRange(ctx context.Context, root cid.Cid, offset, length int64, w io.Writer, bs *Blockstore) (int64, error) {
	if err := checkCID(root); err != nil {
		return 0, fmt.Errorf("write file: %w", err)
	}
	if offset < 0 || length < 0 {
		return 0, fmt.Errorf("write file %s: negative offset or length", root)
	}
	win := &window{skip: offset, left: length}
	if length == 0 {
		win.left = -1
	}
	if err := writeFile(ctx, root, -1, w, bs, 0, win); err != nil {
		return win.written, fmt.Errorf("write file %s: %w", root, err)
	}
	return win.written, nil
}

// window is the part of a file still to write: skip bytes, then left bytes
// (-1: all the rest).
type window struct {
	skip, left, written int64
}

func wholeFile() *window { return &window{left: -1} }

func (win *window) done() bool { return win.left == 0 }

// write writes what of data falls in the window.
func (win *window) write(w io.Writer, data []byte) error {
	if win.skip >= int64(len(data)) {
		win.skip -= int64(len(data))
		return nil
	}
	data = data[win.skip:]
	win.skip = 0
	if win.left >= 0 && int64(len(data)) > win.left {
		data = data[:win.left]
	}
	n, err := w.Write(data)
	win.written += int64(n)
	if win.left >= 0 {
		win.left -= int64(n)
	}
	return err
}

// writeRaw writes what of the raw block c falls in the window, reading
// only that part of it (a range costs what it reads).
func (win *window) writeRaw(c cid.Cid, want int64, w io.Writer, bs *Blockstore) error {
	var length uint64 // 0: to the end
	if win.left > 0 {
		length = uint64(win.left)
	}
	r, err := bs.GetRange(c, uint64(win.skip), length)
	if err != nil && !errors.Is(err, ErrRange) {
		return err
	}
	if want >= 0 && r.Size != want {
		return sizeMismatch(c, want, r.Size)
	}
	if err != nil { // the window starts past this block
		win.skip -= r.Size
		return nil
	}
	win.skip = 0
	return win.write(w, r.Data)
}

// writeFile writes the file c, which its parent says holds want bytes (-1: unknown).
func writeFile(ctx context.Context, c cid.Cid, want int64, w io.Writer, bs *Blockstore, depth int, win *window) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if depth > maxFileDepth {
		return fmt.Errorf("block %s: file nodes nested over %d deep; the DAG is malformed", c, maxFileDepth)
	}
	if c.Type() == codecRaw {
		return win.writeRaw(c, want, w, bs)
	}
	n, err := loadNode(c, bs)
	if err != nil {
		return err
	}
	if n.kind != KindFile {
		return fmt.Errorf("%s is a directory, not a file", c)
	}
	if want >= 0 && n.size != want {
		return sizeMismatch(c, want, n.size)
	}
	for _, l := range n.chunks {
		if win.done() {
			return nil
		}
		if win.skip >= l.size {
			win.skip -= l.size
			continue
		}
		if err := writeFile(ctx, l.c, l.size, w, bs, depth+1, win); err != nil {
			return err
		}
	}
	return nil
}

func sizeMismatch(c cid.Cid, want, got int64) error {
	return fmt.Errorf("block %s holds %d bytes but its parent says %d; the DAG is malformed, ask its publisher to re-publish", c, got, want)
}

// Export writes the DAG at root to path: a file, or a directory tree. Every
// block must be present; otherwise the error wraps ErrNotFound and names the
// first missing CID, and nothing is written. path must not exist, or be an
// empty directory (for a directory root). A failed export leaves nothing behind.
func Export(ctx context.Context, root cid.Cid, path string, bs *Blockstore) error {
	fail := func(err error) error { return fmt.Errorf("export %s to %s: %w", root, path, err) }
	if err := checkCID(root); err != nil {
		return fail(err)
	}
	var missing []cid.Cid
	if err := Walk(ctx, root, bs, nil, func(c cid.Cid) { missing = append(missing, c) }); err != nil {
		return fail(err)
	}
	if len(missing) > 0 {
		return fail(fmt.Errorf("%d block(s) missing, the first %s; fetch the content first: %w", len(missing), missing[0], ErrNotFound))
	}
	kind, size, err := Stat(root, bs)
	if err != nil {
		return fail(err)
	}
	target, err := filepath.Abs(path)
	if err != nil {
		return fail(err)
	}
	ex := exporter{ctx: ctx, bs: bs}

	fi, err := os.Lstat(target)
	switch {
	case err == nil:
		if kind == KindFile || !fi.IsDir() {
			return fail(errors.New("the path already exists; choose a new one (or an empty directory for a directory)"))
		}
		list, err := os.ReadDir(target)
		if err != nil {
			return fail(err)
		}
		if len(list) > 0 {
			return fail(errors.New("the directory is not empty; choose a new path or an empty directory"))
		}
		if err := ex.dir(root, target, size, 0); err != nil {
			emptyDir(target) // it was empty before
			return fail(err)
		}
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fail(err)
	}

	// A new path: build beside it under a hidden name, then rename into place,
	// so no one sees half an export and a crash leaves only a dot-file.
	parent, base := filepath.Dir(target), filepath.Base(target)
	if kind == KindFile {
		f, err := os.CreateTemp(parent, "."+base+".partial-*")
		if err != nil {
			return fail(err)
		}
		err = writeFile(ctx, root, size, f, bs, 0, wholeFile())
		if err == nil {
			err = f.Chmod(0o644)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = rename(f.Name(), target)
		}
		if err != nil {
			os.Remove(f.Name())
			return fail(err)
		}
		return nil
	}
	tmp, err := os.MkdirTemp(parent, "."+base+".partial-*")
	if err != nil {
		return fail(err)
	}
	err = ex.dir(root, tmp, size, 0)
	if err == nil {
		err = os.Chmod(tmp, 0o755)
	}
	if err == nil {
		err = rename(tmp, target)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return fail(err)
	}
	return nil
}

// rename refuses to replace a path that appeared while the export ran.
func rename(from, to string) error {
	if _, err := os.Lstat(to); err == nil {
		return fmt.Errorf("%s appeared while exporting; nothing was replaced", to)
	}
	return os.Rename(from, to)
}

func emptyDir(dir string) {
	list, _ := os.ReadDir(dir)
	for _, e := range list {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

type exporter struct {
	ctx context.Context
	bs  *Blockstore
}

// dir writes the entries of dir node c into the existing directory dst.
func (ex *exporter) dir(c cid.Cid, dst string, want int64, depth int) error {
	if depth >= maxDirDepth {
		return fmt.Errorf("directories nested over %d deep at %s", maxDirDepth, dst)
	}
	n, err := loadDir(c, ex.bs)
	if err != nil {
		return err
	}
	if n.size != want {
		return sizeMismatch(c, want, n.size)
	}
	for _, e := range n.entries {
		if err := ex.ctx.Err(); err != nil {
			return err
		}
		// Decoding checked the name already; a name is what keeps the export
		// inside dst, so check it again where it is used.
		if err := checkName(e.name); err != nil {
			return fmt.Errorf("block %s: %w", c, err)
		}
		p := filepath.Join(dst, e.name)
		if filepath.Dir(p) != filepath.Clean(dst) {
			return fmt.Errorf("block %s: entry %q leaves its directory", c, e.name)
		}
		switch e.kind {
		case KindDir:
			if err := os.Mkdir(p, 0o755); err != nil {
				return err
			}
			if err := ex.dir(e.c, p, e.size, depth+1); err != nil {
				return err
			}
		case KindFile:
			if err := ex.file(e.c, p, e.size); err != nil {
				return err
			}
		default:
			return fmt.Errorf("block %s: entry %q has kind %q", c, e.name, e.kind)
		}
	}
	return nil
}

func (ex *exporter) file(c cid.Cid, p string, want int64) error {
	// O_EXCL: on a case-insensitive file system "A" and "a" collide; say so
	// instead of letting one overwrite the other.
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	err = writeFile(ex.ctx, c, want, f, ex.bs, 0, wholeFile())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}
