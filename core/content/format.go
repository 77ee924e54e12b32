package content

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/avnode/avnode/core/fault"
)

// ChunkSize is the number of file bytes in one raw block.
const ChunkSize = 1 << 20

// MaxBlockSize bounds every block: a full chunk, or a node with room to spare.
const MaxBlockSize = ChunkSize + 4<<10

// MaxNameLen is the longest directory entry name, in bytes (as on most file systems).
const MaxNameLen = 255

// Kinds of DAG roots and directory entries.
const (
	KindFile = "file"
	KindDir  = "dir"
)

const (
	codecRaw  = cid.Raw // 0x55: a chunk of file bytes
	codecJSON = 0x0200  // multicodec "json": a file or dir node
)

// maxFileLinks is how many links one file node holds. At most ~99 bytes per link
// (61-char CID, 19-digit size, punctuation) this stays well under MaxBlockSize.
// A variable only so tests can build deep trees from small files.
var maxFileLinks = 8192

// maxFileDepth bounds recursion through file nodes. 8192-way trees reach 2^63 bytes
// in 5 levels, so only a hostile DAG goes deeper.
const maxFileDepth = 16

// maxDirDepth bounds directory nesting on import and export, so a hostile DAG cannot
// exhaust the stack or the path length of the machine that exports it.
const maxDirDepth = 1024

var (
	// ErrNotFound is wrapped by errors for a block that is not in the store.
	ErrNotFound error = fault.New(fault.NotFound, "block not found")
	// ErrInvalidBlock is wrapped by every VerifyBlock failure: the sender of such
	// a block gave bad data.
	ErrInvalidBlock = errors.New("invalid block")
	// ErrNoEntry is wrapped by ResolvePath when a path element does not exist.
	ErrNoEntry error = fault.New(fault.NotFound, "no such entry")
)

// The wire structs. Field order is the encoding order; never reorder or add
// fields: a node's bytes, and so every root CID above it, depend on it.
type fileNodeJSON struct {
	Kind   string     `json:"kind"`
	Size   int64      `json:"size"`
	Chunks []linkJSON `json:"chunks"`
}

type linkJSON struct {
	CID  string `json:"cid"`
	Size int64  `json:"size"`
}

type dirNodeJSON struct {
	Kind    string         `json:"kind"`
	Entries []dirEntryJSON `json:"entries"`
}

type dirEntryJSON struct {
	Name string `json:"name"`
	CID  string `json:"cid"`
	Kind string `json:"kind"`
	Size int64  `json:"size"`
}

// link is a decoded file node child.
type link struct {
	c    cid.Cid
	size int64
}

// dirEntry is a decoded directory entry.
type dirEntry struct {
	name string
	c    cid.Cid
	kind string
	size int64
}

// node is a decoded, validated node block.
type node struct {
	kind    string
	size    int64 // file: its length; dir: the sum of its entries' sizes
	chunks  []link
	entries []dirEntry
}

func (n *node) links() []cid.Cid {
	out := make([]cid.Cid, 0, len(n.chunks)+len(n.entries))
	for _, l := range n.chunks {
		out = append(out, l.c)
	}
	for _, e := range n.entries {
		out = append(out, e.c)
	}
	return out
}

// sumCID is the CID of data under codec. Hashing here, once, is why the importer
// can store its own blocks without VerifyBlock hashing them again.
func sumCID(codec uint64, data []byte) cid.Cid {
	d := sha256.Sum256(data)
	m, err := mh.Encode(d[:], mh.SHA2_256)
	if err != nil {
		panic(err) // sha2-256 with a 32-byte digest always encodes
	}
	return cid.NewCidV1(codec, m)
}

// checkCID accepts only the CIDs this format produces.
func checkCID(c cid.Cid) error {
	if !c.Defined() {
		return errors.New("undefined CID")
	}
	if c.Version() != 1 {
		return fmt.Errorf("CID %s is version %d; avnode uses CIDv1", c, c.Version())
	}
	if t := c.Type(); t != codecRaw && t != codecJSON {
		return fmt.Errorf("CID %s has codec 0x%x; avnode uses raw (0x55) and json (0x0200)", c, t)
	}
	d, err := mh.Decode(c.Hash())
	if err != nil {
		return fmt.Errorf("CID %s: bad multihash: %v", c, err)
	}
	if d.Code != mh.SHA2_256 || d.Length != sha256.Size {
		return fmt.Errorf("CID %s uses hash 0x%x of %d bytes; avnode uses sha2-256 (32 bytes)", c, d.Code, d.Length)
	}
	return nil
}

