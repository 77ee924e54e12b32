package dashboard

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// loopbackPeerUID is the user owning the other end of a loopback TCP
// connection: the client's socket is a line of /proc/net/tcp (or tcp6)
// whose local address is conn's remote one and whose remote address is
// conn's local one, and the line names its owner's uid.
func loopbackPeerUID(conn net.Conn) (uint32, error) {
	client, ok1 := conn.RemoteAddr().(*net.TCPAddr)
	server, ok2 := conn.LocalAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return 0, errors.New("not a TCP connection")
	}
	if !client.IP.IsLoopback() {
		return 0, fmt.Errorf("%s is not a loopback address", client.IP)
	}
	tables := []struct{ path, local, remote string }{
		{"/proc/net/tcp6", procAddr6(client), procAddr6(server)},
	}
	if client.IP.To4() != nil && server.IP.To4() != nil {
		tables = append(tables, struct{ path, local, remote string }{"/proc/net/tcp", procAddr4(client), procAddr4(server)})
	}
	for _, t := range tables {
		uid, found, err := findSocketUID(t.path, t.local, t.remote)
		if err != nil {
			return 0, err
		}
		if found {
			return uid, nil
		}
	}
	return 0, fmt.Errorf("no socket %s → %s in the kernel's table", client, server)
}

func findSocketUID(path, local, remote string) (uid uint32, found bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil // no IPv6 on this machine
	}
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	lines := bufio.NewScanner(f)
	lines.Scan() // the header
	for lines.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid …
		fields := strings.Fields(lines.Text())
		if len(fields) < 8 || fields[1] != local || fields[2] != remote {
			continue
		}
		n, err := strconv.ParseUint(fields[7], 10, 32)
		if err != nil {
			return 0, false, fmt.Errorf("%s: uid %q: %v", path, fields[7], err)
		}
		return uint32(n), true, nil
	}
	return 0, false, lines.Err()
}

// procAddr4 writes an address as /proc/net/tcp does: the address's four
// bytes read as a 32-bit word in the machine's byte order, then the port,
// both in hex.
func procAddr4(a *net.TCPAddr) string {
	return fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32(a.IP.To4()), a.Port)
}

// procAddr6 writes an address as /proc/net/tcp6 does: four 32-bit words,
// each in the machine's byte order; an IPv4 address in its mapped form.
func procAddr6(a *net.TCPAddr) string {
	ip := a.IP.To16()
	var b strings.Builder
	for i := 0; i < 16; i += 4 {
		fmt.Fprintf(&b, "%08X", binary.NativeEndian.Uint32(ip[i:i+4]))
	}
	fmt.Fprintf(&b, ":%04X", a.Port)
	return b.String()
}
