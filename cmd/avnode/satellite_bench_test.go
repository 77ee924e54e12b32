package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkSatelliteFootprint compares a satellite (DHT client, serving no
// content, paired with its beacon) with a full node (DHT server) that joins
// the same network at the same time and does the same work: resolve and get
// the beacon's name, b.N times each. It reports each one's resident memory,
// its plugins included, and its open connections, and the ratios
// satellite/full (below 1: the satellite is lighter).
//
//	go test ./cmd/avnode -run '^$' -bench SatelliteFootprint -benchtime 5x
func BenchmarkSatelliteFootprint(b *testing.B) {
	n := startSatelliteNet(b, 30)
	mustCLI(b, n.beacon.repo, "roles", "call", "beacon", "delegate", n.name, n.sat.peerID)
	mustCLI(b, n.sat.repo, "satellite", "pair", n.name)
	full := startDaemon(b, filepath.Join(b.TempDir(), "full"), append(append([]string{}, lowWork...), "--bootstrap", n.nodes[0].addr)...)
	i := 0
	for b.Loop() {
		i++
		for _, d := range []*proc{n.sat, full} {
			mustCLI(b, d.repo, "resolve", n.name)
			mustCLI(b, d.repo, "get", n.name, "-o", filepath.Join(b.TempDir(), fmt.Sprint("copy", i)))
		}
	}
	b.StopTimer()
	// Past the phone config's 20 s connection grace, the connection manager
	// has trimmed what the satellite does not need.
	time.Sleep(30 * time.Second)
	satRSS, fullRSS := treeRSS(b, n.sat.cmd.Process.Pid), treeRSS(b, full.cmd.Process.Pid)
	satConns, fullConns := peerCount(b, n.sat), peerCount(b, full)
	b.ReportMetric(satRSS, "satellite_rss_MB")
	b.ReportMetric(fullRSS, "full_rss_MB")
	b.ReportMetric(satRSS/fullRSS, "rss_ratio")
	b.ReportMetric(float64(satConns), "satellite_conns")
	b.ReportMetric(float64(fullConns), "full_conns")
	b.ReportMetric(float64(satConns)/float64(max(fullConns, 1)), "conns_ratio")
}

func peerCount(t testing.TB, d *proc) int {
	t.Helper()
	var peers []struct{}
	cliJSON(t, d.repo, &peers, "peers")
	return len(peers)
}

// treeRSS is the resident memory, in MB, of a process and its children
// (a node's role plugins).
func treeRSS(t testing.TB, pid int) float64 {
	t.Helper()
	total := 0.0
	pids := []int{pid}
	for len(pids) > 0 {
		p := pids[0]
		pids = pids[1:]
		total += vmRSS(t, p)
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p, p))
		for _, f := range strings.Fields(string(data)) {
			if c, err := strconv.Atoi(f); err == nil {
				pids = append(pids, c)
			}
		}
	}
	return total
}

func vmRSS(t testing.TB, pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read memory of %d: %v", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	t.Fatalf("no VmRSS for %d", pid)
	return 0
}
