// Package frame is the small wire format the node's own protocols share
// (the claim protocol, block exchange): a status byte, a uvarint length, and
// that many bytes. Lengths are checked against a limit before anything is
// allocated, so a peer cannot make the reader buffer more than it allows.
package frame

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrTooLarge marks a frame announcing more bytes than the reader accepts.
var ErrTooLarge = errors.New("frame too large")

// Write sends one frame in a single write.
func Write(w io.Writer, status byte, body []byte) error {
	buf := make([]byte, 0, 1+binary.MaxVarintLen64+len(body))
	buf = append(buf, status)
	buf = binary.AppendUvarint(buf, uint64(len(body)))
	buf = append(buf, body...)
	_, err := w.Write(buf)
	return err
}

// WriteBuffered sends one frame through w without copying the body into a
// frame of its own: the header goes into w's buffer and a large body
// straight to w's writer. For a writer only one goroutine uses, sending
// large bodies (blocks).
func WriteBuffered(w *bufio.Writer, status byte, body []byte) error {
	var head [1 + binary.MaxVarintLen64]byte
	head[0] = status
	n := 1 + binary.PutUvarint(head[1:], uint64(len(body)))
	if _, err := w.Write(head[:n]); err != nil {
		return err
	}
	_, err := w.Write(body)
	return err
}

// Read reads one frame whose body is at most limit bytes.
func Read(r *bufio.Reader, limit int) (byte, []byte, error) {
	return ReadInto(r, limit, nil)
}

// ReadInto is Read with the body read into buf where it has room (the
// body then shares buf's memory), else into a new slice.
func ReadInto(r *bufio.Reader, limit int, buf []byte) (byte, []byte, error) {
	status, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, nil, err
	}
	if n > uint64(limit) {
		return 0, nil, fmt.Errorf("%w: %d bytes announced, at most %d allowed", ErrTooLarge, n, limit)
	}
	body := buf[:0]
	if uint64(cap(buf)) < n {
		body = make([]byte, n)
	}
	body = body[:n]
	_, err = io.ReadFull(r, body)
	return status, body, err
}
