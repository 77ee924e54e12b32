//go:build !linux

package main

import "os/exec"

// dieWithParent does nothing here: only Linux has a parent-death signal, so
// a localnet's nodes outlive a killed `avnode localnet` (stop them by hand).
func dieWithParent(*exec.Cmd) {}
