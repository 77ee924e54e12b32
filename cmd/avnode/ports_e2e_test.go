package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/avnode/avnode/core/api"
)

// A second node on one machine, started on a port the first listens on,
// refuses to start and says which port and which flag to use, instead of
// sharing the port (libp2p's SO_REUSEPORT would let it, splitting the
// incoming connections between the two at random). The first runs on.
func TestSecondNodeOnTheSamePortIsRefused(t *testing.T) {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d,/ip4/127.0.0.1/udp/%d/quic-v1", port, port)
	base := t.TempDir()
	first := launchDaemon(t, filepath.Join(base, "a"), exec.Command(avnodeBin, "run", "--repo", filepath.Join(base, "a"),
		"--listen", listen, "--metrics.listen", ""))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	second := exec.CommandContext(ctx, avnodeBin, "run", "--repo", filepath.Join(base, "b"), "--listen", listen, "--metrics.listen", "")
	second.Env = cleanEnv()
	out, err := second.CombinedOutput()
	exit, _ := err.(*exec.ExitError)
	if exit == nil || exit.ExitCode() != 1 {
		t.Fatalf("the second node on port %d: %v, want exit code 1\n%s", port, err, out)
	}
	for _, want := range []string{fmt.Sprintf("port %d is in use", port), "--listen"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the refusal does not say %q:\n%s", want, out)
		}
	}
	var info api.Info
	cliJSON(t, first.repo, &info, "id")
	if info.PeerID != first.peerID {
		t.Fatalf("the first node answers as %s, want %s", info.PeerID, first.peerID)
	}
}

// With the default metrics port taken (here by the test; on a machine, by
// the first node), a node serves its metrics on the next free port, warns,
// and `avnode id` says where.
func TestDefaultMetricsPortTakenMovesOn(t *testing.T) {
	if ln, err := net.Listen("tcp", "127.0.0.1:9464"); err == nil {
		t.Cleanup(func() { ln.Close() })
	}
	repo := filepath.Join(t.TempDir(), "n")
	d := launchDaemon(t, repo, exec.Command(avnodeBin, "run", "--repo", repo,
		"--listen", "/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/quic-v1"))
	var info api.Info
	cliJSON(t, repo, &info, "id")
	if info.Metrics == "" || strings.Contains(info.Metrics, ":9464/") {
		t.Fatalf("id says metrics at %q; want a port other than the taken 9464", info.Metrics)
	}
	if !strings.Contains(d.log.String(), "default metrics port is taken") {
		t.Errorf("no warning in the log:\n%s", d.log)
	}
	resp, err := http.Get(info.Metrics)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "avnode_node_info") {
		t.Fatalf("GET %s: %s\n%.300s", info.Metrics, resp.Status, body)
	}
	if text := mustCLI(t, repo, "id"); !strings.Contains(text, info.Metrics) {
		t.Errorf("id does not show the metrics URL:\n%s", text)
	}
}

// With the default gateway port taken, the receiver serves on the next free
// port, and `avnode id` says where.
func TestDefaultGatewayPortTakenMovesOn(t *testing.T) {
	if ln, err := net.Listen("tcp", "127.0.0.1:8080"); err == nil {
		t.Cleanup(func() { ln.Close() })
	}
	repo := filepath.Join(t.TempDir(), "n")
	startDaemon(t, repo, "--roles", "receiver")
	waitRoleNamed(t, repo, "receiver", "running", 30*time.Second)
	var info api.Info
	cliJSON(t, repo, &info, "id")
	if info.Gateway == "" || strings.Contains(info.Gateway, ":8080") {
		t.Fatalf("id says the gateway is at %q; want a port other than the taken 8080", info.Gateway)
	}
	resp, err := http.Get(strings.TrimSuffix(info.Gateway, "/") + "/proxy.pac")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s/proxy.pac: %s", info.Gateway, resp.Status)
	}
}
