//go:build unix

package content

import (
	"path/filepath"
	"syscall"
	"testing"
)

func TestImportRefusesFifo(t *testing.T) {
	bs := newStore(t)
	src := t.TempDir()
	writeTree(t, src, tree{"ok.txt": []byte("ok")})
	fifo := filepath.Join(src, "pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Import(t.Context(), src, bs, nil)
	wantErr(t, err, fifo, "fifo", "remove it")
	if nodes := jsonBlocks(t, bs); len(nodes) != 0 {
		t.Fatalf("nodes stored: %v", nodes)
	}
}
