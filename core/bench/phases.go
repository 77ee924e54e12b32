package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/avnode/avnode/core/config"
	"github.com/avnode/avnode/core/names"
	"github.com/avnode/avnode/core/naming"
)

// bareValueSize is about the size of a signed zone with a few records, so
// that the baseline puts and gets what avnode does.
const bareValueSize = 512

const copyProtocol = "/avnode-bench/copy/1.0.0"

// newNetwork is the simulated network a run's members join, started; nil
// on loopback. The caller closes it after the members stopped.
func newNetwork(opts Options) *wan {
	if !opts.WAN {
		return nil
	}
	w := newWAN(opts.Seed)
	w.start()
	return w
}

func runBaseline(ctx context.Context, opts Options, limits connLimits, dir string) (*results, error) {
	w := newNetwork(opts)
	if w != nil {
		defer w.close()
	}
	members := make([]member, opts.Nodes)
	for i := range members {
		m, err := newBareMember(limits, w.newPort())
		if err != nil {
			return nil, err
		}
		members[i] = m
	}
	net := newCluster(members, opts.Seed)
	defer net.stopAll()
	bare := func(i int) *bareMember { return net.members[i].(*bareMember) }
	began := time.Now()
	res := newResults()
	var err error
	if res.memPerNode, res.goroutinesPerNode, err = measureStart(ctx, opts, "baseline", net); err != nil {
		return nil, err
	}
	logf(opts, "baseline: %d bare kad-dht hosts up in %s", opts.Nodes, time.Since(began).Round(time.Millisecond))
	quorum := defaultQuorum()
	key := func(item int) string { return fmt.Sprintf("/%s/%d", bareNamespace, item) }
	owner := func(item int) int { return item % opts.Nodes }
	value := make([]byte, bareValueSize)
	rand.Read(value)
	for item := range opts.Names {
		pctx, cancel := context.WithTimeout(ctx, resolveTimeout)
		start := time.Now()
		err := bare(owner(item)).d.PutValue(pctx, key(item), value)
		cancel()
		res.publish.add(time.Since(start), err)
		res.holders = append(res.holders, net.holders(key(item), owner(item), start))
	}
	logf(opts, "baseline: %d keys put", opts.Names)
	t := &target{net: net, items: opts.Names, key: key, owner: owner,
		resolve: func(ctx context.Context, m, item int) error { return bare(m).getValue(ctx, key(item), quorum) }}
	res.cold, res.warm = t.coldAndWarm(ctx)
	votes := pollMajority(opts.Nodes)
	res.coldMajority = t.coldOnce(ctx, func(ctx context.Context, m, item int) error { return bare(m).getValue(ctx, key(item), votes) })
	// avnode's fetch stores what it gets on disk: the honest baseline is a
	// stream copied into a file and synced; the copy into memory is the
	// network alone.
	if res.fetch1, err = streamCopy(ctx, bare(0).h, bare(1).h, opts.FetchMiB, filepath.Join(dir, "copy.bin")); err != nil {
		return nil, err
	}
	if res.fetchMem, err = streamCopy(ctx, bare(0).h, bare(2).h, opts.FetchMiB, ""); err != nil {
		return nil, err
	}
	logf(opts, "baseline: gets and a %d MiB stream copy done", opts.FetchMiB)
	if res.idleCPU, err = measureIdle(ctx, opts, "baseline"); err != nil {
		return nil, err
	}
	return res, churnAndJoin(ctx, opts, "baseline", t, res, func() (member, error) { return newBareMember(limits, w.newPort()) })
}

func runAvnode(ctx context.Context, opts Options, limits connLimits, dir string) (*results, error) {
	w := newNetwork(opts)
	if w != nil {
		defer w.close()
	}
	res := newResults()
	net, t, err := startAvnode(ctx, opts, limits, dir, res, w)
	if net != nil {
		defer net.stopAll()
	}
	if err != nil {
		return nil, err
	}
	av := func(i int) *avMember { return net.members[i].(*avMember) }
	res.cold, res.warm = t.coldAndWarm(ctx)
	res.warmInDaemon = &t.warmServer
	res.coldDirect, res.warmDirect = resolveInProcess(ctx, t, av)
	if res.estates, err = measureEstates(ctx, opts, net, av); err != nil {
		return nil, err
	}
	if res.keys, err = measureKeys(ctx, opts, net, av); err != nil {
		return nil, err
	}
	if res.fetch1, res.fetch3, err = fetchTimes(ctx, opts, net, av, filepath.Join(dir, "site")); err != nil {
		return nil, err
	}
	logf(opts, "avnode: resolves and %d MiB fetches done", opts.FetchMiB)
	if res.idleCPU, err = measureIdle(ctx, opts, "avnode"); err != nil {
		return nil, err
	}
	ready := 0
	return res, churnAndJoin(ctx, opts, "avnode", t, res, func() (member, error) {
		ready++
		m := &avMember{dir: filepath.Join(dir, fmt.Sprintf("ready%d", ready)), configFile: av(0).configFile, wan: w.newPort()}
		return m, nil
	})
}

