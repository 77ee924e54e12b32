package keystore

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

func TestGenerateListPrivate(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	k, err := s.Generate("einstein")
	if err != nil {
		t.Fatal(err)
	}
	info, _ := os.Stat(filepath.Join(s.dir, "einstein.key"))
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %04o", info.Mode().Perm())
	}
	if _, err := s.Generate("einstein"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second generate: %v", err)
	}
	priv, err := s.Private("einstein")
	if err != nil || !priv.GetPublic().Equals(k.Public) {
		t.Fatalf("private: %v", err)
	}
	s.Generate("bohr")
	keys, err := s.List()
	if err != nil || len(keys) != 2 || keys[0].Name != "bohr" || keys[1].Type != "Ed25519" {
		t.Fatalf("list: %v %v", keys, err)
	}
	name, _, err := s.Find(k.Public)
	if err != nil || name != "einstein" {
		t.Fatalf("find: %q %v", name, err)
	}
}

func TestBadNamesAndMissingKeys(t *testing.T) {
	s, _ := Open(t.TempDir())
	for _, bad := range []string{"", "../x", "UPPER", "a b", strings.Repeat("a", 65)} {
		if _, err := s.Generate(bad); err == nil {
			t.Errorf("generate %q succeeded", bad)
		}
	}
	if _, err := s.Private("nope"); err == nil || !strings.Contains(err.Error(), "avnode key gen nope") {
		t.Fatalf("missing key: %v", err)
	}
	os.WriteFile(filepath.Join(s.dir, "junk.key"), []byte("junk"), 0o600)
	if _, err := s.List(); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged key not reported: %v", err)
	}
}

// A daemon lists and loads keys while `avnode key gen` writes new ones: it
// never finds half a key, every key written is whole, and a name is never
// taken twice, even by writers racing for it.
func TestKeysWrittenWhileListed(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	done, stop := make(chan struct{}), make(chan struct{})
	var listErr error
	var lists int
	go func() {
		defer close(done)
		for {
			if _, err := s.List(); err != nil {
				listErr = err
				return
			}
			lists++
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	var wg sync.WaitGroup
	var won atomic.Int32
	for w := range 4 {
		wg.Go(func() {
			for i := range 25 {
				if _, err := s.Generate(fmt.Sprintf("k%d-%d", w, i)); err != nil {
					t.Error(err)
				}
				if _, err := s.Generate("contested"); err == nil {
					won.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-done
	if listErr != nil {
		t.Fatalf("List while keys were written (after %d lists): %v", lists, listErr)
	}
	keys, err := s.List()
	if err != nil || len(keys) != 101 {
		t.Fatalf("List: %d keys, %v; want 100 and the contested one", len(keys), err)
	}
	if won.Load() != 1 {
		t.Fatalf("the name contested was written %d times; want once", won.Load())
	}
}

// Where the file system has no hard links, keys are still written, whole,
// and a name is still never taken twice.
func TestKeysWithoutHardLinks(t *testing.T) {
	link = func(string, string) error { return &os.LinkError{Op: "link", Err: syscall.EPERM} }
	t.Cleanup(func() { link = os.Link })
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	k, err := s.Generate("alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Generate("alice"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second alice: %v; want already exists", err)
	}
	keys, err := s.List()
	if err != nil || len(keys) != 1 || !keys[0].Public.Equals(k.Public) {
		t.Fatalf("List: %+v, %v; want alice alone", keys, err)
	}
	entries, _ := os.ReadDir(s.dir)
	if len(entries) != 1 {
		t.Fatalf("keystore holds %d files; want the key alone, no temporary file left", len(entries))
	}
}
