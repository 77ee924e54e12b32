package plugins

import (
	"os"
	"path/filepath"
)

// copyImageToFile copies the binary into a fresh folder only the node's
// user can enter, and makes the copy read-only.
func copyImageToFile(role string, src *os.File) (*image, error) {
	dir, err := os.MkdirTemp("", "avnode-plugin-")
	if err != nil {
		return nil, err
	}
	drop := func() { os.RemoveAll(dir) }
	path := filepath.Join(dir, BinaryPrefix+role)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o700)
	if err != nil {
		drop()
		return nil, err
	}
	sum, err := copyThroughHash(f, src)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(path, 0o500)
	}
	if err != nil {
		drop()
		return nil, err
	}
	return &image{sum: sum, exec: path, drop: drop}, nil
}
