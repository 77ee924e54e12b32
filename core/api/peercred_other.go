//go:build !linux && !darwin

package api

import (
	"errors"
	"runtime"
)

// errNoPeerCredentials is why the control API does not start here: it lets
// in only the node's own user, and asks the kernel who connects, which this
// code does on Linux and macOS only.
var errNoPeerCredentials = errors.New("the control API needs Linux or macOS: it checks which user connects to its socket, and avnode reads peer credentials only there (this is " + runtime.GOOS + ")")

func peerCredentialsSupported() error { return errNoPeerCredentials }

func socketPeerUID(int) (uint32, error) { return 0, errNoPeerCredentials }
