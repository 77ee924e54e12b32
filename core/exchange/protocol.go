// Package exchange moves content blocks between peers over libp2p streams:
// a server that answers block requests from the local block store, and a
// fetcher that pulls a whole DAG from several sources at once, verifying
// every block against its CID. It is the data plane: plugins never carry
// blocks, they ask the core to.
//
// Wire protocol <dht prefix>/blocks/1.0.0, one stream per fetcher and source,
// requests pipelined:
//
//	request:  uvarint len(cid) | cid bytes | uvarint offset | uvarint length (0 = to the end)
//	response: status byte | uvarint len(data) | data
//
// status 0 = here is the block (or the asked range), 1 = I do not have it,
// 2 = refused (busy or bad request; the reason is the data). Responses come
// in request order. A server answers at most MaxRequestsPerStream requests
// per stream and keeps at most MaxStreamsPerPeer streams per peer. It reads
// only the bytes a range asks for, and each peer, across its streams, has a
// budget of requests and of bytes read a second (ServerOptions): a peer
// over it waits for its answers, which bounds the CPU and disk it can use.
package exchange

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/ipfs/go-cid"

	"github.com/avnode/avnode/core/content"
	"github.com/avnode/avnode/core/frame"
)

const (
	statusHave     byte = 0
	statusDontHave byte = 1
	statusRefused  byte = 2

	// MaxStreamsPerPeer bounds how many block streams one peer may hold open.
	MaxStreamsPerPeer = 8
	// MaxRequestsPerStream bounds the work one stream can ask for.
	MaxRequestsPerStream = 1 << 16
	maxCIDLen            = 128
)

// request is one block wanted, optionally a byte range of it.
type request struct {
	cid    cid.Cid
	offset uint64
	length uint64
}

func writeRequest(w io.Writer, r request) error {
	b := r.cid.Bytes()
	buf := binary.AppendUvarint(nil, uint64(len(b)))
	buf = append(buf, b...)
	buf = binary.AppendUvarint(buf, r.offset)
	buf = binary.AppendUvarint(buf, r.length)
	_, err := w.Write(buf)
	return err
}

func readRequest(r *bufio.Reader) (request, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return request{}, err
	}
	if n == 0 || n > maxCIDLen {
		return request{}, fmt.Errorf("request: CID of %d bytes", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return request{}, err
	}
	c, err := cid.Cast(b)
	if err != nil {
		return request{}, fmt.Errorf("request: %w", err)
	}
	off, err := binary.ReadUvarint(r)
	if err != nil {
		return request{}, err
	}
	length, err := binary.ReadUvarint(r)
	if err != nil {
		return request{}, err
	}
	return request{cid: c, offset: off, length: length}, nil
}

// writeResponse sends one answer through the stream's own buffered writer,
// the block's bytes not copied on the way.
func writeResponse(w *bufio.Writer, status byte, data []byte) error {
	return frame.WriteBuffered(w, status, data)
}

// readResponse reads one answer into buf where it fits, refusing lengths
// no valid block can have before reading them.
func readResponse(r *bufio.Reader, buf []byte) (byte, []byte, error) {
	return frame.ReadInto(r, content.MaxBlockSize, buf)
}

// blockBuffers hold a whole block each: answers being read from the store
// and sent, blocks received until they are stored. Only blocks under way
// hold one, never an idle stream.
var blockBuffers = sync.Pool{New: func() any { b := make([]byte, content.MaxBlockSize); return &b }}
