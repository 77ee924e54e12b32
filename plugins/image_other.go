//go:build !linux

package plugins

import (
	"os"
	"os/exec"
)

func copyImage(role string, src *os.File) (*image, error) { return copyImageToFile(role, src) }

func passImage(*exec.Cmd, *image) {}
