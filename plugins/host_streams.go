package plugins

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/avnode/avnode/sdk/pluginpb"
)

const (
	// acceptTimeout is how long an incoming stream waits for its plugin to
	// pick it up before it is reset.
	acceptTimeout = 10 * time.Second
	// openTimeout bounds dialling a peer for a plugin's outgoing stream.
	openTimeout = 15 * time.Second
	// chunkSize is the most bytes one StreamChunk carries.
	chunkSize = 64 << 10
	// maxPending bounds the incoming streams waiting for their plugin.
	maxPending = 256
	// maxStreamsPerPeer bounds one peer's streams of one plugin protocol,
	// from arrival to end. Streams over it are reset before a byte is read,
	// so a peer cannot make a plugin hold many requests at once; an honest
	// peer asks one thing at a time.
	maxStreamsPerPeer = 4
)

// reservedProtocols are prefixes a plugin may not handle: libp2p's own
// protocols and the node's.
var reservedProtocols = []string{"/ipfs/", "/libp2p/", "/meshsub/", "/floodsub/", "/p2p/", "/avtr/kad", "/avtr/claim/", "/avtr/blocks/"}

// streamRegistry holds incoming streams between their arrival and the
// plugin's accept. It is shared by every plugin's copy of the host API.
type streamRegistry struct {
	handlers sync.Mutex // serialises checking and setting protocol handlers
	mu       sync.Mutex
	next     uint64
	pending  map[uint64]*incoming
	perPeer  map[peerProtocol]int // streams from arrival to end
}

type peerProtocol struct {
	peer  peer.ID
	proto protocol.ID
}

// incoming is a peer's stream to a plugin protocol, counted against the
// peer's limit until done is called.
type incoming struct {
	network.Stream
	role string // the role whose HandleProtocol it came to: only it may accept it
	done func()
}

// reset aborts the stream and frees its place.
func (in *incoming) reset() {
	in.Reset()
	in.done()
}

func newStreamRegistry() *streamRegistry {
	return &streamRegistry{pending: map[uint64]*incoming{}, perPeer: map[peerProtocol]int{}}
}

// park keeps s for its plugin and resets it if not taken in time. A stream
// over maxPending or over its peer's maxStreamsPerPeer is refused.
func (r *streamRegistry) park(s network.Stream, role string) (uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := peerProtocol{s.Conn().RemotePeer(), s.Protocol()}
	if len(r.pending) >= maxPending || r.perPeer[key] >= maxStreamsPerPeer {
		return 0, false
	}
	r.perPeer[key]++
	r.next++
	id := r.next
	r.pending[id] = &incoming{Stream: s, role: role, done: sync.OnceFunc(func() { r.release(key) })}
	time.AfterFunc(acceptTimeout, func() {
		if in := r.take(id, role); in != nil {
			in.reset()
		}
	})
	return id, true
}

// release frees a place of key; a peer's entry goes with its last stream,
// so nothing is kept for peers that left.
func (r *streamRegistry) release(key peerProtocol) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.perPeer[key]--; r.perPeer[key] <= 0 {
		delete(r.perPeer, key)
	}
}

// take hands stream id to role, if it is waiting for that role: the IDs
// count up, so another role could guess them.
func (r *streamRegistry) take(id uint64, role string) *incoming {
	r.mu.Lock()
	defer r.mu.Unlock()
	in := r.pending[id]
	if in == nil || in.role != role {
		return nil
	}
	delete(r.pending, id)
	return in
}

func checkProtocol(p string, handled []protocol.ID) error {
	if !strings.HasPrefix(p, "/") || len(p) > 256 || strings.ContainsAny(p, " \n") {
		return fmt.Errorf("protocol %q: want a path like /avtr/x/chat/1.0.0", p)
	}
	for _, r := range reservedProtocols {
		if strings.HasPrefix(p, r) {
			return fmt.Errorf("protocol %q: %s… is reserved for the node", p, r)
		}
	}
	for _, h := range handled {
		if string(h) == p {
			return fmt.Errorf("protocol %q: already handled on this node", p)
		}
	}
	return nil
}

// HandleProtocol accepts libp2p streams of a protocol for the calling
// plugin, announcing each; the handler goes when the call ends.
func (h *HostAPI) HandleProtocol(req *pluginpb.ProtocolRequest, stream pluginpb.Host_HandleProtocolServer) error {
	proto := req.GetProtocol()
	h.streams.handlers.Lock()
	if err := checkProtocol(proto, h.node.Host().Mux().Protocols()); err != nil {
		h.streams.handlers.Unlock()
		return status.Error(codes.InvalidArgument, err.Error())
	}
	incoming := make(chan *pluginpb.IncomingStream, 16)
	h.node.Host().SetStreamHandler(protocol.ID(proto), func(s network.Stream) {
		id, ok := h.streams.park(s, h.role)
		if !ok {
			s.Reset()
			return
		}
		select {
		case incoming <- &pluginpb.IncomingStream{Id: id, PeerId: s.Conn().RemotePeer().String(), Protocol: proto}:
		default: // the plugin is not keeping up: refuse rather than queue without end
			if in := h.streams.take(id, h.role); in != nil {
				in.reset()
			}
		}
	})
	h.streams.handlers.Unlock()
	defer h.node.Host().RemoveStreamHandler(protocol.ID(proto))
	if err := stream.SendHeader(nil); err != nil {
		return err
	}
	h.log.Info("plugin handles protocol", "protocol", proto)
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case in := <-incoming:
			if err := stream.Send(in); err != nil {
				return err
			}
		}
	}
}

