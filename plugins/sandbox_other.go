//go:build !linux

package plugins

import (
	"errors"
	"runtime"
)

const sandboxAvailable = false

func sandboxLevel() (string, bool) {
	return "none (" + runtime.GOOS + ": the plugin has the node's rights)", false
}

func execConfined(sandboxSpec) error { return errors.New("no sandbox on " + runtime.GOOS) }
