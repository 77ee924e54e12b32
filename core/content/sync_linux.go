package content

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncFS flushes the file system that holds dir (syncfs).
func syncFS(dir *os.File) error { return unix.Syncfs(int(dir.Fd())) }
