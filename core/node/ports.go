package node

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"

	ma "github.com/multiformats/go-multiaddr"
)

// listenPortsFree refuses to start on a port another process listens on.
// libp2p binds its TCP port with SO_REUSEPORT (to dial out from it, for
// NAT traversal), so a second node on the same port would start, and the
// kernel would hand each incoming connection to one of the two at random;
// its QUIC port would fail without a word. A plain bind, closed at once,
// tells. Only a port in use is refused: an address this machine does not
// have (a simulated network's) is libp2p's to judge.
func listenPortsFree(listen []string) error {
	for _, s := range listen {
		network, addr, ok := socketOf(s)
		if !ok {
			continue
		}
		var err error
		if network == "tcp" {
			var ln net.Listener
			if ln, err = net.Listen(network, addr); err == nil {
				ln.Close()
			}
		} else {
			var pc net.PacketConn
			if pc, err = net.ListenPacket(network, addr); err == nil {
				pc.Close()
			}
		}
		if errors.Is(err, syscall.EADDRINUSE) {
			_, port, _ := net.SplitHostPort(addr)
			return fmt.Errorf("listen %s: port %s is in use (another avnode on this machine?); give this node ports of its own, for example "+
				"--listen /ip4/0.0.0.0/tcp/4002 --listen /ip4/0.0.0.0/udp/4002/quic-v1, or port 0 for any free one", s, port)
		}
	}
	return nil
}

// socketOf reads the socket a listen multiaddr binds: /ip4|ip6/A/tcp/P or
// /ip4|ip6/A/udp/P/... with a port other than 0.
func socketOf(s string) (network, addr string, ok bool) {
	m, err := ma.NewMultiaddr(s)
	if err != nil || len(m) < 2 {
		return "", "", false
	}
	ip, port := m[0], m[1]
	if ip.Code() != ma.P_IP4 && ip.Code() != ma.P_IP6 {
		return "", "", false
	}
	switch port.Code() {
	case ma.P_TCP:
		network = "tcp"
	case ma.P_UDP:
		network = "udp"
	default:
		return "", "", false
	}
	if n, err := strconv.Atoi(port.Value()); err != nil || n == 0 {
		return "", "", false
	}
	return network, net.JoinHostPort(ip.Value(), port.Value()), true
}