// VerifyBlock checks that data hashes to c and is no larger than MaxBlockSize.
// Every error wraps ErrInvalidBlock.
func VerifyBlock(c cid.Cid, data []byte) error {
	if len(data) > MaxBlockSize {
		return fmt.Errorf("block %s: %d bytes is over the %d-byte limit: %w", c, len(data), MaxBlockSize, ErrInvalidBlock)
	}
	if err := checkCID(c); err != nil {
		return fmt.Errorf("block %s: %v: %w", c, err, ErrInvalidBlock)
	}
	d, _ := mh.Decode(c.Hash()) // checked by checkCID
	got := sha256.Sum256(data)
	if !bytes.Equal(got[:], d.Digest) {
		return fmt.Errorf("block %s: its %d bytes hash to sha2-256 %x, not to the CID; the source sent corrupt data, fetch it elsewhere: %w",
			c, len(data), got[:6], ErrInvalidBlock)
	}
	return nil
}

// Links returns the CIDs a block refers to: nil for a raw block, the children of
// a file or dir node. It refuses malformed or non-canonical nodes.
func Links(c cid.Cid, data []byte) ([]cid.Cid, error) {
	if err := checkCID(c); err != nil {
		return nil, err
	}
	if c.Type() == codecRaw {
		return nil, nil
	}
	n, err := decodeNode(data)
	if err != nil {
		return nil, fmt.Errorf("block %s: %w", c, err)
	}
	return n.links(), nil
}

// checkName refuses names that are not a single, portable path element.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case name == "." || name == "..":
		return fmt.Errorf("name %q is not allowed", name)
	case len(name) > MaxNameLen:
		return fmt.Errorf("name %.40q… is %d bytes, over the %d-byte limit", name, len(name), MaxNameLen)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("name %q contains '/' or NUL", name)
	case !utf8.ValidString(name):
		return fmt.Errorf("name %q is not valid UTF-8", name)
	}
	return nil
}

// parseLinkCID parses a CID as it must appear in a node: in its canonical
// (base32) spelling, so that one node has exactly one encoding.
func parseLinkCID(s string) (cid.Cid, error) {
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, fmt.Errorf("bad CID %.80q: %v", s, err)
	}
	if err := checkCID(c); err != nil {
		return cid.Undef, err
	}
	if c.String() != s {
		return cid.Undef, fmt.Errorf("CID %.80q is not in canonical base32 form %s", s, c)
	}
	return c, nil
}

func addSize(total, n int64) (int64, error) {
	if n < 0 {
		return 0, fmt.Errorf("negative size %d", n)
	}
	if total > math.MaxInt64-n {
		return 0, errors.New("sizes overflow int64")
	}
	return total + n, nil
}

// encodeFileNode builds the node for a file made of links, in order.
func encodeFileNode(links []link) ([]byte, int64, error) {
	fn := fileNodeJSON{Kind: KindFile, Chunks: make([]linkJSON, len(links))}
	for i, l := range links {
		var err error
		if fn.Size, err = addSize(fn.Size, l.size); err != nil {
			return nil, 0, err
		}
		fn.Chunks[i] = linkJSON{CID: l.c.String(), Size: l.size}
	}
	data, err := json.Marshal(fn)
	if err != nil {
		return nil, 0, err
	}
	if len(data) > MaxBlockSize {
		return nil, 0, fmt.Errorf("file node of %d links is %d bytes, over the %d-byte limit", len(links), len(data), MaxBlockSize)
	}
	return data, fn.Size, nil
}

// encodeDirNode builds the node for a directory; it sorts entries by name.
func encodeDirNode(entries []dirEntry) ([]byte, int64, error) {
	sorted := slices.Clone(entries)
	slices.SortFunc(sorted, func(a, b dirEntry) int { return strings.Compare(a.name, b.name) })
	dn := dirNodeJSON{Kind: KindDir, Entries: make([]dirEntryJSON, len(sorted))}
	var total int64
	for i, e := range sorted {
		if err := checkName(e.name); err != nil {
			return nil, 0, err
		}
		if i > 0 && sorted[i-1].name == e.name {
			return nil, 0, fmt.Errorf("duplicate name %q", e.name)
		}
		var err error
		if total, err = addSize(total, e.size); err != nil {
			return nil, 0, err
		}
		dn.Entries[i] = dirEntryJSON{Name: e.name, CID: e.c.String(), Kind: e.kind, Size: e.size}
	}
	data, err := json.Marshal(dn)
	if err != nil {
		return nil, 0, err
	}
	if len(data) > MaxBlockSize {
		return nil, 0, fmt.Errorf("%d entries make a %d-byte directory node, over the %d-byte limit", len(entries), len(data), MaxBlockSize)
	}
	return data, total, nil
}

