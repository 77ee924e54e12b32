package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"google.golang.org/grpc"

	"github.com/avnode/avnode/sdk/pluginpb"
)

// chunkSize is the most bytes one write sends to the node at a time.
const chunkSize = 64 << 10

// Stream is a libp2p stream the node carries for a plugin: one the plugin
// opened with Host.OpenStream, or one a peer opened to a protocol the
// plugin handles (Host.HandleProtocol). Read and Write may be used from two
// goroutines at once; each alone is not safe for concurrent use.
type Stream struct {
	rpc      pluginpb.Host_StreamClient
	cancel   context.CancelFunc
	peer     string
	protocol string

	rest    []byte // unread part of the last chunk
	readErr error

	wmu    sync.Mutex
	closed bool
}

// RemotePeer is the peer ID at the other end.
func (s *Stream) RemotePeer() string { return s.peer }

// Protocol is the stream's libp2p protocol.
func (s *Stream) Protocol() string { return s.protocol }

// Read reads what the peer wrote; io.EOF once it closed its side.
func (s *Stream) Read(p []byte) (int, error) {
	for len(s.rest) == 0 {
		if s.readErr != nil {
			return 0, s.readErr
		}
		c, err := s.rpc.Recv()
		switch {
		case err != nil:
			s.readErr = streamError(err)
		case c.GetCloseWrite():
			s.readErr = io.EOF
		default:
			s.rest = c.GetData()
		}
	}
	n := copy(p, s.rest)
	s.rest = s.rest[n:]
	return n, nil
}

func streamError(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF // the node ended the call before the peer's EOF
	}
	return wrap("Stream", "", err)
}

// Write sends p to the peer.
func (s *Stream) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return 0, errors.New("write on a closed stream")
	}
	written := 0
	for len(p) > 0 {
		n := min(len(p), chunkSize)
		if err := s.rpc.Send(&pluginpb.StreamChunk{Kind: &pluginpb.StreamChunk_Data{Data: p[:n]}}); err != nil {
			return written, wrap("Stream", "", err)
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

// CloseWrite tells the peer that nothing more will be written; reading goes on.
func (s *Stream) CloseWrite() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.rpc.Send(&pluginpb.StreamChunk{Kind: &pluginpb.StreamChunk_CloseWrite{CloseWrite: true}})
	if cerr := s.rpc.CloseSend(); err == nil {
		err = cerr
	}
	return err
}

// Close ends the stream both ways once what was written is flushed; unread
// data is discarded. Call it (or Reset) on every stream.
func (s *Stream) Close() error {
	s.wmu.Lock()
	var err error
	if !s.closed {
		s.closed = true
		err = s.rpc.Send(&pluginpb.StreamChunk{Kind: &pluginpb.StreamChunk_Close{Close: true}})
		s.rpc.CloseSend()
	}
	s.wmu.Unlock()
	// The node ends the call once the stream is closed; free it then.
	go func() {
		defer s.cancel()
		for {
			if _, err := s.rpc.Recv(); err != nil {
				return
			}
		}
	}()
	return err
}

// Reset aborts the stream at once, both ways.
func (s *Stream) Reset() { s.cancel() }

// OpenStream opens a libp2p stream to a peer, dialling it if needed.
func (h *grpcHost) OpenStream(ctx context.Context, peerID, protocol string) (*Stream, error) {
	sctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel) // ctx bounds the opening only
	defer stop()
	rpc, err := h.c.Stream(sctx)
	if err == nil {
		err = rpc.Send(&pluginpb.StreamChunk{Kind: &pluginpb.StreamChunk_Open{Open: &pluginpb.StreamOpen{PeerId: peerID, Protocol: protocol}}})
	}
	var ack *pluginpb.StreamChunk
	if err == nil {
		ack, err = rpc.Recv()
	}
	if err == nil && ack.GetOpen() == nil {
		err = fmt.Errorf("node answered open with %T", ack.GetKind())
	}
	if err != nil {
		cancel()
		return nil, wrap("OpenStream", peerID+" "+protocol, err)
	}
	return &Stream{rpc: rpc, cancel: cancel, peer: peerID, protocol: protocol}, nil
}

// HandleProtocol makes the node hand this plugin every libp2p stream peers
// open with the protocol; handle runs on its own goroutine for each and must
// close the stream. It returns once the node has registered the handler,
// which lasts until ctx ends. Protocols of libp2p and of the node itself
// are refused (codes.InvalidArgument); choose e.g. /avtr/x/<role>/1.0.0.
func (h *grpcHost) HandleProtocol(ctx context.Context, protocol string, handle func(*Stream)) error {
	ctx, cancel := context.WithCancel(ctx)
	announced, err := h.c.HandleProtocol(ctx, &pluginpb.ProtocolRequest{Protocol: protocol})
	if err == nil {
		err = awaitAccepted(announced)
	}
	if err != nil {
		cancel()
		return wrap("HandleProtocol", protocol, err)
	}
	go func() {
		defer cancel()
		for {
			in, err := announced.Recv()
			if err != nil {
				return
			}
			go h.accept(in, handle)
		}
	}()
	return nil
}

func (h *grpcHost) accept(in *pluginpb.IncomingStream, handle func(*Stream)) {
	ctx, cancel := context.WithCancel(context.Background())
	rpc, err := h.c.Stream(ctx)
	if err == nil {
		err = rpc.Send(&pluginpb.StreamChunk{Kind: &pluginpb.StreamChunk_Accept{Accept: in.GetId()}})
	}
	if err != nil {
		cancel()
		h.logger.Warn("accept stream", "protocol", in.GetProtocol(), "peer", in.GetPeerId(), "err", err)
		return
	}
	handle(&Stream{rpc: rpc, cancel: cancel, peer: in.GetPeerId(), protocol: in.GetProtocol()})
}

// awaitAccepted waits for a server stream's headers, which the node sends
// at once when it accepts the call; a refusal ends the call without them.
func awaitAccepted(s grpc.ClientStream) error {
	md, err := s.Header()
	if err != nil {
		return err
	}
	if md != nil {
		return nil
	}
	if err := s.RecvMsg(new(pluginpb.Empty)); err != nil && err != io.EOF {
		return err
	}
	return errors.New("the node ended the call at once")
}
