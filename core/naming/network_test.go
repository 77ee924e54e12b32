package naming

// An in-process network of real libp2p hosts on 127.0.0.1 with the real
// kad-dht, each with its own in-memory datastore, keystore and name service.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avnode/avnode/sdk/sdktest"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/avnode/avnode/core/config"
	"github.com/avnode/avnode/core/keystore"
	"github.com/avnode/avnode/core/node"
)

type testNode struct {
	node  *node.Node
	names *Service
	store ds.Batching
	keys  *keystore.Store
	dead  bool
}

func (n *testNode) id() peer.ID { return n.node.Host.ID() }

func (n *testNode) kill() {
	if n.dead {
		return
	}
	n.dead = true
	n.names.Close()
	n.node.Close()
}

// testConfig is the embedded default config made for a loopback test network.
func testConfig(t testing.TB, tweak func(*config.Config)) *config.Config {
	t.Helper()
	cfg, err := config.Load(config.Sources{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Metrics.Listen = ""
	cfg.NAT.AutoNAT, cfg.NAT.HolePunching = false, false
	cfg.ConnMgr.Low, cfg.ConnMgr.High = 200, 400
	cfg.Names.ClaimDifficulty = 8
	cfg.Names.ResolveTimeout = config.Duration(10 * time.Second)
	if tweak != nil {
		tweak(cfg)
	}
	return cfg
}

func newTestNode(t testing.TB, cfg *config.Config) *testNode {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	store := dssync.MutexWrap(ds.NewMapDatastore())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var started atomic.Pointer[Service]
	owners, err := NewOwners(store, cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.New(node.Options{Config: cfg, Key: key, Datastore: store, Logger: log, Validators: owners.Validators(),
		StorePolicy: func(ctx context.Context, from peer.ID, rec *recpb.Record) error {
			if svc := started.Load(); svc != nil {
				return svc.AdmitPut(ctx, from, rec, nil)
			}
			return errors.New("starting")
		},
		ShapeRecord: func(ctx context.Context, rec, held *recpb.Record) {
			if svc := started.Load(); svc != nil {
				svc.ShapeStored(ctx, rec, held)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := keystore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Options{Host: n.Host, DHT: n.DHT, Values: n.Values, Datastore: store, Owners: owners, Keys: keys, NodeKey: key, Config: cfg, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	started.Store(svc)
	svc.Start()
	tn := &testNode{node: n, names: svc, store: store, keys: keys}
	t.Cleanup(tn.kill)
	return tn
}

// newTestNetwork starts n nodes; each connects to the first and to a few
// random others, then the routing tables are filled by a DHT refresh.
func newTestNetwork(t testing.TB, n int, tweak func(*config.Config)) []*testNode {
	t.Helper()
	cfg := testConfig(t, tweak)
	nodes := make([]*testNode, n)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Add(1)
		go func() { defer wg.Done(); nodes[i] = newTestNode(t, cfg) }()
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, tn := range nodes[1:] {
		targets := []*testNode{nodes[0], nodes[rand.IntN(i+1)], nodes[rand.IntN(i+1)]}
		for _, other := range targets {
			info := peer.AddrInfo{ID: other.id(), Addrs: other.node.Host.Addrs()}
			// A dial can cross one the DHT started the other way and be
			// reset; the next attempt finds the connection made.
			waitFor(t, 10*time.Second, "connect", func() error { return tn.node.Host.Connect(ctx, info) })
		}
	}
	for _, tn := range nodes {
		wg.Add(1)
		go func() { defer wg.Done(); <-tn.node.DHT.ForceRefresh() }()
	}
	wg.Wait()
	want := min(n-1, 10)
	// A refresh can run before the node it asked has added a peer that
	// connected a moment earlier; a node still short asks again, at most
	// every two seconds.
	lastRefresh := make([]time.Time, n)
	waitFor(t, 30*time.Second, "routing tables filled", func() error {
		var short error
		for i, tn := range nodes {
			if size := tn.node.DHT.RoutingTable().Size(); size < want {
				short = fmt.Errorf("node %d has %d peers in its routing table, want %d", i, size, want)
				if time.Since(lastRefresh[i]) > 2*time.Second {
					lastRefresh[i] = time.Now()
					tn.node.DHT.ForceRefresh()
				}
			}
		}
		return short
	})
	return nodes
}

// waitFor is the repository's one bounded wait.
var waitFor = sdktest.Eventually

// claimName makes a key on tn and claims name with it.
func claimName(t testing.TB, tn *testNode, name, keyName string) *ClaimResult {
	t.Helper()
	if _, err := tn.keys.Generate(keyName); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := tn.names.Claim(ctx, name, keyName)
	if err != nil {
		t.Fatalf("claim %s: %v", name, err)
	}
	return res
}
