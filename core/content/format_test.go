package content

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

func TestVerifyBlock(t *testing.T) {
	data := randBytes(1, 1000)
	c := sumCID(codecRaw, data)
	flipped := bytes.Clone(data)
	flipped[500] ^= 0x08
	big := make([]byte, MaxBlockSize+1)
	full := make([]byte, MaxBlockSize)
	sha512, _ := cid.Prefix{Version: 1, Codec: codecRaw, MhType: mh.SHA2_512, MhLength: -1}.Sum(data)
	v0, _ := cid.Prefix{Version: 0, Codec: cid.DagProtobuf, MhType: mh.SHA2_256, MhLength: -1}.Sum(data)
	dagpb := cid.NewCidV1(cid.DagProtobuf, c.Hash())

	tests := []struct {
		name string
		c    cid.Cid
		data []byte
		want string // "" means valid
	}{
		{"raw ok", c, data, ""},
		{"json ok", sumCID(codecJSON, data), data, ""},
		{"empty ok", sumCID(codecRaw, nil), nil, ""},
		{"max size ok", sumCID(codecRaw, full), full, ""},
		{"flipped bit", c, flipped, "not to the CID"},
		{"truncated", c, data[:999], "not to the CID"},
		{"extended", c, append(bytes.Clone(data), 0), "not to the CID"},
		{"other codec same hash", sumCID(codecJSON, data), flipped, "not to the CID"},
		{"oversized", sumCID(codecRaw, big), big, "over the"},
		{"sha2-512", sha512, data, "sha2-256"},
		{"cidv0", v0, data, "CIDv1"},
		{"dag-pb", dagpb, data, "codec"},
		{"undefined", cid.Undef, data, "undefined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyBlock(tt.c, tt.data)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, tt.want)
			if !errors.Is(err, ErrInvalidBlock) {
				t.Fatalf("%v does not wrap ErrInvalidBlock", err)
			}
		})
	}
}

