package sdk

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// setParentDeathSignal asks the kernel for SIGTERM when the node dies, even
// by kill -9. The node sets it when it starts the plugin too; setting it here
// covers nodes that do not.
func setParentDeathSignal() error {
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_PDEATHSIG): %w", err)
	}
	return nil
}