// startAvnode starts the network of daemons, claims the names and
// publishes their zones, timing the publishes; the target resolves them.
// The caller stops the returned cluster, also on error.
func startAvnode(ctx context.Context, opts Options, limits connLimits, dir string, res *results, w *wan) (*cluster, *target, error) {
	members, err := newAvMembers(dir, opts.Nodes, limits, w)
	if err != nil {
		return nil, nil, err
	}
	net := newCluster(members, opts.Seed)
	av := func(i int) *avMember { return net.members[i].(*avMember) }
	began := time.Now()
	if res.memPerNode, res.goroutinesPerNode, err = measureStart(ctx, opts, "avnode", net); err != nil {
		return net, nil, err
	}
	logf(opts, "avnode: %d nodes up in %s", opts.Nodes, time.Since(began).Round(time.Millisecond))
	name := benchName
	owner := func(item int) int { return item % opts.Nodes }
	err = parallel(opts.Names, 8, func(item int) error {
		m, keyName := av(owner(item)), fmt.Sprintf("bench%d", item)
		if err := m.newKey(keyName); err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		_, err := m.d.Names.Claim(cctx, name(item), keyName)
		return err
	})
	if err != nil {
		return net, nil, fmt.Errorf("claim: %w", err)
	}
	logf(opts, "avnode: %d names claimed", opts.Names)
	zoneKey := func(item int) string { n, _ := names.Parse(name(item)); return names.ZoneKey(n) }
	// The user's path first: `avnode record set` through the control API.
	// Then the same change in-process, a row of its own: the gap is the API.
	for item := range opts.Names {
		m := av(owner(item))
		start := time.Now()
		res.publish.add(timed(ctx, func(ctx context.Context) error {
			return m.setRecord(ctx, name(item), "HOST", m.host().ID().String())
		}))
		res.holders = append(res.holders, net.holders(zoneKey(item), owner(item), start))
	}
	for item := range opts.Names {
		m := av(owner(item))
		res.publishDirect.add(timed(ctx, func(ctx context.Context) error {
			_, err := m.d.Names.ChangeRecord(ctx, naming.RecordChange{Name: name(item), Type: "TXT", Value: "bench=1"})
			return err
		}))
	}
	logf(opts, "avnode: %d zones published", opts.Names)
	t := &target{net: net, items: opts.Names, key: zoneKey, owner: owner,
		resolve: func(ctx context.Context, m, item int) error { return av(m).resolve(ctx, name(item)) }}
	return net, t, nil
}

// measureIdle leaves the network alone for opts.IdleFor and returns its
// CPU per node. On the simulated network the clock is virtual and the
// window takes no time: there is nothing to measure.
func measureIdle(ctx context.Context, opts Options, who string) (float64, error) {
	if opts.WAN {
		return 0, nil
	}
	cpu, err := idleCPU(ctx, opts.Nodes, opts.IdleFor)
	if err == nil {
		logf(opts, "%s: idle for %s: %.2f %% of a core per node", who, opts.IdleFor, cpu)
	}
	return cpu, err
}

// benchName is the name published for an item on avnode's network.
func benchName(item int) string { return fmt.Sprintf("bench%d.avtr", item) }

// resolveInProcess times naming's Resolve without the control API, from
// members that never resolved the items, after the API's pass.
func resolveInProcess(ctx context.Context, t *target, av func(int) *avMember) (cold, warm *latencies) {
	throughAPI := t.resolve
	defer func() { t.resolve = throughAPI }()
	t.resolve = func(ctx context.Context, m, item int) error {
		_, err := av(m).d.Names.Resolve(ctx, benchName(item))
		return err
	}
	return t.coldAndWarm(ctx)
}

// timed runs f within resolveTimeout and returns how long it took.
func timed(ctx context.Context, f func(context.Context) error) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	start := time.Now()
	err := f(ctx)
	return time.Since(start), err
}

