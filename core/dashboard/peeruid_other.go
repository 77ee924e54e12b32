//go:build !linux

package dashboard

import (
	"errors"
	"net"
	"os"
)

// loopbackPeerUID cannot ask the kernel outside Linux; the dashboard's
// one-time codes, which only the control API hands out, still keep other
// users out of its data.
func loopbackPeerUID(conn net.Conn) (uint32, error) {
	if a, ok := conn.RemoteAddr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
		return 0, errors.New("not a loopback TCP connection")
	}
	return uint32(os.Getuid()), nil
}
