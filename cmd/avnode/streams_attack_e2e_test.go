package main

// Floods of the protocols peers reach role plugins by, against real daemons
// on loopback. The attacker is a bare go-libp2p host (newAttacker): it
// speaks the satellite protocol and GossipSub itself.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/avnode/avnode/sdk"
)

// raceMemoryFactor scales memory budgets when the daemons are race-built:
// the race detector makes a program use 5 to 10 times the memory (its
// documentation, "Runtime Overhead").
var raceMemoryFactor int64 = 1

// rssBytes is the resident memory of a daemon and of its role plugins, the
// processes whose parent it is, read from /proc.
func rssBytes(t testing.TB, d *proc) int64 {
	t.Helper()
	daemon := d.cmd.Process.Pid
	total := procRSS(daemon)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == daemon {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after it.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(daemon) {
			total += procRSS(pid)
		}
	}
	return total
}

// procRSS is VmRSS of pid in bytes, 0 if it is gone.
func procRSS(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// peakRSS samples rssBytes until stop is closed and returns the highest.
func peakRSS(t testing.TB, d *proc, stop <-chan struct{}) <-chan int64 {
	peak := make(chan int64, 1)
	go func() {
		var most int64
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			most = max(most, rssBytes(t, d))
			select {
			case <-stop:
				peak <- most
				return
			case <-tick.C:
			}
		}
	}()
	return peak
}

// satelliteAnswer reads the beacon's answer on s, which the attacker has
// not finished writing to.
func satelliteAnswer(s network.Stream) (sdk.SatelliteResponse, error) {
	var resp sdk.SatelliteResponse
	data, err := io.ReadAll(s)
	if err != nil {
		return resp, fmt.Errorf("read the answer: %w (got %q)", err, data)
	}
	return resp, json.Unmarshal(data, &resp)
}

// A peer that is neither paired nor delegated to opens 64 satellite streams
// to a beacon, each carrying 4 MiB: the beacon's memory, the node's and the
// beacon plugin's, grows by less than 32 MiB. A stream on which the
// attacker has sent one byte of its request is answered "not paired"
// without the rest: the beacon refuses before it reads.
func TestSatelliteFloodFromAStranger(t *testing.T) {
	const (
		name    = "flooded.avtr"
		streams = 64
		body    = 4 << 20
		budget  = 32 << 20
	)
	cfg := writeConfig(t, map[string]any{"role_config": map[string]any{
		"beacon": map[string]any{"names": []map[string]any{{"name": name, "key": "k"}}}}})
	b := startDaemon(t, filepath.Join(t.TempDir(), "beacon"), append(append([]string{}, lowWork...), "--roles", "beacon", "--config", cfg)...)
	eventually(t, 20*time.Second, "the beacon serves satellites", func() error {
		if !strings.Contains(b.log.String(), sdk.SatelliteProtocol) {
			return fmt.Errorf("not yet:\n%s", lastLines(b.log.String(), 5))
		}
		return nil
	})
	a := newAttacker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	beacon := a.connect(ctx, b)

	before := rssBytes(t, b)
	stop := make(chan struct{})
	peak := peakRSS(t, b, stop)
	junk := bytes.Repeat([]byte(`{"op":"offload","payload":"`), body/27)
	var wg sync.WaitGroup
	var mu sync.Mutex
	sent, answered := 0, 0
	for range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := a.h.NewStream(ctx, beacon, protocol.ID(sdk.SatelliteProtocol))
			if err != nil {
				return
			}
			defer s.Reset()
			s.SetDeadline(time.Now().Add(45 * time.Second))
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, _ := s.Write(junk)
				s.CloseWrite()
				mu.Lock()
				sent += n
				mu.Unlock()
			}()
			if resp, err := satelliteAnswer(s); err == nil && strings.Contains(resp.Error, "not paired") {
				mu.Lock()
				answered++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(stop)
	grown := <-peak - before
	t.Logf("%d streams of %d bytes: %d answered not paired, %d bytes written by the attacker; beacon RSS %d MiB, peak %+d MiB",
		streams, len(junk), answered, sent, before>>20, grown>>20)
	if limit := raceMemoryFactor * budget; grown >= limit {
		t.Fatalf("the beacon's memory grew by %d MiB under the flood, want < %d MiB", grown>>20, limit>>20)
	}
	if answered == 0 {
		t.Fatalf("no stream was answered not paired")
	}
	// One stream, one byte of request: the answer comes without the rest.
	s, err := a.h.NewStream(ctx, beacon, protocol.ID(sdk.SatelliteProtocol))
	if err != nil {
		t.Fatal(err)
	}
	s.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := s.Write([]byte("{")); err != nil {
		t.Fatal(err)
	}
	resp, err := satelliteAnswer(s)
	if err != nil || !strings.Contains(resp.Error, "not paired") || !strings.Contains(resp.Error, "beacon delegate") {
		t.Fatalf("a stranger's unfinished request: %+v, %v", resp, err)
	}
	s.Reset()

	// Every stream over the per-peer limit was reset or answered; the node
	// and its plugin are still up.
	mustCLI(t, b.repo, "roles", "call", "beacon", "status")
}
