package dashboard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// loopbackPeerUID is the user owning the other end of a loopback TCP
// connection, as the kernel tells it: one exact sock_diag lookup (the
// interface `ss` uses) of the client's socket, whose local address is
// conn's remote one and whose remote address is conn's local one. Only a
// connected socket counts: a closed one (TIME_WAIT) has no owner left and
// the kernel reports it as uid 0.
func loopbackPeerUID(conn net.Conn) (uint32, error) {
	client, ok1 := conn.RemoteAddr().(*net.TCPAddr)
	server, ok2 := conn.LocalAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return 0, errors.New("not a TCP connection")
	}
	if !client.IP.IsLoopback() {
		return 0, fmt.Errorf("%s is not a loopback address", client.IP)
	}
	return socketOwner(client, server)
}

const (
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY
	diagReqLen       = 56 // struct inet_diag_req_v2
	diagMsgLen       = 72 // struct inet_diag_msg
	tcpEstablished   = 1
	tcpCloseWait     = 8
)

// socketOwner asks the kernel for the TCP socket bound to local and
// connected to remote, and returns its owner's uid.
func socketOwner(local, remote *net.TCPAddr) (uint32, error) {
	family, size := uint8(unix.AF_INET), 4
	if local.IP.To4() == nil || remote.IP.To4() == nil {
		family, size = unix.AF_INET6, 16
	}
	ip := func(a *net.TCPAddr) []byte {
		if size == 4 {
			return a.IP.To4()
		}
		return a.IP.To16()
	}
	// nlmsghdr, then inet_diag_req_v2 with the socket's identity: ports
	// and addresses in network order, the rest in the machine's.
	req := make([]byte, unix.NLMSG_HDRLEN+diagReqLen)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], sockDiagByFamily)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(req[8:], 1) // seq
	body := req[unix.NLMSG_HDRLEN:]
	body[0], body[1] = family, unix.IPPROTO_TCP
	ne.PutUint32(body[4:], 0xffffffff) // every state: the answer says which
	id := body[8:]
	binary.BigEndian.PutUint16(id[0:], uint16(local.Port))
	binary.BigEndian.PutUint16(id[2:], uint16(remote.Port))
	copy(id[4:20], ip(local))
	copy(id[20:36], ip(remote))
	ne.PutUint32(id[40:], 0xffffffff) // no cookie
	ne.PutUint32(id[44:], 0xffffffff)

	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return 0, os.NewSyscallError("socket(NETLINK_SOCK_DIAG)", err)
	}
	defer unix.Close(fd)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 2})
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, os.NewSyscallError("sock_diag send", err)
	}
	buf := make([]byte, 8192)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return 0, os.NewSyscallError("sock_diag receive", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil || len(msgs) == 0 {
		return 0, fmt.Errorf("sock_diag: unreadable answer (%v)", err)
	}
	m := msgs[0]
	switch {
	case m.Header.Type == unix.NLMSG_ERROR && len(m.Data) >= 4:
		errno := -int32(ne.Uint32(m.Data))
		return 0, fmt.Errorf("no socket %s → %s: %w", local, remote, syscall.Errno(errno))
	case m.Header.Type != sockDiagByFamily || len(m.Data) < diagMsgLen:
		return 0, fmt.Errorf("sock_diag: unexpected answer of type %d", m.Header.Type)
	}
	state, uid, inode := m.Data[1], ne.Uint32(m.Data[64:]), ne.Uint32(m.Data[68:])
	if (state != tcpEstablished && state != tcpCloseWait) || inode == 0 {
		return 0, fmt.Errorf("the socket %s → %s is not connected (state %d)", local, remote, state)
	}
	return uid, nil
}
