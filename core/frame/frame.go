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

// Read reads one frame whose body is at most limit bytes.
func Read(r *bufio.Reader, limit int) (byte, []byte, error) {
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
	body := make([]byte, n)
	_, err = io.ReadFull(r, body)
	return status, body, err
}
