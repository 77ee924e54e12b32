// Package bench measures avnode on a network of real nodes in one process:
// whole daemons on 127.0.0.1 with their repos on disk, and beside them, in
// the same run, the bare layers they are built on (kad-dht's GetValue and
// PutValue, a libp2p stream) so that every number comes with a baseline.
// `avnode bench` prints its report; see the README for how to read it.
package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/gologshim"

	"github.com/avnode/avnode/core/idkey"
	"github.com/avnode/avnode/core/names"
)

// Options size the run. The zero value of each field takes its default.
type Options struct {
	Nodes       int           // nodes in each network (100)
	Names       int           // names published, and keys put on the baseline (Nodes)
	FetchMiB    int           // size of the fetched file (64)
	KillShare   float64       // share of nodes killed at once (0.3)
	Restarting  float64       // share of nodes restarting in a loop (0.1)
	RestartFor  time.Duration // how long the restart loop runs (20s)
	ReadyTrials int           // new nodes timed from start to first resolve (3)
	IdleFor     time.Duration // how long each network is left idle to measure its CPU (10s)
	Dir         string        // where the repos go, removed after ("": the system's temp dir)
	Seed        uint64        // picks of nodes and items (1)
	Progress    io.Writer     // one line per phase; nil: quiet
	// WAN puts both networks on a simulated wide-area network (see wan)
	// instead of loopback TCP. Its latencies are only true inside a
	// testing/synctest bubble, where time is virtual: see TestWAN.
	WAN bool
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Nodes, 100)
	def(&o.Names, o.Nodes)
	def(&o.FetchMiB, 64)
	def(&o.ReadyTrials, 3)
	if o.KillShare <= 0 {
		o.KillShare = 0.3
	}
	if o.Restarting <= 0 {
		o.Restarting = 0.1
	}
	if o.RestartFor <= 0 {
		o.RestartFor = 20 * time.Second
	}
	if o.IdleFor <= 0 {
		o.IdleFor = 10 * time.Second
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return o
}

// Report is what `avnode bench --json` prints.
type Report struct {
	Nodes    int           `json:"nodes"`
	Names    int           `json:"names"`
	FetchMiB int           `json:"fetch_mib"`
	Machine  string        `json:"machine"`
	Took     time.Duration `json:"took_ns"`
	Rows     []Row         `json:"rows"`
}

// Row finds a row by name; nil if the run has none.
func (r *Report) Row(name string) *Row {
	for i := range r.Rows {
		if r.Rows[i].Name == name {
			return &r.Rows[i]
		}
	}
	return nil
}

// results are one network's measures, avnode's or the baseline's.
type results struct {
	memPerNode, goroutinesPerNode float64
	idleCPU                       float64    // % of a core per node
	publish, cold, warm           *latencies // avnode: through the control API
	coldMajority                  *latencies // baseline only: gets that wait for a majority's values
	warmInDaemon                  *latencies // avnode: the daemon's share of warm
	publishDirect                 *latencies // avnode: the same, in-process
	coldDirect, warmDirect        *latencies
	holders                       []int
	fetch1, fetch3                time.Duration // baseline: fetch1 is the stream copy to a synced file
	fetchMem                      time.Duration // baseline only: the stream copy into memory
	killed, restarting            float64
	killedTried, restartTried     int
	ready                         *latencies
	estates                       *estateResults // avnode only
	keys                          *keyResults    // avnode only
}

func newResults() *results {
	return &results{publish: &latencies{}, publishDirect: &latencies{}, ready: &latencies{}}
}

// Run builds the baseline network, measures it and stops it, then does the
// same with avnode's, and returns both side by side.
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts = opts.withDefaults()
	if opts.Nodes < 8 {
		return nil, fmt.Errorf("bench needs at least 8 nodes, got %d", opts.Nodes)
	}
	// libp2p's own log lines (a listener closing as a node is killed) are
	// what the bench does on purpose; the daemons' logs go nowhere either.
	gologshim.SetDefaultHandler(slog.DiscardHandler)
	dir, err := os.MkdirTemp(opts.Dir, "avnode-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	limits := connLimitsFor(opts.Nodes)
	if opts.WAN {
		limits = wanConnLimits
	}
	base, err := runBaseline(ctx, opts, limits, dir)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	av, err := runAvnode(ctx, opts, limits, dir)
	if err != nil {
		return nil, fmt.Errorf("avnode: %w", err)
	}
	rep := &Report{Nodes: opts.Nodes, Names: opts.Names, FetchMiB: opts.FetchMiB, Machine: machine(), Took: time.Since(start)}
	rep.Rows = compare(opts, av, base)
	if opts.WAN {
		rep.Rows = slices.DeleteFunc(rep.Rows, func(r Row) bool { return machineOnly[r.Name] })
	}
	return rep, nil
}

