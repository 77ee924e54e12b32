package api

import "syscall"

func peerCredentialsSupported() error { return nil }

// socketPeerUID reads the peer's user with SO_PEERCRED.
func socketPeerUID(fd int) (uint32, error) {
	cred, err := syscall.GetsockoptUcred(fd, syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	if err != nil {
		return 0, err
	}
	return cred.Uid, nil
}
