package content

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	cid "github.com/ipfs/go-cid"
)

// ImportResult describes an imported DAG.
type ImportResult struct {
	Root      cid.Cid
	Files     int
	Dirs      int
	Blocks    int   // blocks in the DAG
	NewBlocks int   // blocks that were not in the store before (re-import of an unchanged dir: 0)
	Bytes     int64 // file bytes
}

// Import reads path (a file or a directory) into blocks in bs and returns the root.
//
// A symlink is followed when its target lies inside the imported root, and the
// target is imported as if it stood where the link is; a symlink out of the
// root, a broken one or one that forms a cycle is refused. Devices, sockets and
// fifos are refused. A file that changes while it is read is an error, and no
// root is returned. Memory stays bounded: files are streamed one chunk at a time.
// progress, if not nil, is called with the cumulative count of file bytes read.
//
// Blocks written before an error stay in the store unpinned; GC removes them.
func Import(ctx context.Context, path string, bs *Blockstore, progress func(done int64)) (ImportResult, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return ImportResult{}, fmt.Errorf("import %s: %w", path, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return ImportResult{}, fmt.Errorf("import %s: %w; check the path", path, err)
	}
	bs.gcMu.RLock()
	defer bs.gcMu.RUnlock()
	im := &importer{
		ctx:      ctx,
		bs:       bs,
		progress: progress,
		root:     real,
		chunks:   newChunkWriter(bs),
		seen:     make(map[string]struct{}),
		linked:   make(map[string]imported),
		open:     make(map[string]bool),
	}
	r, err := im.importPath(real, 0)
	if werr := im.chunks.close(); err == nil && werr != nil {
		err = fmt.Errorf("import %s: %w", path, werr)
	}
	if err != nil {
		return ImportResult{}, err
	}
	im.res.NewBlocks += int(im.chunks.added.Load())
	im.res.Root, im.res.Files, im.res.Dirs, im.res.Bytes = r.c, r.files, r.dirs, r.size
	if im.res.NewBlocks > 0 {
		if err := bs.Sync(); err != nil {
			return ImportResult{}, fmt.Errorf("import %s: %w", path, err)
		}
	}
	return im.res, nil
}

type importer struct {
	ctx      context.Context
	bs       *Blockstore
	progress func(int64)
	root     string // real path of what is imported
	chunks   *chunkWriter
	done     int64
	res      ImportResult
	seen     map[string]struct{} // blocks of this DAG, to count each once
	linked   map[string]imported // symlink targets already imported, by real path
	open     map[string]bool     // directories being imported, to catch symlink cycles
}

type imported struct {
	c           cid.Cid
	kind        string
	size        int64
	files, dirs int
}

func (im *importer) putBlock(c cid.Cid, data []byte) error {
	k := c.KeyString()
	if _, ok := im.seen[k]; ok {
		return nil
	}
	if c.Type() == codecJSON {
		// A node goes to disk only after the chunks below it: a failed chunk
		// write must not leave a node that claims a complete file.
		if err := im.chunks.flush(); err != nil {
			return fmt.Errorf("import %s: %w", im.root, err)
		}
	}
	added, err := im.bs.put(c, data)
	if err != nil {
		return fmt.Errorf("import %s: %w", im.root, err)
	}
	im.seen[k] = struct{}{}
	im.res.Blocks++
	if added {
		im.res.NewBlocks++
	}
	return nil
}

// putChunk hands a chunk, read into buf, to the writers; buf is theirs now.
func (im *importer) putChunk(c cid.Cid, chunk, buf []byte) error {
	k := c.KeyString()
	if _, ok := im.seen[k]; ok {
		im.chunks.release(buf)
		return nil
	}
	im.seen[k] = struct{}{}
	im.res.Blocks++
	return im.chunks.write(c, chunk, buf)
}

func (im *importer) importPath(p string, depth int) (imported, error) {
	if err := im.ctx.Err(); err != nil {
		return imported{}, fmt.Errorf("import %s: %w", im.root, err)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return imported{}, fmt.Errorf("import %s: %w", p, err)
	}
	switch mode := fi.Mode(); {
	case mode.IsRegular():
		return im.importFile(p, fi)
	case mode.IsDir():
		return im.importDir(p, depth)
	case mode&fs.ModeSymlink != 0:
		return im.importLink(p, depth)
	default:
		return imported{}, fmt.Errorf("import %s: it is a %s, not a regular file or directory; only files, directories and symlinks can be published: remove it or move it out of %s",
			p, specialKind(mode), im.root)
	}
}

func specialKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "fifo"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file (" + m.String() + ")"
}