// decodeNode parses and validates a node block. It accepts only the exact bytes
// encodeFileNode or encodeDirNode would produce for the same content, so every
// node has one encoding and a decoder never has to guess.
func decodeNode(data []byte) (*node, error) {
	if len(data) > MaxBlockSize {
		return nil, fmt.Errorf("node is %d bytes, over the %d-byte limit", len(data), MaxBlockSize)
	}
	var probe struct {
		Kind string `json:"kind"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("malformed node: %v", err)
	}
	var (
		n   *node
		v   any
		err error
	)
	switch probe.Kind {
	case KindFile:
		var fn fileNodeJSON
		if err = strictUnmarshal(data, &fn); err == nil {
			n, err = checkFileNode(&fn)
		}
		v = &fn
	case KindDir:
		var dn dirNodeJSON
		if err = strictUnmarshal(data, &dn); err == nil {
			n, err = checkDirNode(&dn)
		}
		v = &dn
	default:
		return nil, fmt.Errorf("malformed node: kind %.40q is neither %q nor %q", probe.Kind, KindFile, KindDir)
	}
	if err != nil {
		return nil, err
	}
	again, err := json.Marshal(v)
	if err != nil || !bytes.Equal(again, data) {
		return nil, errors.New("malformed node: not in canonical encoding (field order, spacing, escaping or duplicate keys differ)")
	}
	return n, nil
}

func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed node: %v", err)
	}
	return nil
}

func checkFileNode(fn *fileNodeJSON) (*node, error) {
	if len(fn.Chunks) == 0 {
		return nil, errors.New("malformed file node: no chunks")
	}
	n := &node{kind: KindFile, size: fn.Size, chunks: make([]link, len(fn.Chunks))}
	var total int64
	for i, l := range fn.Chunks {
		c, err := parseLinkCID(l.CID)
		if err != nil {
			return nil, fmt.Errorf("malformed file node: chunk %d: %v", i, err)
		}
		if l.Size <= 0 || (c.Type() == codecRaw && l.Size > ChunkSize) {
			return nil, fmt.Errorf("malformed file node: chunk %d: size %d out of range", i, l.Size)
		}
		if total, err = addSize(total, l.Size); err != nil {
			return nil, fmt.Errorf("malformed file node: chunk %d: %v", i, err)
		}
		n.chunks[i] = link{c: c, size: l.Size}
	}
	if total != fn.Size {
		return nil, fmt.Errorf("malformed file node: size %d but its chunks add up to %d", fn.Size, total)
	}
	return n, nil
}

func checkDirNode(dn *dirNodeJSON) (*node, error) {
	if dn.Entries == nil {
		return nil, errors.New("malformed dir node: entries missing")
	}
	n := &node{kind: KindDir, entries: make([]dirEntry, len(dn.Entries))}
	for i, e := range dn.Entries {
		if err := checkName(e.Name); err != nil {
			return nil, fmt.Errorf("malformed dir node: entry %d: %v", i, err)
		}
		if i > 0 && dn.Entries[i-1].Name >= e.Name {
			return nil, fmt.Errorf("malformed dir node: entry %q is not sorted after %q, or repeats it", e.Name, dn.Entries[i-1].Name)
		}
		c, err := parseLinkCID(e.CID)
		if err != nil {
			return nil, fmt.Errorf("malformed dir node: entry %q: %v", e.Name, err)
		}
		switch {
		case e.Kind == KindDir && c.Type() == codecJSON:
		case e.Kind == KindFile && c.Type() == codecJSON:
		case e.Kind == KindFile && c.Type() == codecRaw:
			if e.Size > ChunkSize {
				return nil, fmt.Errorf("malformed dir node: entry %q: raw file of size %d", e.Name, e.Size)
			}
		default:
			return nil, fmt.Errorf("malformed dir node: entry %q: kind %.20q with codec 0x%x", e.Name, e.Kind, c.Type())
		}
		if n.size, err = addSize(n.size, e.Size); err != nil {
			return nil, fmt.Errorf("malformed dir node: entry %q: %v", e.Name, err)
		}
		n.entries[i] = dirEntry{name: e.Name, c: c, kind: e.Kind, size: e.Size}
	}
	return n, nil
}

// Link is a child a block refers to, with the file bytes its parent says
// the child holds.
type Link struct {
	CID  cid.Cid
	Size int64
}

// Sizes decodes a block for its sizes: the file bytes it holds (a raw
// block's length, a node's declared size) and its children, each with the
// size the block declares for it. It refuses malformed or non-canonical nodes.
func Sizes(c cid.Cid, data []byte) (size int64, links []Link, err error) {
	if err := checkCID(c); err != nil {
		return 0, nil, err
	}
	if c.Type() == codecRaw {
		return int64(len(data)), nil, nil
	}
	n, err := decodeNode(data)
	if err != nil {
		return 0, nil, fmt.Errorf("block %s: %w", c, err)
	}
	return n.size, n.sizedLinks(), nil
}

func (n *node) sizedLinks() []Link {
	out := make([]Link, 0, len(n.chunks)+len(n.entries))
	for _, l := range n.chunks {
		out = append(out, Link{CID: l.c, Size: l.size})
	}
	for _, e := range n.entries {
		out = append(out, Link{CID: e.c, Size: e.size})
	}
	return out
}
