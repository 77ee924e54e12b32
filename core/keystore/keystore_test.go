package keystore

import (
	"os"
	"path/filepath"
	"strings"
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
