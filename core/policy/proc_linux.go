package policy

import "syscall"

// sysProcAttr keeps the worker from outliving the node (the kernel kills it
// when the node's thread that started it exits; the worker also exits when
// its stdin closes) and from getting the terminal's Ctrl-C, which is the
// node's to handle: a worker dying mid-shutdown would only be restarted.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
