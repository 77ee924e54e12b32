package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel signal a child when this process dies,
// even if it is killed.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
