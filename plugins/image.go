package plugins

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
)

// image is a role's plugin binary as the node read it: the bytes were hashed
// while they were copied to a place only the node can change, and those
// bytes are what runs. A file swapped in the plugin folder after the read
// is never executed; it is read, and checked, at the next start.
type image struct {
	path string // where the binary was found
	sum  []byte // sha256 of the bytes read
	file *os.File
	exec string // the path a child execs: the sealed copy
	drop func()
}

// loadImage reads the role's binary once into a private copy and checks it
// against the role's pinned checksum, if any.
func (m *Manager) loadImage(role string) (*image, error) {
	path, err := m.Find(role)
	if err != nil {
		return nil, err
	}
	src, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("role %s: %w", role, err)
	}
	defer src.Close()
	img, err := copyImage(role, src)
	if err != nil {
		return nil, fmt.Errorf("role %s: copy %s: %w", role, path, err)
	}
	img.path = path
	if want, pinned := m.opts.Checksums[role]; pinned && hex.EncodeToString(img.sum) != want {
		img.close()
		return nil, fmt.Errorf("role %s: refused to run %s: its sha256 is %x but plugins.checksums.%s pins %s; rebuild the plugin you meant or update the pin",
			role, path, img.sum, role, want)
	}
	return img, nil
}

// copyThroughHash copies src to dst and returns the sha256 of what it copied.
func copyThroughHash(dst io.Writer, src io.Reader) ([]byte, error) {
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(dst, h), src); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

func (img *image) close() {
	if img.file != nil {
		img.file.Close()
	}
	if img.drop != nil {
		img.drop()
	}
}

// command runs the image's bytes directly, unconfined.
func (img *image) command(args ...string) *exec.Cmd {
	cmd := exec.Command(img.exec, args...)
	passImage(cmd, img)
	return cmd
}