func (im *importer) importLink(p string, depth int) (imported, error) {
	target, err := filepath.EvalSymlinks(p)
	if err != nil {
		return imported{}, fmt.Errorf("import %s: broken symlink (%w); fix or remove it", p, err)
	}
	rel, err := filepath.Rel(im.root, target)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return imported{}, fmt.Errorf("import %s: symlink points to %s, outside %s; replace it with a copy of what it points to, or remove it",
			p, target, im.root)
	}
	if im.open[target] {
		return imported{}, fmt.Errorf("import %s: symlink points to %s, which contains it (a cycle); remove it", p, target)
	}
	if r, ok := im.linked[target]; ok {
		return r, nil
	}
	r, err := im.importPath(target, depth)
	if err != nil {
		return imported{}, err
	}
	im.linked[target] = r
	return r, nil
}

func (im *importer) importDir(p string, depth int) (imported, error) {
	if depth >= maxDirDepth {
		return imported{}, fmt.Errorf("import %s: directories nested over %d deep; flatten the tree", p, maxDirDepth)
	}
	im.open[p] = true
	defer delete(im.open, p)
	list, err := os.ReadDir(p)
	if err != nil {
		return imported{}, fmt.Errorf("import %s: %w", p, err)
	}
	r := imported{kind: KindDir, dirs: 1}
	entries := make([]dirEntry, 0, len(list))
	for _, e := range list {
		name := e.Name()
		if err := checkName(name); err != nil {
			return imported{}, fmt.Errorf("import %s: %v; rename it", filepath.Join(p, name), err)
		}
		sub, err := im.importPath(filepath.Join(p, name), depth+1)
		if err != nil {
			return imported{}, err
		}
		entries = append(entries, dirEntry{name: name, c: sub.c, kind: sub.kind, size: sub.size})
		r.files += sub.files
		r.dirs += sub.dirs
	}
	data, size, err := encodeDirNode(entries)
	if err != nil {
		return imported{}, fmt.Errorf("import %s: %v; split the directory into subdirectories", p, err)
	}
	r.c, r.size = sumCID(codecJSON, data), size
	if err := im.putBlock(r.c, data); err != nil {
		return imported{}, err
	}
	return r, nil
}

func (im *importer) importFile(p string, before fs.FileInfo) (imported, error) {
	// O_NONBLOCK: if p was swapped for a fifo since Lstat, opening must not hang.
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return imported{}, fmt.Errorf("import %s: %w", p, err)
	}
	defer f.Close()
	changed := func(how string) (imported, error) {
		return imported{}, fmt.Errorf("import %s: the file changed while it was read (%s); nothing was published from it: retry once nothing writes to it", p, how)
	}
	if st, err := f.Stat(); err != nil {
		return imported{}, fmt.Errorf("import %s: %w", p, err)
	} else if !os.SameFile(st, before) || !st.Mode().IsRegular() {
		return changed("replaced by another file")
	}
	size, mtime := before.Size(), before.ModTime()
	fb := fileBuilder{im: im}
	var off int64
	for {
		if err := im.ctx.Err(); err != nil {
			return imported{}, fmt.Errorf("import %s: %w", p, err)
		}
		buf := im.chunks.buffer()
		n, rerr := io.ReadFull(f, buf)
		if n == 0 {
			im.chunks.release(buf)
		} else {
			off += int64(n)
			if off > size {
				im.chunks.release(buf)
				return changed(fmt.Sprintf("it grew past %d bytes", size))
			}
			chunk := buf[:n]
			c := sumCID(codecRaw, chunk)
			if err := im.putChunk(c, chunk, buf); err != nil {
				return imported{}, fmt.Errorf("import %s: %w", p, err)
			}
			if err := fb.add(0, link{c: c, size: int64(n)}); err != nil {
				return imported{}, fmt.Errorf("import %s: %w", p, err)
			}
			im.done += int64(n)
			if im.progress != nil {
				im.progress(im.done)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return imported{}, fmt.Errorf("import %s: read: %w", p, rerr)
		}
	}
	if off != size {
		return changed(fmt.Sprintf("read %d bytes, expected %d", off, size))
	}
	after, err := f.Stat()
	if err != nil {
		return imported{}, fmt.Errorf("import %s: %w", p, err)
	}
	if after.Size() != size || !after.ModTime().Equal(mtime) {
		return changed("its size or modification time moved")
	}
	root, err := fb.finish()
	if err != nil {
		return imported{}, fmt.Errorf("import %s: %w", p, err)
	}
	return imported{c: root.c, kind: KindFile, size: root.size, files: 1}, nil
}

