package exchange

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/avnode/avnode/core/content"
	"github.com/avnode/avnode/core/fault"
)

const (
	// DefaultWindow is how many block requests are in flight per source.
	DefaultWindow = 16
	// storeWriters write verified blocks to the store in parallel.
	storeWriters = 2
	// responseTimeout drops a source that stops answering.
	responseTimeout = 30 * time.Second
)

// ErrNoSource is a fetch of blocks missing here with no peer to ask.
var ErrNoSource error = fault.New(fault.Unavailable, "no source to fetch from (no host or provider found)")

// Fetcher pulls DAGs into the local block store.
type Fetcher struct {
	host        host.Host
	proto       protocol.ID
	bs          *content.Blockstore
	log         *slog.Logger
	window      int
	maxRequests int // per stream; the server's MaxRequestsPerStream
	// MaxSources is how many sources a fetch uses at once, the first in
	// the order given; the others are spares, started when one is dropped
	// or lacks a block. 0: all at once.
	MaxSources int
}

// NewFetcher fetches with the block protocol of the network with this DHT prefix.
func NewFetcher(h host.Host, prefix string, bs *content.Blockstore, log *slog.Logger) *Fetcher {
	return &Fetcher{host: h, proto: ProtocolID(prefix), bs: bs, log: log, window: DefaultWindow, maxRequests: MaxRequestsPerStream}
}

// Stats describe one fetch.
type Stats struct {
	Blocks  int            `json:"blocks"`            // blocks in the DAG
	Present int            `json:"present"`           // already here (a resumed fetch skips them)
	Fetched int            `json:"fetched"`           // pulled from the network
	Bytes   int64          `json:"bytes"`             // bytes pulled
	Sources map[string]int `json:"sources"`           // blocks per source
	Dropped []string       `json:"dropped,omitempty"` // sources dropped, with the reason
}

// Add counts another fetch's blocks, bytes and sources into st.
func (st *Stats) Add(o Stats) {
	st.Blocks += o.Blocks
	st.Present += o.Present
	st.Fetched += o.Fetched
	st.Bytes += o.Bytes
	for p, n := range o.Sources {
		if st.Sources == nil {
			st.Sources = map[string]int{}
		}
		st.Sources[p] += n
	}
	st.Dropped = append(st.Dropped, o.Dropped...)
}

// Fetch pulls every block of the DAG at root that is not already here, from
// several sources at once. A source that sends a block not matching its CID is
// dropped and the block fetched elsewhere; blocks already present are not
// fetched again, so an interrupted fetch resumes where it stopped.
func (f *Fetcher) Fetch(ctx context.Context, root cid.Cid, sources []peer.ID, progress func(Stats)) (Stats, error) {
	return f.FetchWithin(ctx, root, sources, -1, progress)
}

// FetchWithin is Fetch of a DAG that may declare at most maxBytes of
// content and bring at most maxBytes of blocks (-1: no limit). Sizes are
// checked as blocks arrive, before they are stored: a root declaring more
// ends the fetch with an error wrapping content.ErrTooLarge, and a block
// not holding what its parent declares ends it as malformed.
func (f *Fetcher) FetchWithin(ctx context.Context, root cid.Cid, sources []peer.ID, maxBytes int64, progress func(Stats)) (Stats, error) {
	s := newSched(f.bs, f.window, progress)
	s.maxBytes = maxBytes
	return f.fetch(ctx, s, root, sources)
}

// FetchBlock pulls the one block c, not what it links to: a path inside a
// DAG is fetched directory by directory, without the rest of the tree.
func (f *Fetcher) FetchBlock(ctx context.Context, c cid.Cid, sources []peer.ID) (Stats, error) {
	s := newSched(f.bs, f.window, nil)
	s.shallow = true
	return f.fetch(ctx, s, c, sources)
}

