//go:build !linux

package policy

import "syscall"

// sysProcAttr: only Linux can tie the worker's life to the node's; elsewhere
// the worker exits when its stdin closes, which happens when the node dies.
func sysProcAttr() *syscall.SysProcAttr { return nil }
