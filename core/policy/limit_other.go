//go:build !linux

package policy

import (
	"errors"
	"runtime/debug"
)

// limitMemory sets only Go's soft memory limit: outside Linux the address
// space cannot be capped reliably (macOS ignores RLIMIT_AS), so a memory
// bomb can grow the worker until the operating system stops it. It still
// cannot take the node down with it.
func limitMemory(mb int) (uint64, error) {
	debug.SetMemoryLimit(int64(mb) << 20 * 7 / 8)
	return 0, errors.New("no address-space limit on this operating system")
}
