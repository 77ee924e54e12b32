//go:build !unix

package policy

import "os"

func pollable(f *os.File) *os.File { return f }
