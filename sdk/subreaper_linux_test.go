package sdk

import (
	"testing"

	"golang.org/x/sys/unix"
)

// setChildSubreaper makes the test process adopt its orphaned descendants
// for the length of the test; false if the kernel refuses.
func setChildSubreaper(t *testing.T) bool {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Logf("prctl(PR_SET_CHILD_SUBREAPER): %v; checking /proc instead", err)
		return false
	}
	t.Cleanup(func() { _ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
	return true
}