// machineOnly are the rows that time work done on one machine: on the
// simulated network's virtual clock it takes no time, so they say nothing
// there (the loopback run has them).
var machineOnly = map[string]bool{
	"resolve warm": true, "resolve warm, in the daemon": true, "resolve cold, in-process": true, "resolve warm, in-process": true, "publish, in-process": true,
	"resolve warm through an estate": true, "resolve warm, rotated name": true, "resolve warm, hybrid name": true,
	"zone sign, hybrid key": true, "zone check, hybrid key": true, "idle CPU per node": true,
}

// wanConnLimits are kubo's defaults, on the simulated network at every
// size. One process there holds both ends of every connection, about 110
// KiB each (QUIC's and TLS's state, four goroutines): at 1,000 nodes the
// embedded config's 64/192 did not fit in 24 GiB.
var wanConnLimits = connLimits{low: 32, high: 96, grace: 20 * time.Second}

// connLimitsFor keeps the connections of the whole network (two open
// files each, both ends in this process) well under 20,000 open files.
func connLimitsFor(nodes int) connLimits {
	high := min(max(8000/nodes, 16), 192)
	return connLimits{low: high * 2 / 3, high: high, grace: 10 * time.Second}
}

func compare(opts Options, av, base *results) []Row {
	kill := fmt.Sprintf("%.0f %% killed", opts.KillShare*100)
	restart := fmt.Sprintf("%.0f %% restarting", opts.Restarting*100)
	return []Row{
		row("resolve cold", "ms", dist(av.cold), "kad-dht GetValue", dist(base.cold), "`avnode resolve` through the control API: zone, claim, records, host addresses"),
		row("resolve cold, baseline waiting for a majority", "ms", dist(av.cold), fmt.Sprintf("kad-dht GetValue, quorum %d", pollMajority(opts.Nodes)), dist(base.coldMajority),
			"the baseline waits for as many values as avnode's poll waits for votes (a majority of the 20 closest): the ownership rule's evidence alone"),
		row("resolve warm", "ms", dist(av.warm), "kad-dht GetValue", dist(base.warm), "same node again: avnode answers from its cache"),
		row("resolve warm, in the daemon", "µs", number(p50Micros(av.warmInDaemon)), "avnode, in-process", number(p50Micros(av.warmDirect)),
			"p50 of the daemon's own time on each warm `avnode resolve` (its Server-Timing, answer encoded), against naming.Resolve alone"),
		row("publish", "ms", dist(av.publish), "kad-dht PutValue", dist(base.publish),
			fmt.Sprintf("`avnode record set` through the control API; holders acked of 20: %s (baseline %s)", holderSummary(av.holders), holderSummary(base.holders))),
		row("resolve cold, in-process", "ms", dist(av.coldDirect), "kad-dht GetValue", dist(base.cold), "naming.Resolve, no control API"),
		row("resolve warm, in-process", "ms", dist(av.warmDirect), "kad-dht GetValue", dist(base.warm), ""),
		row("publish, in-process", "ms", dist(av.publishDirect), "kad-dht PutValue", dist(base.publish), "naming.ChangeRecord, no control API"),
		row(fmt.Sprintf("fetch %d MiB, 1 source", opts.FetchMiB), "s", number(av.fetch1.Seconds()), "libp2p stream copy to a synced file", number(base.fetch1.Seconds()),
			throughput(opts.FetchMiB, av.fetch1)+", baseline "+throughput(opts.FetchMiB, base.fetch1)),
		row(fmt.Sprintf("fetch %d MiB, 1 source, vs memory", opts.FetchMiB), "s", number(av.fetch1.Seconds()), "libp2p stream copy into memory", number(base.fetchMem.Seconds()),
			"the network alone: baseline "+throughput(opts.FetchMiB, base.fetchMem)),
		row(fmt.Sprintf("fetch %d MiB, 3 sources", opts.FetchMiB), "s", number(av.fetch3.Seconds()), "avnode, 1 source", number(av.fetch1.Seconds()),
			throughput(opts.FetchMiB, av.fetch3)),
		row("churn: resolve after "+kill, "% ok", number(av.killed*100), "kad-dht GetValue", number(base.killed*100),
			fmt.Sprintf("%d resolves (baseline %d)", av.killedTried, base.killedTried)),
		row("churn: resolve while "+restart, "% ok", number(av.restarting*100), "kad-dht GetValue", number(base.restarting*100),
			fmt.Sprintf("%d resolves in %s (baseline %d)", av.restartTried, opts.RestartFor, base.restartTried)),
		row("resolve cold through an estate", "ms", dist(av.estates.cold), "avnode, direct HOST", dist(av.coldDirect), "name → zone → estate record → host addresses"),
		row("resolve warm through an estate", "ms", dist(av.estates.warm), "avnode, direct HOST", dist(av.warmDirect), "the estate record cached for its TTL"),
		row("estate move → resolve elsewhere", "s", number(av.estates.move.Seconds()), "estate record TTL", number(estateTTL.Seconds()),
			"estate import on another node until a node that resolved before names it"),
		row("resolve cold, rotated name", "ms", dist(av.keys.rotatedCold), "avnode, Ed25519 name", dist(av.coldDirect), "claimed Ed25519, rotated to hybrid: the chain rides in the zone"),
		row("resolve warm, rotated name", "ms", dist(av.keys.rotatedWarm), "avnode, Ed25519 name", dist(av.warmDirect), ""),
		row("resolve cold, hybrid name", "ms", dist(av.keys.hybridCold), "avnode, Ed25519 name", dist(av.coldDirect), "claimed with Ed25519 + ML-DSA-65"),
		row("resolve warm, hybrid name", "ms", dist(av.keys.hybridWarm), "avnode, Ed25519 name", dist(av.warmDirect), ""),
		row("zone sign, hybrid key", "µs", number(av.keys.sign[idkey.TypeHybrid]), "Ed25519 key", number(av.keys.sign[idkey.TypeEd25519]), "one ROOT, one HOST"),
		row("zone check, hybrid key", "µs", number(av.keys.verify[idkey.TypeHybrid]), "Ed25519 key", number(av.keys.verify[idkey.TypeEd25519]), "both signatures, and the claim's"),
		row("zone size, hybrid key", "bytes", number(av.keys.size[idkey.TypeHybrid]), "Ed25519 key", number(av.keys.size[idkey.TypeEd25519]), fmt.Sprintf("limit %d", names.MaxRecordSize)),
		row("time to ready", "ms", dist(av.ready), "kad-dht host", dist(base.ready), "start → first successful resolve"),
		row("memory per node", "MiB", number(av.memPerNode), "kad-dht host", number(base.memPerNode), "Go heap in use ÷ nodes"),
		row("goroutines per node", "", number(av.goroutinesPerNode), "kad-dht host", number(base.goroutinesPerNode), ""),
		row("idle CPU per node", "% core", number(av.idleCPU), "kad-dht host", number(base.idleCPU),
			fmt.Sprintf("the process's CPU time over %s with nothing asked, ÷ nodes", opts.IdleFor)),
	}
}

