package content

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// Ranges across chunk boundaries, at the ends and past them read exactly
// the bytes of the file there.
func TestWriteRangeReadsTheAskedBytes(t *testing.T) {
	data := randBytes(7, 3*ChunkSize+1234) // several chunks and a short one
	p := filepath.Join(t.TempDir(), "f.bin")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	bs := newStore(t)
	res, err := Import(t.Context(), p, bs, nil)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(data))
	for _, c := range []struct{ offset, length int64 }{
		{0, 0}, {0, 10}, {ChunkSize - 5, 10}, {ChunkSize, ChunkSize}, {size - 1, 0}, {size - 100, 1000}, {size, 0}, {2*ChunkSize + 7, 1},
	} {
		var buf bytes.Buffer
		n, err := WriteRange(t.Context(), res.Root, c.offset, c.length, &buf, bs)
		if err != nil {
			t.Fatalf("range %+v: %v", c, err)
		}
		end := size
		if c.length > 0 {
			end = min(size, c.offset+c.length)
		}
		if want := data[c.offset:end]; n != int64(len(want)) || !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("range %+v: got %d bytes, want %d", c, n, len(want))
		}
	}
	if _, err := WriteRange(t.Context(), res.Root, -1, 0, &bytes.Buffer{}, bs); err == nil {
		t.Fatal("a negative offset was taken")
	}
}