// fileBuilder assembles a file's chunks into a tree of file nodes as they
// stream in. levels[0] holds links to chunks, levels[i+1] links to full nodes
// of levels[i]; a level that fills is written out at once, so a file of any
// size needs at most maxFileLinks links per level in memory.
type fileBuilder struct {
	im     *importer
	levels [][]link
}

func (fb *fileBuilder) add(level int, l link) error {
	for len(fb.levels) <= level {
		fb.levels = append(fb.levels, nil)
	}
	fb.levels[level] = append(fb.levels[level], l)
	if len(fb.levels[level]) < maxFileLinks {
		return nil
	}
	n, err := fb.node(fb.levels[level])
	if err != nil {
		return err
	}
	fb.levels[level] = nil
	return fb.add(level+1, n)
}

func (fb *fileBuilder) node(links []link) (link, error) {
	data, size, err := encodeFileNode(links)
	if err != nil {
		return link{}, err
	}
	c := sumCID(codecJSON, data)
	if err := fb.im.putBlock(c, data); err != nil {
		return link{}, err
	}
	return link{c: c, size: size}, nil
}

// finish folds the partial levels upward: everything in a lower level comes
// after everything in the higher ones, so it is appended there, as a single
// link when one suffices. A file of at most one chunk is that chunk.
func (fb *fileBuilder) finish() (link, error) {
	top := len(fb.levels) - 1
	for top >= 0 && len(fb.levels[top]) == 0 {
		top--
	}
	if top < 0 {
		empty := []byte{}
		c := sumCID(codecRaw, empty)
		return link{c: c, size: 0}, fb.im.putBlock(c, empty)
	}
	for i := 0; i < top; i++ {
		switch len(fb.levels[i]) {
		case 0:
		case 1:
			fb.levels[i+1] = append(fb.levels[i+1], fb.levels[i][0])
		default:
			n, err := fb.node(fb.levels[i])
			if err != nil {
				return link{}, err
			}
			fb.levels[i+1] = append(fb.levels[i+1], n)
		}
	}
	if len(fb.levels[top]) == 1 {
		return fb.levels[top][0], nil
	}
	return fb.node(fb.levels[top])
}

// importWriters is how many chunks are stored at once. Each block is synced
// before it is renamed into place, and that wait, not hashing, is most of an
// import: overlapping it with reading and hashing the next chunks pays.
const importWriters = 4

// chunkWriter stores chunks on importWriters goroutines, with at most
// importWriters+1 chunk buffers in use, so memory stays a few MiB.
type chunkWriter struct {
	bs    *Blockstore
	free  chan []byte
	bufs  int // allocated so far; only the importer's goroutine touches it
	jobs  chan chunkJob
	wg    sync.WaitGroup // the writer goroutines
	queue sync.WaitGroup // chunks queued and not yet stored
	added atomic.Int64   // blocks that were new to the store
	mu    sync.Mutex
	err   error // the first write error
}

type chunkJob struct {
	c         cid.Cid
	data, buf []byte
}

func newChunkWriter(bs *Blockstore) *chunkWriter {
	w := &chunkWriter{
		bs:   bs,
		free: make(chan []byte, importWriters+1),
		jobs: make(chan chunkJob),
	}
	for range importWriters {
		w.wg.Go(w.run)
	}
	return w
}

func (w *chunkWriter) run() {
	for j := range w.jobs {
		added, err := w.bs.put(j.c, j.data)
		if err != nil {
			w.mu.Lock()
			if w.err == nil {
				w.err = err
			}
			w.mu.Unlock()
		} else if added {
			w.added.Add(1)
		}
		w.free <- j.buf
		w.queue.Done()
	}
}

// buffer returns a chunk buffer, waiting for a writer to free one if all are busy.
func (w *chunkWriter) buffer() []byte {
	select {
	case b := <-w.free:
		return b
	default:
	}
	if w.bufs < cap(w.free) {
		w.bufs++
		return make([]byte, ChunkSize)
	}
	return <-w.free
}

func (w *chunkWriter) release(buf []byte) { w.free <- buf }

func (w *chunkWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// write queues data (which lives in buf) for storing; it returns an earlier
// write's error so the import stops soon after a failure.
func (w *chunkWriter) write(c cid.Cid, data, buf []byte) error {
	if err := w.failed(); err != nil {
		w.release(buf)
		return err
	}
	w.queue.Add(1)
	w.jobs <- chunkJob{c: c, data: data, buf: buf}
	return nil
}

// flush waits until every queued chunk is stored.
func (w *chunkWriter) flush() error {
	w.queue.Wait()
	return w.failed()
}

// close waits for every queued chunk to be stored.
func (w *chunkWriter) close() error {
	close(w.jobs)
	w.wg.Wait()
	return w.failed()
}
