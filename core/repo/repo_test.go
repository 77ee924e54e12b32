package repo

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ds "github.com/ipfs/go-datastore"
)

func TestInitLayoutAndPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	if err := Init(dir); err != nil {
		t.Fatal(err)
	}
	modes := map[string]os.FileMode{
		"":          0o700,
		NodeKeyFile: 0o600,
		ConfigFile:  0o600,
		KeystoreDir: 0o700,
	}
	for name, want := range modes {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%q: mode %04o, want %04o", name, got, want)
		}
	}
	cfg, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
	if !strings.Contains(string(cfg), "# ") || !strings.Contains(string(cfg), "protocol_prefix: /avtr") {
		t.Fatalf("config is not the commented defaults:\n%s", cfg)
	}
}

func TestInitRefusesExistingRepo(t *testing.T) {
	dir := t.TempDir()
	if err := Init(dir); err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(filepath.Join(dir, NodeKeyFile))
	err := Init(dir)
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second init: %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, NodeKeyFile))
	if string(after) != string(key) {
		t.Fatal("second init changed the node key")
	}
}

func TestInitRefusesNonEmptyDirAndLeavesItAlone(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "precious.txt"), []byte("mine"), 0o600)
	if err := Init(dir); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("init into non-empty dir: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("init left files behind: %v", entries)
	}
}

func TestOpenLocksAndPersists(t *testing.T) {
	dir := t.TempDir()
	if err := Init(dir); err != nil {
		t.Fatal(err)
	}
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "in use by another avnode process") {
		t.Fatalf("second open: %v", err)
	}
	ctx := context.Background()
	if err := r.Datastore.Put(ctx, ds.NewKey("/k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	id1 := r.NodeKey.GetPublic()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, LockFile)); !os.IsNotExist(err) {
		t.Fatalf("lock file left behind: %v", err)
	}
	r, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.NodeKey.GetPublic().Equals(id1) {
		t.Fatal("node key changed across reopen")
	}
	if v, err := r.Datastore.Get(ctx, ds.NewKey("/k")); err != nil || string(v) != "v" {
		t.Fatalf("datastore lost a value: %q %v", v, err)
	}
}

func TestOpenBadKeys(t *testing.T) {
	cases := []struct {
		name   string
		break_ func(dir string)
		want   string
	}{
		{"missing", func(dir string) { os.Remove(filepath.Join(dir, NodeKeyFile)) }, "no such file"},
		{"readable by others", func(dir string) { os.Chmod(filepath.Join(dir, NodeKeyFile), 0o644) }, "chmod 600"},
		{"damaged", func(dir string) { os.WriteFile(filepath.Join(dir, NodeKeyFile), []byte("junk"), 0o600) }, "damaged"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := Init(dir); err != nil {
				t.Fatal(err)
			}
			tc.break_(dir)
			_, err := Open(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			// A failed open must not keep the repo locked.
			if _, err := os.Stat(filepath.Join(dir, LockFile)); !os.IsNotExist(err) {
				t.Fatalf("failed open left the lock: %v", err)
			}
		})
	}
}

func TestOpenUninitialized(t *testing.T) {
	_, err := Open(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "avnode init") {
		t.Fatalf("got %v", err)
	}
}
