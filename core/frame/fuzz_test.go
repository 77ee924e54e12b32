package frame

import (
	"bufio"
	"bytes"
	"errors"
	"testing"
)

// FuzzRead reads frames as a peer may send them: it never hands back more
// than the limit, never allocates for a length it refuses, and a frame
// Write made reads back the same.
func FuzzRead(f *testing.F) {
	var good bytes.Buffer
	Write(&good, 0, []byte("hello"))
	f.Add(good.Bytes(), 16)
	f.Add([]byte{1, 0}, 0)
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 1024) // 2^64-1 announced
	f.Add([]byte{0, 5, 'a', 'b'}, 16)                                                  // cut short
	f.Add([]byte{}, 16)
	f.Fuzz(func(t *testing.T, data []byte, limit int) {
		if limit < 0 || limit > 1<<20 {
			return
		}
		_, body, err := Read(bufio.NewReader(bytes.NewReader(data)), limit)
		if len(body) > limit {
			t.Fatalf("read a %d-byte body with a limit of %d", len(body), limit)
		}
		if errors.Is(err, ErrTooLarge) && body != nil {
			t.Fatal("a refused frame still returned a body")
		}
		if err != nil || len(body) > 255 {
			return
		}
		var again bytes.Buffer
		if err := Write(&again, data[0], body); err != nil {
			t.Fatal(err)
		}
		status, back, err := Read(bufio.NewReader(&again), limit)
		if err != nil || status != data[0] || !bytes.Equal(back, body) {
			t.Fatalf("frame written and read back: status %d→%d, %q→%q, %v", data[0], status, body, back, err)
		}
	})
}
