package content

import (
	"bytes"
	"testing"
)

// FuzzLinks feeds arbitrary bytes to the node decoder. It must never panic, and
// whatever it accepts must be exactly what the encoder produces for the
// decoded content: one node, one encoding.
func FuzzLinks(f *testing.F) {
	raw := sumCID(codecRaw, []byte("x")).String()
	js := sumCID(codecJSON, []byte("y")).String()
	f.Add([]byte(`{"kind":"dir","entries":[]}`))
	f.Add([]byte(`{"kind":"dir","entries":[{"name":"a","cid":"` + raw + `","kind":"file","size":1},{"name":"b","cid":"` + js + `","kind":"dir","size":0}]}`))
	f.Add([]byte(`{"kind":"file","size":1048577,"chunks":[{"cid":"` + raw + `","size":1048576},{"cid":"` + raw + `","size":1}]}`))
	f.Add([]byte(`{"kind":"dir","entries":[{"name":"../x","cid":"` + raw + `","kind":"file","size":1}]}`))

	c := sumCID(codecJSON, nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		links, err := Links(c, data)
		if err != nil {
			return
		}
		n, err := decodeNode(data)
		if err != nil {
			t.Fatalf("Links accepted what decodeNode refuses: %v", err)
		}
		if len(links) != len(n.chunks)+len(n.entries) {
			t.Fatalf("%d links for %d chunks and %d entries", len(links), len(n.chunks), len(n.entries))
		}
		var again []byte
		var size int64
		if n.kind == KindFile {
			again, size, err = encodeFileNode(n.chunks)
		} else {
			again, size, err = encodeDirNode(n.entries)
		}
		if err != nil {
			t.Fatalf("re-encoding an accepted node: %v", err)
		}
		if size != n.size || !bytes.Equal(again, data) {
			t.Fatalf("accepted a non-canonical node:\n got %q\nwant %q", data, again)
		}
		for _, e := range n.entries {
			if err := checkName(e.name); err != nil {
				t.Fatalf("accepted bad name: %v", err)
			}
		}
	})
}
