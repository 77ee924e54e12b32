package sdk

import "os"

// WriteFileAtomic writes a role's state file so that a crash leaves the
// old file or the new one, never half of one.
func WriteFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
