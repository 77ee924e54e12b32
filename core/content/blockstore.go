package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"

	cid "github.com/ipfs/go-cid"
)

// tmpDirName holds blocks being written. It sits inside the store so that the
// final rename never crosses file systems; nothing else lives there, so opening
// the store can empty it without scanning the shards.
const tmpDirName = "tmp"

// Blockstore keeps one file per block: dir/<shard>/<CID in base32>, where shard
// is the two characters before the CID's last one (hash bytes, so the 1024
// shards fill evenly). A block is written to dir/tmp, synced, then renamed into
// place: a crash leaves either the whole block or none of it.
//
// One process owns a store: opening it removes the temp files of others.
// Methods are safe for concurrent use.
type Blockstore struct {
	dir string
	// gcMu keeps GC from deleting the blocks of an import that is still running
	// (they are not pinned until it returns): Put and Import hold it shared.
	gcMu sync.RWMutex
	// checked holds blocks hashed since this process wrote or read them, so
	// serving a block again does not hash it again.
	checked checkedSet
	// read counts the bytes read from block files, for tests.
	read atomic.Int64
	// used is what the store holds, counted once by a scan and then kept
	// as blocks come and go: a get checks it against the cache bound, and
	// a scan per get would cost as much as the store is large.
	used usage
}

// usage is the store's blocks and bytes. mu is held across the first
// scan and around every change a counted store sees (a block's rename into
// place, a removal), so that none is counted twice or missed.
type usage struct {
	mu      sync.Mutex
	counted bool
	blocks  int
	bytes   int64
	scans   atomic.Int64 // full scans done, for tests
}

// checkedSet is a bounded set of CIDs; when full it starts over, which only
// costs some re-hashing.
type checkedSet struct {
	mu  sync.Mutex
	set map[cid.Cid]struct{}
}

const maxChecked = 1 << 16

func (s *checkedSet) add(c cid.Cid) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set == nil || len(s.set) >= maxChecked {
		s.set = make(map[cid.Cid]struct{})
	}
	s.set[c] = struct{}{}
}

func (s *checkedSet) has(c cid.Cid) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.set[c]
	return ok
}

func (s *checkedSet) remove(c cid.Cid) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.set, c)
}

// tempFile is what put writes through; a variable so tests can make writes fail
// the way a full disk does.
type tempFile interface {
	io.Writer
	Sync() error
	Close() error
	Name() string
}

var createTemp = func(dir string) (tempFile, error) { return os.CreateTemp(dir, "put-*") }

// OpenBlockstore opens (creating if needed) the store in dir and removes the
// temp files a crash may have left.
func OpenBlockstore(dir string) (*Blockstore, error) {
	tmp := filepath.Join(dir, tmpDirName)
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("open block store %s: %w; check the repo path and its permissions", dir, err)
	}
	stray, err := os.ReadDir(tmp)
	if err != nil {
		return nil, fmt.Errorf("open block store %s: %w", dir, err)
	}
	for _, e := range stray {
		if err := os.RemoveAll(filepath.Join(tmp, e.Name())); err != nil {
			return nil, fmt.Errorf("open block store %s: remove stray temp file: %w", dir, err)
		}
	}
	return &Blockstore{dir: dir}, nil
}

// path is where block c lives. A CID this format never uses cannot be in the
// store, so its error wraps ErrNotFound: a peer asking for one is told "don't
// have", not shown a store failure.
func (b *Blockstore) path(c cid.Cid) (string, error) {
	if err := checkCID(c); err != nil {
		return "", fmt.Errorf("%w: %w", err, ErrNotFound)
	}
	name := c.String()
	return filepath.Join(b.dir, name[len(name)-3:len(name)-1], name), nil
}

// Has reports whether the block is in the store.
func (b *Blockstore) Has(c cid.Cid) (bool, error) {
	p, err := b.path(c)
	if err != nil {
		return false, nil
	}
	_, err = os.Stat(p)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("block store: stat %s: %w", c, err)
	}
}

// Get returns the block's bytes, or an error wrapping ErrNotFound. A block not
// yet hashed by this process is verified first (see Put).
func (b *Blockstore) Get(c cid.Cid) ([]byte, error) {
	r, err := b.GetRange(c, 0, 0)
	return r.Data, err
}

// BlockRange is part of a block, as a range request asks for it.
type BlockRange struct {
	Data []byte // the bytes asked for
	Size int64  // the whole block's size
	// Read is what answering cost in bytes read from disk: the range, or
	// the whole block the first time this process reads it (to verify it).
	Read int64
}

