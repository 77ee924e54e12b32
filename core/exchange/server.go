package exchange

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/avnode/avnode/core/content"
	"github.com/avnode/avnode/core/frame"
)

// idleTimeout ends a stream whose peer stops asking.
const idleTimeout = time.Minute

// ProtocolID is the block protocol under a network's DHT prefix.
func ProtocolID(prefix string) protocol.ID { return protocol.ID(prefix + "/blocks/1.0.0") }

// Default per-peer limits of the block server (content.serve_peer_requests
// and content.serve_peer_mb).
const (
	DefaultPeerRequests = 2000
	DefaultPeerMB       = 256
)

// ServerOptions bound what one peer may ask of the server, per second.
// Zero values take the defaults.
type ServerOptions struct {
	PeerRequests int   // requests answered per second
	PeerBytes    int64 // bytes read from the store per second
	Registerer   prometheus.Registerer
}

// Server answers block requests from the local store.
type Server struct {
	host  host.Host
	proto protocol.ID
	bs    *content.Blockstore
	log   *slog.Logger
	// ctx ends with Close, so answers waiting on a peer's budget stop.
	ctx    context.Context
	cancel context.CancelFunc

	mu    sync.Mutex
	peers map[peer.ID]*peerState
	opts  ServerOptions
	// maxRequests is MaxRequestsPerStream; tests lower it.
	maxRequests int
	metrics     serverMetrics
}

// peerState is what one peer holds: its open streams and its budgets. Every
// stream of a peer draws on the same budgets, so more streams buy nothing.
type peerState struct {
	streams  int
	requests *rate.Limiter
	bytes    *rate.Limiter
}

// NewServer registers the block protocol on h, with the default limits.
func NewServer(h host.Host, prefix string, bs *content.Blockstore, log *slog.Logger) *Server {
	return NewServerWith(h, prefix, bs, log, ServerOptions{})
}

// NewServerWith is NewServer with limits and metrics.
func NewServerWith(h host.Host, prefix string, bs *content.Blockstore, log *slog.Logger, opts ServerOptions) *Server {
	if opts.PeerRequests <= 0 {
		opts.PeerRequests = DefaultPeerRequests
	}
	if opts.PeerBytes <= 0 {
		opts.PeerBytes = DefaultPeerMB << 20
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{host: h, proto: ProtocolID(prefix), bs: bs, log: log, ctx: ctx, cancel: cancel,
		peers: map[peer.ID]*peerState{}, opts: opts, maxRequests: MaxRequestsPerStream, metrics: newServerMetrics(opts.Registerer)}
	h.SetStreamHandler(s.proto, s.handle)
	return s
}

// Close stops serving.
func (s *Server) Close() {
	s.host.RemoveStreamHandler(s.proto)
	s.cancel()
}

// maxIdlePeers bounds the budgets kept for peers with no stream open: a
// peer that closes its streams and comes back finds its budget as it left it.
const maxIdlePeers = 1024

func (s *Server) acquire(p peer.ID) (*peerState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.peers[p]
	if ps == nil {
		if len(s.peers) >= maxIdlePeers {
			s.forgetIdle()
		}
		// A burst of one second's worth, and at least two whole blocks.
		ps = &peerState{
			requests: rate.NewLimiter(rate.Limit(s.opts.PeerRequests), s.opts.PeerRequests),
			bytes:    rate.NewLimiter(rate.Limit(s.opts.PeerBytes), int(max(s.opts.PeerBytes, 2*content.MaxBlockSize))),
		}
		s.peers[p] = ps
	}
	if ps.streams >= MaxStreamsPerPeer {
		return nil, false
	}
	ps.streams++
	return ps, true
}

// forgetIdle drops the peers with no stream whose budgets are full again.
func (s *Server) forgetIdle() {
	now := time.Now()
	for p, ps := range s.peers {
		if ps.streams == 0 && ps.requests.TokensAt(now) >= float64(ps.requests.Burst()) && ps.bytes.TokensAt(now) >= float64(ps.bytes.Burst()) {
			delete(s.peers, p)
		}
	}
}

func (s *Server) release(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ps := s.peers[p]; ps != nil {
		ps.streams--
	}
}

func (s *Server) handle(st network.Stream) {
	defer st.Close()
	remote := st.Conn().RemotePeer()
	ps, ok := s.acquire(remote)
	if !ok {
		frame.Write(st, statusRefused, []byte(fmt.Sprintf("busy: at most %d block streams per peer", MaxStreamsPerPeer)))
		return
	}
	defer s.release(remote)
	r := bufio.NewReader(st)
	w := bufio.NewWriterSize(st, 64<<10)
	for i := 0; i < s.maxRequests; i++ {
		st.SetReadDeadline(time.Now().Add(idleTimeout))
		req, err := readRequest(r)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				s.log.Debug("block stream ended", "peer", remote, "err", err)
			}
			return
		}
		// Wait for the peer's budget: a peer asking too fast is slowed
		// down, and reads no more of its requests meanwhile.
		if err := ps.requests.Wait(s.ctx); err != nil {
			st.Reset()
			return
		}
		scratch := blockBuffers.Get().(*[]byte)
		status, data, read := s.answer(req, *scratch)
		s.metrics.requests.Inc()
		s.metrics.readBytes.Add(float64(read))
		if err := ps.bytes.WaitN(s.ctx, int(min(read, int64(ps.bytes.Burst())))); err != nil {
			st.Reset()
			return
		}
		st.SetWriteDeadline(time.Now().Add(idleTimeout))
		err = writeResponse(w, status, data)
		blockBuffers.Put(scratch)
		if err != nil {
			st.Reset()
			return
		}
		// Flush when the peer has nothing more queued, so pipelined
		// requests are answered in large writes.
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				st.Reset()
				return
			}
		}
	}
	w.Flush()
}

// answer reads what req asks for, and only that, from the store, into
// scratch where it fits; read is what it cost in bytes read.
func (s *Server) answer(req request, scratch []byte) (status byte, data []byte, read int64) {
	r, err := s.bs.GetRangeInto(req.cid, req.offset, req.length, scratch)
	switch {
	case err == nil:
		return statusHave, r.Data, r.Read
	case errors.Is(err, content.ErrNotFound):
		return statusDontHave, nil, r.Read
	case errors.Is(err, content.ErrRange):
		return statusRefused, []byte(fmt.Sprintf("range starts at %d, past the block's %d bytes", req.offset, r.Size)), r.Read
	}
	s.log.Warn("read block", "cid", req.cid, "err", err)
	return statusDontHave, nil, r.Read
}

// serverMetrics show what the block server answers and what that costs.
type serverMetrics struct {
	requests  prometheus.Counter
	readBytes prometheus.Counter
}

func newServerMetrics(reg prometheus.Registerer) serverMetrics {
	m := serverMetrics{
		requests: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "avnode", Subsystem: "blocks", Name: "served_requests_total",
			Help: "Block requests answered to peers."}),
		readBytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "avnode", Subsystem: "blocks", Name: "served_read_bytes_total",
			Help: "Bytes read from the block store to answer peers' block requests."}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.readBytes)
	}
	return m
}
