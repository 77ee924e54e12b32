package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// member is one node of a benchmark network, avnode's or the bare
// kad-dht baseline's, which the same topology and churn code drive.
type member interface {
	host() host.Host
	kad() *dht.IpfsDHT
	// start brings the node (back) up with its key and store; stop takes
	// it down with no goodbye: no records re-put, connections just drop.
	start() error
	stop()
	// storedAt is when the DHT last stored the record key on this node
	// (zero: never).
	storedAt(key string) time.Time
}

// cluster is a network of members, each alive or not, safe for concurrent use.
type cluster struct {
	mu      sync.Mutex
	members []member
	alive   []bool
	rng     *rand.Rand
}

func newCluster(members []member, seed uint64) *cluster {
	alive := make([]bool, len(members))
	for i := range alive {
		alive[i] = true
	}
	return &cluster{members: members, alive: alive, rng: rand.New(rand.NewPCG(seed, 1))}
}

// startAll starts every member, a few at a time, then links them: each to
// the first and to two random earlier ones, and lets the DHT fill the
// routing tables from there as a real network's joins would.
// It reports each step through progress: at a thousand nodes on the
// simulated network, starting takes many minutes.
func (n *cluster) startAll(ctx context.Context, progress func(format string, args ...any)) error {
	if err := parallel(len(n.members), 8, func(i int) error { return n.members[i].start() }); err != nil {
		return err
	}
	progress("%d started, linking them", len(n.members))
	for i := 1; i < len(n.members); i++ {
		if err := n.link(ctx, i, 0, n.rng.IntN(i), n.rng.IntN(i)); err != nil {
			return err
		}
		if i%max(len(n.members)/4, 1) == 0 {
			progress("%d of %d linked", i+1, len(n.members))
		}
	}
	progress("all linked, filling routing tables")
	err := parallel(len(n.members), 16, func(i int) error {
		// A refresh fails at once while the routing table is empty: its
		// links are connected, but identify may not yet have told the DHT.
		if err := n.waitForAPeer(ctx, i); err != nil {
			return err
		}
		select {
		case err := <-n.members[i].kad().ForceRefresh():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	if err != nil {
		return fmt.Errorf("fill routing tables: %w", err)
	}
	return n.waitRoutingTables(ctx)
}

// link connects member i to the others given; an other that is down
// (restarting) is skipped. It fails if none could be reached.
func (n *cluster) link(ctx context.Context, i int, others ...int) error {
	self := n.members[i].host()
	var lastErr error
	linked := 0
	for _, o := range others {
		h := n.hostOf(o)
		if o == i || h == nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := self.Connect(cctx, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
		cancel()
		if err != nil {
			lastErr = fmt.Errorf("connect node %d to node %d: %w", i, o, err)
			continue
		}
		linked++
	}
	if linked == 0 && lastErr != nil {
		return lastErr
	}
	return nil
}

// hostOf is the host of a live member, nil while it is down.
func (n *cluster) hostOf(i int) host.Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.alive[i] {
		return nil
	}
	return n.members[i].host()
}

// waitForAPeer waits, for at most peerWait, until member i's routing table
// holds a peer.
func (n *cluster) waitForAPeer(ctx context.Context, i int) error {
	deadline := time.After(peerWait)
	for n.members[i].kad().RoutingTable().Size() == 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("node %d has no peer in its routing table %s after it was linked", i, peerWait)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

const peerWait = 30 * time.Second

func (n *cluster) waitRoutingTables(ctx context.Context) error {
	want := min(len(n.members)-1, 10)
	for {
		short := -1
		for i, m := range n.members {
			if n.isAlive(i) && m.kad().RoutingTable().Size() < want {
				short = i
				break
			}
		}
		if short < 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %d has %d peers in its routing table, want %d: %w",
				short, n.members[short].kad().RoutingTable().Size(), want, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (n *cluster) isAlive(i int) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.alive[i]
}

func (n *cluster) setAlive(i int, alive bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.alive[i] = alive
}

// pick returns a random live member other than those excluded, that the
// filter accepts; -1 after a bounded number of tries.
func (n *cluster) pick(accept func(i int) bool) int {
	for range 20 * len(n.members) {
		n.mu.Lock()
		i := n.rng.IntN(len(n.members))
		ok := n.alive[i]
		n.mu.Unlock()
		if ok && (accept == nil || accept(i)) {
			return i
		}
	}
	return -1
}

// holders counts the live members, other than from, that stored key since
// a time: those a put made then reached.
func (n *cluster) holders(key string, from int, since time.Time) int {
	count := 0
	for i, m := range n.members {
		if i != from && n.isAlive(i) && !m.storedAt(key).Before(since) {
			count++
		}
	}
	return count
}

// kill stops a share of the members at random, at once, and returns them.
func (n *cluster) kill(share float64, spare map[int]bool) []int {
	n.mu.Lock()
	var candidates []int
	for i := range n.members {
		if n.alive[i] && !spare[i] {
			candidates = append(candidates, i)
		}
	}
	n.rng.Shuffle(len(candidates), func(a, b int) { candidates[a], candidates[b] = candidates[b], candidates[a] })
	n.mu.Unlock()
	victims := candidates[:int(share*float64(len(n.members))+0.5)]
	parallel(len(victims), 16, func(k int) error {
		n.setAlive(victims[k], false)
		n.members[victims[k]].stop()
		return nil
	})
	return victims
}

// restart brings member i back and links it to three live members.
func (n *cluster) restart(ctx context.Context, i int) error {
	if err := n.members[i].start(); err != nil {
		return err
	}
	var others []int
	for len(others) < 3 {
		o := n.pick(func(o int) bool { return o != i })
		if o < 0 {
			break
		}
		others = append(others, o)
	}
	if err := n.link(ctx, i, others...); err != nil {
		n.members[i].stop()
		return err
	}
	n.members[i].kad().RefreshRoutingTable()
	n.setAlive(i, true)
	return nil
}

func (n *cluster) stopAll() {
	parallel(len(n.members), 16, func(i int) error {
		if n.isAlive(i) {
			n.setAlive(i, false)
			n.members[i].stop()
		}
		return nil
	})
}

// parallel runs f(0..count-1), at most width at once, and returns the first error.
func parallel(count, width int, f func(i int) error) error {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	sem := make(chan struct{}, width)
	for i := range count {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(i); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return firstErr
}
