package content

import (
	"bytes"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	cid "github.com/ipfs/go-cid"
)

func newStore(t testing.TB) *Blockstore {
	t.Helper()
	bs, err := OpenBlockstore(filepath.Join(t.TempDir(), "blocks"))
	if err != nil {
		t.Fatal(err)
	}
	return bs
}

// randBytes is deterministic per seed, so a failing test fails the same way again.
func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 7}))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// tree describes files by slash path; a nil value is an (empty) directory.
type tree map[string][]byte

func writeTree(t testing.TB, root string, tr tree) {
	t.Helper()
	for p, data := range tr {
		full := filepath.Join(root, filepath.FromSlash(p))
		if data == nil {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readTree is the inverse of writeTree: every file and every directory.
func readTree(t testing.TB, root string) tree {
	t.Helper()
	out := tree{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			out[rel] = nil
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[rel] = data
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameTree compares trees; want's parent directories are implied.
func sameTree(t testing.TB, want, got tree) {
	t.Helper()
	want = maps.Clone(want)
	for p := range want {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			want[d] = nil
		}
	}
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			t.Errorf("%s: missing", p)
		case (w == nil) != (g == nil):
			t.Errorf("%s: directory/file mismatch", p)
		case !bytes.Equal(w, g):
			t.Errorf("%s: content differs (%d vs %d bytes)", p, len(w), len(g))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: unexpected", p)
		}
	}
}

// jsonBlocks lists the node blocks in a store.
func jsonBlocks(t testing.TB, bs *Blockstore) []cid.Cid {
	t.Helper()
	keys, err := bs.AllKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []cid.Cid
	for _, c := range keys {
		if c.Type() == codecJSON {
			out = append(out, c)
		}
	}
	return out
}

func wantErr(t testing.TB, err error, contains ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one containing %q", contains)
	}
	for _, s := range contains {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not contain %q", err, s)
		}
	}
}
