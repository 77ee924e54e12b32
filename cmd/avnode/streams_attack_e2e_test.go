package main

// Floods of the protocols peers reach role plugins by, against real daemons
// on loopback. The attacker is a bare go-libp2p host (newAttacker): it
// speaks the satellite protocol and GossipSub itself.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/avnode/avnode/core/api"
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

// nameTopicAttacker is a bare host in GossipSub with its own
// go-libp2p-pubsub, joined to a name's topic next to a mirror.
func nameTopicAttacker(t testing.TB, ctx context.Context, mirror *proc, name string) *pubsub.Topic {
	t.Helper()
	a := newAttacker(t)
	ps, err := pubsub.NewGossipSub(ctx, a.h)
	if err != nil {
		t.Fatal(err)
	}
	m := a.connect(ctx, mirror)
	topic, err := ps.Join(sdk.NameTopic(name))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the attacker sees the mirror on the topic", func() error {
		if !slices.Contains(topic.ListPeers(), m) {
			return fmt.Errorf("topic peers %v", topic.ListPeers())
		}
		return nil
	})
	return topic
}

// publishPaced publishes msg count times, a millisecond apart: the
// attacker's own queue to a peer holds 32 messages and drops the rest.
func publishPaced(t testing.TB, ctx context.Context, topic *pubsub.Topic, count int, msg func(i int) []byte) {
	t.Helper()
	for i := range count {
		if err := topic.Publish(ctx, msg(i)); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		time.Sleep(time.Millisecond)
	}
}

func nameMessage(t testing.TB, zone []byte) []byte {
	t.Helper()
	data, err := json.Marshal(sdk.NameMessage{Kind: sdk.KindZone, Zone: zone})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// A bare host on a name's topic replays the name's current zone 2,000
// times to a mirror, then sends a forged zone, another name's zone, an
// older zone, and 1,000 junk zones. The node's topic validator stops them
// all before the mirror role: it refuses none of them itself (none reached
// it), the node spreads no zone to the DHT for them, its goroutines and
// WARN lines stay bounded; and the owner's next version still reaches the
// mirror by pub/sub alone.
func TestNameTopicFloodAtAMirror(t *testing.T) {
	const name, other = "replayed.avtr", "other.avtr"
	nodes := startNetwork(t, 3, lowWork...)
	join := append(append([]string{}, lowWork...), "--bootstrap", nodes[0].addr)
	beaconCfg := writeConfig(t, map[string]any{"role_config": map[string]any{
		"beacon": map[string]any{"names": []map[string]any{{"name": name, "key": "k"}, {"name": other, "key": "k2"}}, "interval": "2s"}}})
	a := startDaemon(t, filepath.Join(t.TempDir(), "a"), append(join, "--roles", "beacon", "--config", beaconCfg)...)
	mustCLI(t, a.repo, "key", "gen", "k")
	mustCLI(t, a.repo, "key", "gen", "k2")
	zoneOf := func(n string) []byte {
		var v api.RoutingValue
		cliJSON(t, a.repo, &v, "routing", "get", "/avtr-zone/"+n)
		return v.Value
	}
	eventually(t, 40*time.Second, "the beacon hosts both names", func() error {
		for _, n := range []string{name, other} {
			if r := cli(t, a.repo, nil, "resolve", n, "--json"); r.code != 0 || !strings.Contains(r.stdout, a.peerID) {
				return fmt.Errorf("%s: %s%s", n, r.stdout, r.stderr)
			}
		}
		return nil
	})
	old := zoneOf(name)
	var v1 api.PublishResult
	cliJSON(t, a.repo, &v1, "publish", writeSite(t), "--name", name)
	seq1 := resolvedSeq(t, a, name)
	current := zoneOf(name)

	mMetrics := metricsAddr(t)
	mirrorCfg := writeConfig(t, map[string]any{"roles": []string{"mirror"}, "role_config": map[string]any{
		"mirror": map[string]any{"names": []string{name}, "resolve_interval": "1h", "follow_updates": false}}})
	m := startDaemon(t, filepath.Join(t.TempDir(), "m"), append(join, "--config", mirrorCfg, "--metrics.listen", mMetrics)...)
	waitMirrored(t, m, name, seq1, v1.Root, 60*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	topic := nameTopicAttacker(t, ctx, m, name)
	metric := func(metric, label string) float64 { return metricSum(scrapeMetrics(t, mMetrics), metric, label) }
	goroutines := func() float64 { return metric("go_goroutines", "") }
	baseGoroutines, basePuts := goroutines(), metric("avnode_names_offer_puts_total", `result="started"`)
	baseWarn := strings.Count(m.log.String(), "level=WARN")
	stop := make(chan struct{})
	peak := make(chan float64, 1)
	go func() {
		most := 0.0
		for {
			select {
			case <-stop:
				peak <- most
				return
			case <-time.After(200 * time.Millisecond):
				most = max(most, goroutines())
			}
		}
	}()

	replay := nameMessage(t, current)
	publishPaced(t, ctx, topic, 2000, func(int) []byte { return replay })
	forged := append([]byte{}, current...)
	forged[len(forged)-10] ^= 0xff
	for _, zone := range [][]byte{forged, zoneOf(other), old} {
		publishPaced(t, ctx, topic, 1, func(int) []byte { return nameMessage(t, zone) })
	}
	junk := make([]byte, 200)
	publishPaced(t, ctx, topic, 1000, func(i int) []byte {
		binary.BigEndian.PutUint64(junk, uint64(i))
		return nameMessage(t, junk)
	})

	// The owner's next version reaches the mirror by pub/sub, its only way.
	var v2 api.PublishResult
	cliJSON(t, a.repo, &v2, "publish", writeSite(t), "--name", name)
	waitMirrored(t, m, name, resolvedSeq(t, a, name), v2.Root, 60*time.Second)
	close(stop)
	grown := <-peak - baseGoroutines
	puts := metric("avnode_names_offer_puts_total", `result="started"`) - basePuts
	warns := strings.Count(m.log.String(), "level=WARN") - baseWarn
	accepted := metric("avnode_pubsub_name_messages_total", `result="accepted"`)
	ignored := metric("avnode_pubsub_name_messages_total", `result="ignored"`)
	rejected := metric("avnode_pubsub_name_messages_total", `result="rejected"`)
	t.Logf("mirror: goroutines %v, peak %+v under the flood; %v puts of offered zones; %d WARN lines; validator: %v accepted, %v ignored, %v rejected",
		baseGoroutines, grown, puts, warns, accepted, ignored, rejected)
	if l := mirrorOf(t, m, name); l.Refused != 0 {
		t.Fatalf("%d bad zones reached the mirror role: %+v", l.Refused, l)
	}
	if grown > 150 {
		t.Fatalf("the mirror's goroutines grew by %v under the flood, from %v", grown, baseGoroutines)
	}
	if puts > 1 {
		t.Fatalf("%v offered zones spread to the DHT, want at most the new version's", puts)
	}
	if warns > 10 {
		t.Fatalf("%d WARN lines under the flood:\n%s", warns, grepLog(m.log.String(), "level=WARN"))
	}
	if ignored < 1 || rejected < 2 {
		t.Fatalf("validator counts: %v ignored, %v rejected; want the replays ignored, the forged and the wrong-name zone rejected", ignored, rejected)
	}
}
