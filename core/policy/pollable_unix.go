//go:build unix

package policy

import (
	"os"
	"syscall"
)

// pollable reopens an inherited pipe in non-blocking mode, so Go's network
// poller waits on it. A blocking pipe ties up a thread in read(2), and a
// call that arrives meanwhile waits for the scheduler to notice; through the
// poller a request is picked up in microseconds.
func pollable(f *os.File) *os.File {
	fd := f.Fd()
	if err := syscall.SetNonblock(int(fd), true); err != nil {
		return f
	}
	return os.NewFile(fd, f.Name())
}
