package exchange

import (
	"bufio"
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

	"github.com/avnode/avnode/core/content"
)

// idleTimeout ends a stream whose peer stops asking.
const idleTimeout = time.Minute

// ProtocolID is the block protocol under a network's DHT prefix.
func ProtocolID(prefix string) protocol.ID { return protocol.ID(prefix + "/blocks/1.0.0") }

// Server answers block requests from the local store.
type Server struct {
	host  host.Host
	proto protocol.ID
	bs    *content.Blockstore
	log   *slog.Logger

	mu      sync.Mutex
	streams map[peer.ID]int
	// maxRequests is MaxRequestsPerStream; tests lower it.
	maxRequests int
}

// NewServer registers the block protocol on h.
func NewServer(h host.Host, prefix string, bs *content.Blockstore, log *slog.Logger) *Server {
	s := &Server{host: h, proto: ProtocolID(prefix), bs: bs, log: log, streams: map[peer.ID]int{}, maxRequests: MaxRequestsPerStream}
	h.SetStreamHandler(s.proto, s.handle)
	return s
}

// Close stops serving.
func (s *Server) Close() { s.host.RemoveStreamHandler(s.proto) }

func (s *Server) acquire(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.streams[p] >= MaxStreamsPerPeer {
		return false
	}
	s.streams[p]++
	return true
}

func (s *Server) release(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.streams[p]--; s.streams[p] <= 0 {
		delete(s.streams, p)
	}
}

func (s *Server) handle(st network.Stream) {
	defer st.Close()
	remote := st.Conn().RemotePeer()
	if !s.acquire(remote) {
		writeResponse(st, statusRefused, []byte(fmt.Sprintf("busy: at most %d block streams per peer", MaxStreamsPerPeer)))
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
		status, data := s.answer(req)
		st.SetWriteDeadline(time.Now().Add(idleTimeout))
		if err := writeResponse(w, status, data); err != nil {
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

func (s *Server) answer(req request) (byte, []byte) {
	data, err := s.bs.Get(req.cid)
	if errors.Is(err, content.ErrNotFound) {
		return statusDontHave, nil
	}
	if err != nil {
		s.log.Warn("read block", "cid", req.cid, "err", err)
		return statusDontHave, nil
	}
	if req.offset == 0 && req.length == 0 {
		return statusHave, data
	}
	if req.offset > uint64(len(data)) {
		return statusRefused, []byte(fmt.Sprintf("range starts at %d, past the block's %d bytes", req.offset, len(data)))
	}
	end := uint64(len(data))
	// Compare lengths, not sums: offset+length may wrap around.
	if req.length > 0 && req.length < end-req.offset {
		end = req.offset + req.length
	}
	return statusHave, data[req.offset:end]
}
