package sdk

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// ListenOrNext listens on TCP addr. When the port is taken (a second node
// on the machine, with the same default port) and next is more than 0, it
// listens on the first free port of the next ports after it instead, and
// moved says so: the caller says where it went. A port the operator chose
// should be given with next 0: theirs to change.
func ListenOrNext(addr string, next int) (ln net.Listener, moved bool, err error) {
	ln, err = net.Listen("tcp", addr)
	if err == nil || next <= 0 || !errors.Is(err, syscall.EADDRINUSE) {
		return ln, false, err
	}
	host, portText, splitErr := net.SplitHostPort(addr)
	port, atoiErr := strconv.Atoi(portText)
	if splitErr != nil || atoiErr != nil {
		return nil, false, err
	}
	for p := port + 1; p <= port+next && p < 1<<16; p++ {
		if ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p))); err == nil {
			return ln, true, nil
		}
	}
	return nil, false, fmt.Errorf("%s and the %d ports after it are taken", addr, next)
}