// ErrRange is wrapped by GetRange's error for a range starting past the block's end.
var ErrRange = errors.New("range starts past the end of the block")

// GetRange returns length bytes of the block from offset (length 0, or past
// the end: to the end). Only those bytes are read, once the block has been
// verified in this process; a damaged block is never returned, in whole or
// in part.
func (b *Blockstore) GetRange(c cid.Cid, offset, length uint64) (BlockRange, error) {
	return b.GetRangeInto(c, offset, length, nil)
}

// GetRangeInto is GetRange reading into scratch where it is large enough:
// the answer's Data then shares scratch's memory, so a server answering
// block after block reuses one buffer instead of allocating each time.
func (b *Blockstore) GetRangeInto(c cid.Cid, offset, length uint64, scratch []byte) (BlockRange, error) {
	p, err := b.path(c)
	if err != nil {
		return BlockRange{}, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return BlockRange{}, fmt.Errorf("block %s: %w", c, ErrNotFound)
	}
	if err != nil {
		return BlockRange{}, fmt.Errorf("block store: read %s: %w", c, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return BlockRange{}, fmt.Errorf("block store: read %s: %w", c, err)
	}
	size := st.Size()
	if size > MaxBlockSize {
		return BlockRange{}, fmt.Errorf("block store: %s is %d bytes, over the %d-byte limit; the file was altered outside avnode, delete it", p, size, MaxBlockSize)
	}
	out := BlockRange{Size: size}
	if offset > uint64(size) {
		return out, fmt.Errorf("block %s: range at %d of a %d-byte block: %w", c, offset, size, ErrRange)
	}
	end := uint64(size)
	// Compare lengths, not sums: offset+length may wrap around.
	if length > 0 && length < end-offset {
		end = offset + length
	}
	if b.checked.has(c) {
		out.Data = sized(scratch, int(end-offset))
		n, err := f.ReadAt(out.Data, int64(offset))
		out.Read = int64(n)
		b.read.Add(out.Read)
		if n < len(out.Data) {
			return out, fmt.Errorf("block store: read %s: %d of %d bytes: %v", c, n, len(out.Data), err)
		}
		return out, nil
	}
	data := sized(scratch, int(size))
	n, err := io.ReadFull(f, data)
	out.Read = int64(n)
	b.read.Add(out.Read)
	if err != nil {
		return out, fmt.Errorf("block store: read %s: %w", c, err)
	}
	if err := VerifyBlock(c, data); err != nil {
		b.remove(p, size) // damaged on disk (a crash before Sync, or outside meddling): fetch it again
		return out, fmt.Errorf("block %s was damaged on disk and has been removed (%v): %w", c, err, ErrNotFound)
	}
	b.checked.add(c)
	out.Data = data[offset:end]
	return out, nil
}

// sized is buf cut to n bytes if it has room for them, else a new slice.
func sized(buf []byte, n int) []byte {
	if cap(buf) >= n {
		return buf[:n]
	}
	return make([]byte, n)
}

// Sync flushes every block written so far to disk, in one call for the
// whole file system (syncFS).
func (b *Blockstore) Sync() error {
	d, err := os.Open(b.dir)
	if err != nil {
		return fmt.Errorf("block store: sync: %w", err)
	}
	defer d.Close()
	if err := syncFS(d); err != nil {
		return fmt.Errorf("block store: sync %s: %w", b.dir, err)
	}
	return nil
}

// GetSize returns the block's size in bytes, or an error wrapping ErrNotFound.
func (b *Blockstore) GetSize(c cid.Cid) (int, error) {
	p, err := b.path(c)
	if err != nil {
		return 0, err
	}
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("block %s: %w", c, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("block store: stat %s: %w", c, err)
	}
	return int(st.Size()), nil
}

// Put verifies data against c and stores it; it does nothing if the block is
// already there. A block that does not verify is never written.
func (b *Blockstore) Put(c cid.Cid, data []byte) error {
	if err := VerifyBlock(c, data); err != nil {
		return fmt.Errorf("store block: %w", err)
	}
	return b.PutVerified(c, data)
}

// PutVerified stores a block whose bytes the caller has just checked
// against c with VerifyBlock, without hashing them again: a fetch checks
// each block as it arrives, before anything else looks at it.
func (b *Blockstore) PutVerified(c cid.Cid, data []byte) error {
	b.gcMu.RLock()
	defer b.gcMu.RUnlock()
	_, err := b.put(c, data)
	return err
}

// put stores a block the caller has already hashed, and says whether it was new.
func (b *Blockstore) put(c cid.Cid, data []byte) (added bool, err error) {
	p, err := b.path(c)
	if err != nil {
		return false, err
	}
	if _, err := os.Stat(p); err == nil {
		return false, nil
	}
	fail := func(err error) (bool, error) {
		hint := ""
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			hint = "; the disk is full: free space, or remove unpinned blocks with garbage collection"
		}
		return false, fmt.Errorf("store block %s in %s: %w%s", c, b.dir, err, hint)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fail(err)
	}
	f, err := createTemp(filepath.Join(b.dir, tmpDirName))
	if err != nil {
		return fail(err)
	}
	tmp := f.Name()
	// No fsync per block: that would cap fetches at the disk's sync rate.
	// Callers Sync once after a batch (import, fetch); a block damaged by a
	// crash before that is caught by Get, which verifies, and fetched again.
	_, werr := f.Write(data)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = b.renameIn(tmp, p, int64(len(data)))
	}
	if werr != nil {
		os.Remove(tmp)
		return fail(werr)
	}
	b.checked.add(c)
	return true, nil
}

