package dashboard

import (
	"log/slog"
	"net"
	"os"
)

// sameUserListener closes connections from other users of the machine
// before they are read: the dashboard listens on TCP, which any local
// process can reach, so the kernel's socket table says whose process
// opened each connection.
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
		uid, err := loopbackPeerUID(conn)
		if err == nil && uid == uint32(os.Getuid()) {
			return conn, nil
		}
		l.log.Warn("dashboard: refused a connection from another user", "uid", uid, "err", err)
		conn.Close()
	}
}
