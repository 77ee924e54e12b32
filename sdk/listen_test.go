package sdk

import (
	"net"
	"testing"
)

// A taken port moves to the next free one only when the caller allows it.
func TestListenOrNext(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	addr := held.Addr().String()
	if _, _, err := ListenOrNext(addr, 0); err == nil {
		t.Fatal("a taken port the operator chose was not refused")
	}
	ln, moved, err := ListenOrNext(addr, 16)
	if err != nil || !moved || ln.Addr().String() == addr {
		t.Fatalf("ListenOrNext(%s, 16) = %v, moved %v, %v", addr, ln, moved, err)
	}
	ln.Close()
}
