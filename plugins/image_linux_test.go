package plugins

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// When the kernel will not seal the memfd (EBUSY on a loaded machine), the
// role still starts: from a private file copy holding the same bytes, with
// the same checksum, that nobody but the node can write.
func TestBusySealFallsBackToAPrivateCopy(t *testing.T) {
	sealImage = func(*os.File) error { return unix.EBUSY }
	t.Cleanup(func() { sealImage = seal })
	want, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Skip(err)
	}
	src, err := os.Open("/bin/true")
	if err != nil {
		t.Skip(err)
	}
	defer src.Close()
	img, err := copyImage("true", src)
	if err != nil {
		t.Fatalf("copyImage with a busy seal: %v", err)
	}
	dir := filepath.Dir(img.exec)
	defer func() {
		img.close()
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("the private copy's folder %s outlived the image", dir)
		}
	}()
	if sum := sha256.Sum256(want); string(img.sum) != string(sum[:]) {
		t.Fatalf("image sum %x; want %x", img.sum, sum)
	}
	got, err := os.ReadFile(img.exec)
	if err != nil || string(got) != string(want) {
		t.Fatalf("the private copy %s differs from the binary (%v)", img.exec, err)
	}
	st, err := os.Stat(img.exec)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o500 {
		t.Fatalf("private copy mode %v; want 0500", st.Mode().Perm())
	}
	if out, err := img.command().CombinedOutput(); err != nil {
		t.Fatalf("the private copy does not run: %v\n%s", err, out)
	}
}
