package api

import "golang.org/x/sys/unix"

func peerCredentialsSupported() error { return nil }

// socketPeerUID reads the peer's user with LOCAL_PEERCRED.
func socketPeerUID(fd int) (uint32, error) {
	cred, err := unix.GetsockoptXucred(fd, unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	if err != nil {
		return 0, err
	}
	return cred.Uid, nil
}
