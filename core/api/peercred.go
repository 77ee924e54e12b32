package api

import (
	"errors"
	"log/slog"
	"net"
	"os"
)

// sameUserListener drops connections from other users: file permissions
// already stop them, this also covers a socket reached some other way. The
// peer's user comes from the kernel (peerUID, one file per system).
type sameUserListener struct {
	net.Listener
	log *slog.Logger
}

func (l *sameUserListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		uid, err := peerUID(conn)
		if err == nil && uid == uint32(os.Getuid()) {
			return conn, nil
		}
		l.log.Warn("control API: refused a connection from another user", "uid", uid, "err", err)
		conn.Close()
	}
}

// peerUID is the user of the process at the other end of conn, as the
// kernel tells it.
func peerUID(conn net.Conn) (uint32, error) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return 0, errors.New("not a unix connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var uid uint32
	var credErr error
	if err := raw.Control(func(fd uintptr) { uid, credErr = socketPeerUID(int(fd)) }); err != nil {
		return 0, err
	}
	return uid, credErr
}
