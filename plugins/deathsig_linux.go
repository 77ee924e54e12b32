package plugins

import (
	"os/exec"
	"syscall"
)

// dieWithNode is belt and braces with the SDK's own watch: the kernel
// signals the plugin when the node dies, even by kill -9.
func dieWithNode(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