// Delete removes the block; removing an absent block is not an error.
func (b *Blockstore) Delete(c cid.Cid) error {
	p, err := b.path(c)
	if err != nil {
		return nil
	}
	b.checked.remove(c)
	st, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = b.remove(p, st.Size())
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("block store: delete %s: %w", c, err)
	}
	return nil
}

// renameIn moves a written block of size bytes into place, counting it.
func (b *Blockstore) renameIn(tmp, p string, size int64) error {
	b.used.mu.Lock()
	defer b.used.mu.Unlock()
	if err := os.Rename(tmp, p); err != nil {
		return err
	}
	if b.used.counted {
		b.used.blocks++
		b.used.bytes += size
	}
	return nil
}

// remove deletes the block file at p, of size bytes, uncounting it.
func (b *Blockstore) remove(p string, size int64) error {
	b.used.mu.Lock()
	defer b.used.mu.Unlock()
	if err := os.Remove(p); err != nil {
		return err
	}
	if b.used.counted {
		b.used.blocks--
		b.used.bytes -= size
	}
	return nil
}

// AllKeys lists every block in the store. Files that are not blocks are skipped.
func (b *Blockstore) AllKeys(ctx context.Context) ([]cid.Cid, error) {
	var keys []cid.Cid
	err := b.scan(ctx, func(c cid.Cid, _ fs.DirEntry) error {
		keys = append(keys, c)
		return nil
	})
	return keys, err
}

// Usage is the number of blocks in the store and their bytes: a scan the
// first time, the running count after.
func (b *Blockstore) Usage(ctx context.Context) (blocks int, bytes int64, err error) {
	b.used.mu.Lock()
	defer b.used.mu.Unlock()
	if !b.used.counted {
		if b.used.blocks, b.used.bytes, err = b.count(ctx); err != nil {
			return 0, 0, err
		}
		b.used.counted = true
	}
	return b.used.blocks, b.used.bytes, nil
}

// count scans the store for its blocks and their bytes.
func (b *Blockstore) count(ctx context.Context) (blocks int, bytes int64, err error) {
	b.used.scans.Add(1)
	err = b.scan(ctx, func(_ cid.Cid, e fs.DirEntry) error {
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted since the directory was read
		}
		if err != nil {
			return err
		}
		blocks++
		bytes += info.Size()
		return nil
	})
	return blocks, bytes, err
}

func (b *Blockstore) scan(ctx context.Context, fn func(cid.Cid, fs.DirEntry) error) error {
	shards, err := os.ReadDir(b.dir)
	if err != nil {
		return fmt.Errorf("block store %s: %w", b.dir, err)
	}
	for _, s := range shards {
		if !s.IsDir() || len(s.Name()) != 2 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		files, err := os.ReadDir(filepath.Join(b.dir, s.Name()))
		if err != nil {
			return fmt.Errorf("block store %s: %w", b.dir, err)
		}
		for _, f := range files {
			c, err := cid.Decode(f.Name())
			if err != nil || !f.Type().IsRegular() || c.String() != f.Name() {
				continue
			}
			if err := fn(c, f); err != nil {
				return fmt.Errorf("block store %s: %w", b.dir, err)
			}
		}
	}
	return nil
}
