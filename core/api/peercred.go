package api

import (
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