func holderSummary(counts []int) string {
	if len(counts) == 0 {
		return "-"
	}
	sum, least := 0, counts[0]
	for _, c := range counts {
		sum += c
		least = min(least, c)
	}
	return fmt.Sprintf("%.1f avg, %d min", float64(sum)/float64(len(counts)), least)
}

func throughput(mib int, d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return fmt.Sprintf("%.0f MiB/s", float64(mib)/d.Seconds())
}

func machine() string {
	return fmt.Sprintf("%s/%s, %d cores, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
}

// footprint is the Go heap in use and the goroutines, after a collection.
func footprint() (heapMiB float64, goroutines int) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapInuse+ms.StackInuse) / (1 << 20), runtime.NumGoroutine()
}

// measureStart starts the network and returns its footprint per node.
func measureStart(ctx context.Context, opts Options, who string, net *cluster) (mem, goroutines float64, err error) {
	heap0, g0 := footprint()
	progress := func(format string, args ...any) { logf(opts, who+": "+format, args...) }
	if err := net.startAll(ctx, progress); err != nil {
		return 0, 0, err
	}
	heap1, g1 := footprint()
	n := float64(len(net.members))
	return (heap1 - heap0) / n, float64(g1-g0) / n, nil
}

func logf(opts Options, format string, args ...any) {
	fmt.Fprintf(opts.Progress, "bench: "+format+"\n", args...)
}

// randomFile writes a file of random bytes, so that no block repeats.
func randomFile(dir string, mib int) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "random.bin")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := io.CopyN(f, rand.Reader, int64(mib)<<20); err != nil {
		return "", err
	}
	return path, f.Close()
}