func TestCheckName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"héllo wörld.txt", true},
		{"日本語", true},
		{".hidden", true},
		{"...", true},
		{strings.Repeat("x", 255), true},
		{strings.Repeat("é", 127), true}, // 254 bytes
		{"", false},
		{".", false},
		{"..", false},
		{"../x", false},
		{"a/b", false},
		{"/", false},
		{"a\x00b", false},
		{"\xff\xfe", false},
		{strings.Repeat("x", 256), false},
		{strings.Repeat("é", 128), false}, // 256 bytes
	}
	for _, tt := range tests {
		if err := checkName(tt.name); (err == nil) != tt.ok {
			t.Errorf("checkName(%.20q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestNodeRoundTrip(t *testing.T) {
	raw := sumCID(codecRaw, []byte("a"))
	sub := sumCID(codecJSON, []byte("b"))
	entries := []dirEntry{
		{name: "z<&>", c: raw, kind: KindFile, size: 1},
		{name: "日本", c: sub, kind: KindDir, size: 100},
		{name: "a", c: sub, kind: KindFile, size: 5 << 20},
	}
	data, size, err := encodeDirNode(entries)
	if err != nil {
		t.Fatal(err)
	}
	n, err := decodeNode(data)
	if err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	if n.kind != KindDir || n.size != size || size != 1+100+5<<20 || len(n.entries) != 3 || n.entries[0].name != "a" {
		t.Fatalf("decoded %+v from %s", n, data)
	}

	data, size, err = encodeFileNode([]link{{raw, ChunkSize}, {sub, 7}})
	if err != nil {
		t.Fatal(err)
	}
	n, err = decodeNode(data)
	if err != nil {
		t.Fatal(err)
	}
	if n.kind != KindFile || n.size != size || size != ChunkSize+7 || len(n.links()) != 2 {
		t.Fatalf("decoded %+v", n)
	}

	if _, _, err := encodeDirNode([]dirEntry{{name: "x", c: raw, kind: KindFile}, {name: "x", c: raw, kind: KindFile}}); err == nil {
		t.Fatal("duplicate names encoded")
	}
}

// TestMaxFileLinksFits checks the worst case: maxFileLinks links of json CIDs
// with 19-digit sizes still make a node under MaxBlockSize.
func TestMaxFileLinksFits(t *testing.T) {
	links := make([]link, maxFileLinks)
	for i := range links {
		links[i] = link{c: sumCID(codecJSON, []byte{byte(i)}), size: math.MaxInt64 / int64(maxFileLinks)}
	}
	links[0].size = math.MaxInt64 - int64(maxFileLinks-1)*(math.MaxInt64/int64(maxFileLinks))
	data, _, err := encodeFileNode(links)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("worst-case file node: %d bytes of %d", len(data), MaxBlockSize)
}

func TestDecodeHostileNodes(t *testing.T) {
	raw := sumCID(codecRaw, []byte("x")).String()
	js := sumCID(codecJSON, []byte("y")).String()
	v0 := "QmPZ9gcCEpqKTo6aq61g2nXGUhM4iCL3ewB6LDXZCtioEB"
	rawC, _ := cid.Decode(raw)
	b58, _ := rawC.StringOfBase('z')
	sha512, _ := cid.Prefix{Version: 1, Codec: codecRaw, MhType: mh.SHA2_512, MhLength: -1}.Sum([]byte("x"))
	dagpb := cid.NewCidV1(cid.DagProtobuf, rawC.Hash()).String()
	file := func(size int64, chunks string) string {
		return fmt.Sprintf(`{"kind":"file","size":%d,"chunks":[%s]}`, size, chunks)
	}
	chunk := func(c string, size int64) string { return fmt.Sprintf(`{"cid":"%s","size":%d}`, c, size) }
	dir := func(entries ...string) string {
		return `{"kind":"dir","entries":[` + strings.Join(entries, ",") + `]}`
	}
	entry := func(name, c, kind string, size int64) string {
		return fmt.Sprintf(`{"name":%s,"cid":"%s","kind":"%s","size":%d}`, name, c, kind, size)
	}

	tests := []struct {
		name string
		data string
		want string // "" means valid
	}{
		{"file ok", file(ChunkSize+1, chunk(raw, ChunkSize)+","+chunk(raw, 1)), ""},
		{"dir ok", dir(entry(`"a"`, raw, "file", 1), entry(`"b"`, js, "dir", 9)), ""},
		{"empty dir ok", dir(), ""},
		{"escaped name ok", dir(entry(`"a\u003cb"`, raw, "file", 1)), ""},

		{"empty input", "", "malformed"},
		{"not json", "hello", "malformed"},
		{"json array", "[1,2]", "malformed"},
		{"truncated", `{"kind":"dir","entries":[`, "malformed"},
		{"trailing data", dir() + " x", "malformed"},
		{"unknown kind", `{"kind":"blob"}`, "neither"},
		{"no kind", `{"entries":[]}`, "neither"},
		{"entries null", `{"kind":"dir","entries":null}`, "entries missing"},
		{"entries absent", `{"kind":"dir"}`, "entries missing"},
		{"unknown field", `{"kind":"dir","entries":[],"x":1}`, "unknown field"},
		{"whitespace", `{"kind": "dir","entries":[]}`, "canonical"},
		{"duplicate key", `{"kind":"dir","kind":"dir","entries":[]}`, "canonical"},
		{"key case", `{"KIND":"dir","entries":[]}`, "canonical"},
		{"unescaped html", dir(entry(`"a<b"`, raw, "file", 1)), "canonical"},
		{"lone surrogate", dir(entry(`"\udc80"`, raw, "file", 1)), "canonical"},

		{"file size huge", `{"kind":"file","size":1000000000000000000000000000000,"chunks":[]}`, "malformed"},
		{"file size float", `{"kind":"file","size":1.5,"chunks":[]}`, "malformed"},
		{"file no chunks", file(0, ""), "no chunks"},
		{"file size mismatch", file(5, chunk(raw, 1)), "add up"},
		{"chunk size negative", file(-1, chunk(raw, -1)), "out of range"},
		{"chunk size zero", file(0, chunk(raw, 0)), "out of range"},
		{"raw chunk over ChunkSize", file(ChunkSize+1, chunk(raw, ChunkSize+1)), "out of range"},
		{"chunk sizes overflow", file(math.MaxInt64, chunk(js, math.MaxInt64)+","+chunk(js, 1)), "overflow"},
		{"dir sizes overflow", dir(entry(`"a"`, js, "dir", math.MaxInt64), entry(`"b"`, js, "dir", 1)), "overflow"},
		{"entry size negative", dir(entry(`"a"`, js, "dir", -1)), "negative"},
		{"raw file entry too big", dir(entry(`"a"`, raw, "file", ChunkSize+1)), "raw file"},

		{"name dotdot slash", dir(entry(`"../x"`, raw, "file", 1)), "'/'"},
		{"name dotdot", dir(entry(`".."`, raw, "file", 1)), "not allowed"},
		{"name dot", dir(entry(`"."`, raw, "file", 1)), "not allowed"},
		{"name empty", dir(entry(`""`, raw, "file", 1)), "empty name"},
		{"name absolute", dir(entry(`"/etc"`, raw, "file", 1)), "'/'"},
		{"name nul", dir(entry(`"a\u0000"`, raw, "file", 1)), "NUL"},
		{"name too long", dir(entry(`"`+strings.Repeat("x", 256)+`"`, raw, "file", 1)), "limit"},
		{"unsorted", dir(entry(`"b"`, raw, "file", 1), entry(`"a"`, raw, "file", 1)), "sorted"},
		{"duplicate name", dir(entry(`"a"`, raw, "file", 1), entry(`"a"`, raw, "file", 1)), "sorted"},
		{"bad kind", dir(entry(`"a"`, raw, "link", 1)), "kind"},
		{"dir with raw codec", dir(entry(`"a"`, raw, "dir", 1)), "kind"},

		{"cid garbage", dir(entry(`"a"`, "notacid", "file", 1)), "bad CID"},
		{"cid empty", file(1, chunk("", 1)), "bad CID"},
		{"cid v0", dir(entry(`"a"`, v0, "file", 1)), "CIDv1"},
		{"cid base58 spelling", dir(entry(`"a"`, b58, "file", 1)), "canonical base32"},
		{"cid sha512", dir(entry(`"a"`, sha512.String(), "file", 1)), "sha2-256"},
		{"cid dag-pb", file(1, chunk(dagpb, 1)), "codec"},

		{"oversized", `{"kind":"dir","entries":[` + strings.Repeat(" ", MaxBlockSize) + `]}`, "limit"},
	}
	jsonC := sumCID(codecJSON, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			links, err := Links(jsonC, []byte(tt.data))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("%s: %v", tt.data, err)
				}
				if len(links) == 0 && !strings.Contains(tt.data, "[]") {
					t.Fatal("no links")
				}
				return
			}
			wantErr(t, err, tt.want)
		})
	}
}

func TestLinksRaw(t *testing.T) {
	links, err := Links(sumCID(codecRaw, []byte("{}")), []byte(`{"kind":"dir","entries":[]}`))
	if err != nil || links != nil {
		t.Fatalf("raw block: %v, %v", links, err)
	}
	if _, err := Links(cid.NewCidV1(cid.DagCBOR, sumCID(codecRaw, nil).Hash()), nil); err == nil {
		t.Fatal("dag-cbor accepted")
	}
}

func TestDirNodeTooBig(t *testing.T) {
	c := sumCID(codecJSON, nil)
	entries := make([]dirEntry, 12000)
	for i := range entries {
		entries[i] = dirEntry{name: fmt.Sprintf("file-%06d.txt", i), c: c, kind: KindFile, size: 1}
	}
	_, _, err := encodeDirNode(entries)
	wantErr(t, err, "12000 entries", "over the")
	if _, _, err := encodeDirNode(entries[:7000]); err != nil {
		t.Fatalf("7000 entries: %v", err)
	}
}
