package policy

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// limitMemory caps the worker's address space at what is mapped now plus mb
// MiB, and returns the cap. Any Go program has already reserved about a
// gigabyte of address space by the time main runs, so an absolute cap of a
// few hundred MiB would kill the runtime at its first heap growth; counting
// from what is mapped makes mb what a script can actually make the worker
// allocate. Go's soft memory limit sits below it so the collector works
// hard before the hard limit kills the process.
func limitMemory(mb int) (uint64, error) {
	mapped, err := mappedBytes()
	if err != nil {
		return 0, err
	}
	limit := mapped + uint64(mb)<<20*raceShadowFactor
	if err := unix.Setrlimit(unix.RLIMIT_AS, &unix.Rlimit{Cur: limit, Max: limit}); err != nil {
		return 0, fmt.Errorf("set RLIMIT_AS to %d bytes: %w", limit, err)
	}
	debug.SetMemoryLimit(int64(mb) << 20 * 7 / 8)
	return limit, nil
}

// mappedBytes is the process's current address-space size, from the first
// field of /proc/self/statm (in pages).
func mappedBytes() (uint64, error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, err
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 0, fmt.Errorf("empty /proc/self/statm")
	}
	pages, err := strconv.ParseUint(fields[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse /proc/self/statm: %w", err)
	}
	return pages * uint64(os.Getpagesize()), nil
}
