//go:build !linux

package plugins

import "os/exec"

// dieWithNode does nothing here: only Linux has a parent-death signal. The
// SDK's own watch still ends a plugin whose node is gone.
func dieWithNode(*exec.Cmd) {}