// Stream carries one libp2p stream for a plugin, accepted or opened.
func (h *HostAPI) Stream(rpc pluginpb.Host_StreamServer) error {
	first, err := rpc.Recv()
	if err != nil {
		return err
	}
	var s network.Stream
	switch k := first.GetKind().(type) {
	case *pluginpb.StreamChunk_Accept:
		in := h.streams.take(k.Accept, h.role)
		if in == nil {
			return status.Errorf(codes.NotFound, "stream %d: not waiting (taken, or reset after %s)", k.Accept, acceptTimeout)
		}
		defer in.done()
		s = in.Stream
	case *pluginpb.StreamChunk_Open:
		if s, err = h.openStream(rpc.Context(), k.Open); err != nil {
			return err
		}
		if err := rpc.Send(&pluginpb.StreamChunk{Kind: &pluginpb.StreamChunk_Open{Open: k.Open}}); err != nil {
			s.Reset()
			return err
		}
	default:
		return status.Error(codes.InvalidArgument, "a stream starts with accept or open")
	}
	return pipe(rpc, s)
}

func (h *HostAPI) openStream(ctx context.Context, o *pluginpb.StreamOpen) (network.Stream, error) {
	id, err := peer.Decode(o.GetPeerId())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "peer %q: %v", o.GetPeerId(), err)
	}
	ctx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	s, err := h.node.Host().NewStream(network.WithAllowLimitedConn(ctx, "plugin stream"), id, protocol.ID(o.GetProtocol()))
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "open %s to %s: %v", o.GetProtocol(), id, err)
	}
	return s, nil
}

// pipe copies bytes between a libp2p stream and a plugin's Stream call
// until both sides are done, or either fails (then the stream is reset).
// The plugin's call bounds it all: when the call ends, the stream goes.
func pipe(rpc pluginpb.Host_StreamServer, s network.Stream) error {
	stop := context.AfterFunc(rpc.Context(), func() { s.Reset() })
	defer stop()
	done := make(chan error, 1)
	go func() { done <- copyToPlugin(rpc, s) }()
	closedBoth, err := copyFromPlugin(rpc, s)
	if err != nil {
		s.Reset()
		<-done
		return err
	}
	// The plugin is done writing; wait until the peer is too (or, when the
	// plugin closed both ways, until the reader notices).
	readErr := <-done
	s.Close()
	if readErr != nil && !closedBoth {
		return status.Error(codes.Aborted, readErr.Error())
	}
	return nil
}

// copyFromPlugin writes the plugin's data to the peer until the plugin
// sends close (closedBoth) or close_write, or ends its sending.
func copyFromPlugin(rpc pluginpb.Host_StreamServer, s network.Stream) (closedBoth bool, err error) {
	writeClosed := false
	for {
		c, err := rpc.Recv()
		if err == io.EOF {
			if writeClosed {
				return false, nil
			}
			return false, s.CloseWrite()
		}
		if err != nil {
			return false, err
		}
		switch k := c.GetKind().(type) {
		case *pluginpb.StreamChunk_Data:
			if _, err := s.Write(k.Data); err != nil {
				return false, status.Errorf(codes.Aborted, "write to peer: %v", err)
			}
		case *pluginpb.StreamChunk_CloseWrite:
			writeClosed = true
			if err := s.CloseWrite(); err != nil {
				return false, status.Errorf(codes.Aborted, "close write: %v", err)
			}
		case *pluginpb.StreamChunk_Close:
			s.CloseRead()
			return true, s.CloseWrite()
		}
	}
}

// copyToPlugin sends what the peer writes, then close_write at its EOF.
func copyToPlugin(rpc pluginpb.Host_StreamServer, s network.Stream) error {
	buf := make([]byte, chunkSize)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			if serr := rpc.Send(&pluginpb.StreamChunk{Kind: &pluginpb.StreamChunk_Data{Data: buf[:n]}}); serr != nil {
				return serr
			}
		}
		if err == io.EOF {
			return rpc.Send(&pluginpb.StreamChunk{Kind: &pluginpb.StreamChunk_CloseWrite{CloseWrite: true}})
		}
		if err != nil {
			return err
		}
	}
}
