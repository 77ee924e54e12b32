package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/avnode/avnode/core/api"
)

// BenchmarkMirrorFollow measures, per version, the time from `avnode
// publish` on beacon A until a mirror holds the new version (fetched,
// pinned, provided, attested): one mirror follows the name's pub/sub topic,
// the other re-resolves every second with pub/sub off. Neither syncs on
// the zones it stores as a DHT holder (follow_updates: false), which in a
// network this small every node is. Both follow the same
// publishes in the same run; speedup is re-resolve over pub/sub.
//
//	go test ./cmd/avnode -run '^$' -bench MirrorFollow -benchtime 10x
func BenchmarkMirrorFollow(b *testing.B) {
	const name = "bench.avtr"
	common := append(append([]string{}, lowWork...), "--names.zone_ttl=1s")
	nodes := startNetwork(b, 3, common...)
	join := append(common, "--bootstrap", nodes[0].addr)
	beaconCfg := writeConfig(b, map[string]any{"role_config": map[string]any{
		"beacon": map[string]any{"names": []map[string]any{{"name": name, "key": "k"}}, "interval": "1h"}}})
	// The key exists before the beacon starts: it claims at once.
	repoA := filepath.Join(b.TempDir(), "a")
	mustCLI(b, repoA, "init")
	mustCLI(b, repoA, "key", "gen", "k")
	a := startDaemon(b, repoA, append(join, "--roles", "beacon", "--config", beaconCfg)...)
	mirror := func(dir string, followTopic bool) *proc {
		cfg := writeConfig(b, map[string]any{"roles": []string{"mirror"}, "role_config": map[string]any{
			"mirror": map[string]any{"names": []string{name}, "follow_topic": followTopic, "follow_updates": false,
				"resolve_interval": map[bool]string{true: "1h", false: "1s"}[followTopic]}}})
		return startDaemon(b, filepath.Join(b.TempDir(), dir), append(join, "--config", cfg)...)
	}
	viaTopic, viaResolve := mirror("topic", true), mirror("resolve", false)

	publish := func(i int) api.PublishResult {
		dir := filepath.Join(b.TempDir(), fmt.Sprint("v", i))
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "index.html"), []byte(fmt.Sprintf("<h1>version %d</h1>\n", i)), 0o644)
		var res api.PublishResult
		eventually(b, 60*time.Second, "publish", func() error {
			r := cli(b, a.repo, nil, "publish", dir, "--name", name, "--json")
			if r.code != 0 {
				return fmt.Errorf("%s", r.stderr)
			}
			return nil
		})
		cliJSON(b, a.repo, &res, "resolve", name)
		return res
	}
	// Warm up: both mirrors hold a first version before timing starts.
	first := publish(0)
	waitMirrored(b, viaTopic, name, resolvedSeq(b, a, name), first.Root, 60*time.Second)
	waitMirrored(b, viaResolve, name, resolvedSeq(b, a, name), first.Root, 60*time.Second)

	var topicTotal, resolveTotal time.Duration
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		start := time.Now()
		v := publish(i)
		seq := resolvedSeq(b, a, name)
		var wg sync.WaitGroup
		var took [2]time.Duration
		for j, m := range []*proc{viaTopic, viaResolve} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				took[j] = timeUntilMirrored(b, m, name, seq, v.Root, start)
			}()
		}
		wg.Wait()
		topicTotal += took[0]
		resolveTotal += took[1]
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(ms(topicTotal), "pubsub-ms/version")
	b.ReportMetric(ms(resolveTotal), "reresolve-ms/version")
	b.ReportMetric(float64(resolveTotal)/float64(topicTotal), "speedup")
	b.ReportMetric(0, "ns/op") // the wall time per op mixes both modes; the metrics above are the result
}

// timeUntilMirrored polls a mirror's state (every 20 ms, for at most a
// minute) and returns how long after start it held seq at root.
func timeUntilMirrored(b *testing.B, m *proc, name string, seq uint64, root string, start time.Time) time.Duration {
	for deadline := start.Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if l := mirrorOf(b, m, name); l.Seq >= seq && l.Root == root {
			return time.Since(start)
		}
	}
	b.Errorf("mirror %s did not get seq %d within a minute", m.repo, seq)
	return time.Minute
}
