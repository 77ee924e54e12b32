package exchange

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/avnode/avnode/core/frame"
)

// FuzzReadRequest: whatever a peer sends, decoding a request never panics,
// and a request that decodes survives an encode and decode unchanged.
func FuzzReadRequest(f *testing.F) {
	c, _ := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: 0x12, MhLength: -1}.Sum([]byte("seed"))
	var good bytes.Buffer
	writeRequest(&good, request{cid: c, offset: 7, length: 1 << 20})
	f.Add(good.Bytes())
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Add([]byte{0x05, 1, 2, 3, 4, 5, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		req, err := readRequest(r)
		if err != nil {
			return
		}
		var again bytes.Buffer
		writeRequest(&again, req)
		back, err := readRequest(bufio.NewReader(&again))
		if err != nil || !back.cid.Equals(req.cid) || back.offset != req.offset || back.length != req.length {
			t.Fatalf("request %+v does not round-trip: %+v, %v", req, back, err)
		}
	})
}

// FuzzReadResponse: a response never makes the reader allocate more than a
// block's worth, nor panic.
func FuzzReadResponse(f *testing.F) {
	var good bytes.Buffer
	frame.Write(&good, statusHave, []byte("block bytes"))
	f.Add(good.Bytes())
	f.Add([]byte{statusHave, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{statusRefused, 3, 'b', 'u', 's'})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, body, err := readResponse(bufio.NewReader(bytes.NewReader(data)), nil)
		if err == nil && len(body) > len(data) {
			t.Fatalf("decoded %d bytes of body from %d bytes of input", len(body), len(data))
		}
		// Into a reused buffer, as a fetch reads: the same answer.
		buf := make([]byte, 0, 8)
		_, again, err2 := readResponse(bufio.NewReader(bytes.NewReader(data)), buf)
		if (err == nil) != (err2 == nil) || !bytes.Equal(body, again) {
			t.Fatalf("into a buffer: %q, %v; fresh: %q, %v", again, err2, body, err)
		}
	})
}