func (f *Fetcher) fetch(ctx context.Context, s *sched, root cid.Cid, sources []peer.ID) (Stats, error) {
	sources = dedupe(sources, f.host.ID())
	s.root = root
	if err := s.add(root); err != nil {
		return s.snapshot(), err
	}
	if s.finished() {
		return s.snapshot(), nil
	}
	if len(sources) == 0 {
		return s.snapshot(), fmt.Errorf("fetch %s: %w", root, ErrNoSource)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Verified blocks are written by a small pool, so reading the network
	// overlaps with writing the disk.
	s.writes = make(chan verifiedBlock, f.window)
	var writers sync.WaitGroup
	for range storeWriters {
		writers.Add(1)
		go func() { defer writers.Done(); s.storeLoop() }()
	}
	var wg sync.WaitGroup
	s.launch = func(p peer.ID) {
		wg.Add(1)
		go func() { defer wg.Done(); f.runSource(ctx, p, s) }()
	}
	first := sources
	if f.MaxSources > 0 && len(sources) > f.MaxSources {
		first, s.spares = sources[:f.MaxSources], sources[f.MaxSources:]
	}
	for _, p := range first {
		s.live[p] = true
	}
	for _, p := range first {
		s.launch(p)
	}
	err := s.wait(ctx)
	cancel()
	s.stop()
	wg.Wait()
	close(s.writes)
	writers.Wait()
	// Flush what was fetched, once, also after a failure: it is kept for a resume.
	if syncErr := f.bs.Sync(); err == nil && syncErr != nil {
		err = syncErr
	}
	return s.snapshot(), err
}

func dedupe(ps []peer.ID, self peer.ID) []peer.ID {
	seen := map[peer.ID]bool{self: true}
	var out []peer.ID
	for _, p := range ps {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// runSource keeps up to window requests in flight to one source, on one
// stream after another: a server answers at most maxRequests per stream.
func (f *Fetcher) runSource(ctx context.Context, p peer.ID, s *sched) {
	afterCut := false
	for again := true; again; {
		again, afterCut = f.runStream(ctx, p, s, afterCut)
	}
}

// runStream runs one stream to p: a writer takes wanted blocks and sends
// requests, a reader checks the answers. It reports whether a new stream
// should follow: the stream reached the per-stream limit, or a relay cut
// it (see relayCut).
func (f *Fetcher) runStream(ctx context.Context, p peer.ID, s *sched, afterCut bool) (again, cutByRelay bool) {
	st, err := f.openStream(ctx, p, afterCut)
	if err != nil {
		s.drop(p, fmt.Sprintf("open stream: %v", err), nil)
		return false, false
	}
	defer st.Reset()
	// A source that hangs must not keep the fetch waiting once it is over.
	stopReset := context.AfterFunc(ctx, func() { st.Reset() })
	defer stopReset()
	inflight := make(chan cid.Cid, f.window)
	readerDone := make(chan struct{})
	var cut relayCut
	go func() {
		defer close(readerDone)
		f.readAnswers(st, p, s, inflight, &cut)
	}()
	w := bufio.NewWriter(st)
	sent := 0
	// The writer stops once the source is dropped (take says so) or the
	// reader found the stream cut by a relay.
	for ; sent < f.maxRequests && !cut.cut.Load(); sent++ {
		c, ok := s.take(p)
		if !ok {
			break
		}
		if err := writeRequest(w, request{cid: c}); err == nil {
			err = w.Flush()
		}
		if err != nil {
			if cut.happened(st) {
				s.requeue(c, p)
			} else {
				s.drop(p, fmt.Sprintf("send request: %v", err), []cid.Cid{c})
			}
			break
		}
		select {
		case inflight <- c:
		case <-readerDone:
			s.requeue(c, p)
		}
	}
	close(inflight)
	<-readerDone
	if cut.cut.Load() {
		// The relay ended the connection; closing every connection to p that
		// is still relayed keeps the next stream from picking a dead one
		// before libp2p notices.
		for _, c := range f.host.Network().ConnsToPeer(p) {
			if c.Stat().Limited {
				c.Close()
			}
		}
		return true, true
	}
	return sent == f.maxRequests, false
}

// openStream opens a stream to p. A source behind NAT may be reachable only
// through a relay, within its limits; once hole punching gives a direct
// connection, new streams take it. Right after a relay cut the connection,
// a new circuit may take several seconds: while a hole punch to p is still
// dialing, libp2p's dial for p hands back the connection it made last, the
// one the relay cut, until that dial ends.
func (f *Fetcher) openStream(ctx context.Context, p peer.ID, afterCut bool) (network.Stream, error) {
	ctx = network.WithAllowLimitedConn(ctx, "fetch")
	tries, wait := 1, 250*time.Millisecond
	if afterCut {
		tries = 7 // about 16 s in all
	}
	for i := 1; ; i++ {
		st, err := f.host.NewStream(ctx, p, f.proto)
		if err == nil || i == tries {
			return st, err
		}
		f.log.Debug("open stream after a relay cut the connection", "peer", p, "try", i, "err", err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
			wait *= 2
		}
	}
}

// relayCut tells a stream a relay ended from any other failure. A relay
// ends a relayed connection once it has carried its limit of bytes or
// time; a source reached only through one would otherwise be dropped
// halfway through anything larger. A stream that was answered before it
// failed on a relayed connection hands its work back, and the next stream
// dials through the relay again, on a new circuit. One that never got an
// answer drops the source as any failure does, so this cannot loop.
type relayCut struct {
	answered atomic.Bool // a block came back on this stream
	cut      atomic.Bool // the stream ended as a relay's limit ends it
}

func (r *relayCut) happened(st network.Stream) bool {
	if r.answered.Load() && st.Conn().Stat().Limited {
		r.cut.Store(true)
	}
	return r.cut.Load()
}

func (f *Fetcher) readAnswers(st network.Stream, p peer.ID, s *sched, inflight chan cid.Cid, cut *relayCut) {
	r := bufio.NewReaderSize(st, 1<<20)
	// handBack returns what the source still owed: the writer stops taking
	// work once the source is dropped or the stream cut, and closes inflight.
	handBack := func() {
		for more := range inflight {
			s.requeue(more, p)
		}
	}
	fail := func(c cid.Cid, reason string) {
		s.drop(p, reason, []cid.Cid{c})
		handBack()
	}
	for c := range inflight {
		st.SetReadDeadline(time.Now().Add(responseTimeout))
		buf := blockBuffers.Get().(*[]byte)
		status, data, err := readResponse(r, *buf)
		if err == nil && status == statusHave {
			if err := content.VerifyBlock(c, data); err != nil {
				blockBuffers.Put(buf)
				fail(c, fmt.Sprintf("sent a bad block for %s: %v", c, err))
				return
			}
			cut.answered.Store(true)
			// The writer gives the buffer back once the block is stored.
			s.writes <- verifiedBlock{c: c, data: data, from: p, buf: buf}
			continue
		}
		refusal := truncate(data)
		blockBuffers.Put(buf)
		switch {
		case err != nil && cut.happened(st):
			s.requeue(c, p)
			handBack()
			return
		case err != nil:
			fail(c, fmt.Sprintf("read answer: %v", err))
			return
		case status == statusDontHave:
			s.lacks(c, p)
		default:
			fail(c, fmt.Sprintf("refused: %s", refusal))
			return
		}
	}
}

func truncate(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}