// churnAndJoin runs the measures both networks share once their items are
// out: the kill, the restart loop and the joins.
func churnAndJoin(ctx context.Context, opts Options, who string, t *target, res *results, newMember func() (member, error)) error {
	var errs []error
	res.killed, res.killedTried, errs = t.afterKill(ctx, opts.KillShare)
	logf(opts, "%s: %.1f %% of %d resolves ok after killing %.0f %% of the nodes", who, res.killed*100, res.killedTried, opts.KillShare*100)
	logFailures(opts, who, errs)
	res.restarting, res.restartTried, errs = t.whileRestarting(ctx, opts.Restarting, opts.RestartFor)
	logf(opts, "%s: %.1f %% of %d resolves ok while %.0f %% of the nodes restart", who, res.restarting*100, res.restartTried, opts.Restarting*100)
	logFailures(opts, who, errs)
	for range opts.ReadyTrials {
		m, err := newMember()
		if err != nil {
			return err
		}
		res.ready.add(t.timeToReady(ctx, m))
	}
	return nil
}

// logFailures says why the first few resolves of a churn measure failed:
// a success ratio alone does not tell a timeout from a dispute.
func logFailures(opts Options, who string, errs []error) {
	const shown = 3
	for _, err := range errs[:min(len(errs), shown)] {
		logf(opts, "%s: failed: %v", who, err)
	}
	if len(errs) > shown {
		logf(opts, "%s: and %d more failed", who, len(errs)-shown)
	}
}

// fetchTimes publishes a file of random bytes on node 0; node 1 fetches it
// from node 0 alone (timed), node 2 too, then node 3 from all three (timed).
func fetchTimes(ctx context.Context, opts Options, net *cluster, av func(int) *avMember, site string) (one, three time.Duration, err error) {
	if _, err := randomFile(site, opts.FetchMiB); err != nil {
		return 0, 0, err
	}
	pub, err := av(0).d.Hosting.Publish(ctx, site, "", "", nil)
	if err != nil {
		return 0, 0, fmt.Errorf("publish %d MiB: %w", opts.FetchMiB, err)
	}
	target := "/cid/" + pub.Root
	ids := []peer.ID{av(0).host().ID(), av(1).host().ID(), av(2).host().ID()}
	if err := net.link(ctx, 3, 0, 1, 2); err != nil {
		return 0, 0, err
	}
	fetch := func(m int, from []peer.ID) (time.Duration, error) {
		if err := net.link(ctx, m, 0); err != nil {
			return 0, err
		}
		fctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		// The fetch's own Sync must not write back what came before it
		// (the random file, the publish): the copy it is compared with
		// starts clean too.
		syscall.Sync()
		start := time.Now()
		if _, err := av(m).d.Hosting.FetchFrom(fctx, target, from); err != nil {
			return 0, fmt.Errorf("node %d fetching %s: %w", m, target, err)
		}
		return time.Since(start), nil
	}
	if one, err = fetch(1, ids[:1]); err != nil {
		return 0, 0, err
	}
	if _, err = fetch(2, ids[:1]); err != nil {
		return 0, 0, err
	}
	three, err = fetch(3, ids)
	return one, three, err
}

// streamCopy times reading mib MiB from a bare stream of src: into a file
// at path, synced before the clock stops, or into memory if path is "".
func streamCopy(ctx context.Context, src, dst host.Host, mib int, path string) (time.Duration, error) {
	chunk := make([]byte, 1<<20)
	rand.Read(chunk)
	src.SetStreamHandler(copyProtocol, func(s network.Stream) {
		defer s.Close()
		for range mib {
			if _, err := s.Write(chunk); err != nil {
				s.Reset()
				return
			}
		}
	})
	defer src.RemoveStreamHandler(copyProtocol)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if err := dst.Connect(ctx, peer.AddrInfo{ID: src.ID(), Addrs: src.Addrs()}); err != nil {
		return 0, err
	}
	syscall.Sync() // as before a fetch: nothing earlier left to write back
	start := time.Now()
	s, err := dst.NewStream(ctx, src.ID(), copyProtocol)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	var out io.Writer = io.Discard
	var file *os.File
	if path != "" {
		if file, err = os.Create(path); err != nil {
			return 0, err
		}
		defer os.Remove(path)
		defer file.Close()
		out = file
	}
	n, err := io.Copy(out, s)
	if err != nil || n != int64(mib)<<20 {
		return 0, fmt.Errorf("stream copy: %d of %d bytes: %v", n, int64(mib)<<20, err)
	}
	if file != nil {
		if err := file.Sync(); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// pollMajority is how many agreeing answers a poll of a name's closest
// holders waits for when they all hold the same owner: more than half of
// the 20 closest (of all the others, in a network smaller than 21).
func pollMajority(nodes int) int { return min(20, nodes-1)/2 + 1 }

// defaultQuorum is the embedded config's names.resolve_quorum: the
// baseline's GetValue waits for as many answers as avnode's resolve.
func defaultQuorum() int {
	cfg, err := config.Load(config.Sources{})
	if err != nil {
		return 3
	}
	return cfg.Names.ResolveQuorum
}
