//go:build linux || darwin

package api

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// The kernel names this process's user at the other end of the control
// socket, so the listener lets the connection in.
func TestPeerUIDIsTheConnectingUser(t *testing.T) {
	dir, err := os.MkdirTemp("", "peercred") // short: socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ln, err := net.Listen("unix", filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	uid, err := peerUID(server)
	if err != nil || uid != uint32(os.Getuid()) {
		t.Fatalf("peerUID = %d, %v; want this process's user %d", uid, err, os.Getuid())
	}
	if _, err := peerUID(&net.TCPConn{}); err == nil {
		t.Fatal("peerUID of a TCP connection: no error")
	}
}
