package plugins

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/avnode/avnode/core/config"
	"github.com/avnode/avnode/core/daemon"
	"github.com/avnode/avnode/core/keystore"
	"github.com/avnode/avnode/core/naming"
	"github.com/avnode/avnode/core/node"
	"github.com/avnode/avnode/sdk/pluginpb"
)

// BenchmarkHostResolve compares a host-API call made by a plugin (gRPC over
// a unix socket, as go-plugin connects a plugin to its node) with the same
// call made inside the node: resolving a name whose zone is cached.
//
//	go test -run '^$' -bench HostResolve ./plugins/
func BenchmarkHostResolve(b *testing.B) {
	names := benchNames(b)
	m, err := NewManager(Options{Node: daemon.NewRoleNode(nil, names, nil, nil, nil), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	api := m.hostFor("bench", m.roleLogFor("bench"))
	sock := filepath.Join(b.TempDir(), "host.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	pluginpb.RegisterHostServer(srv, api)
	go srv.Serve(lis)
	defer srv.Stop()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := pluginpb.NewHostClient(conn)
	ctx := context.Background()
	req := &pluginpb.ResolveRequest{Name: "bench.avtr"}
	var direct, remote []time.Duration
	for b.Loop() {
		start := time.Now()
		if _, err := api.Resolve(ctx, req); err != nil {
			b.Fatal(err)
		}
		direct = append(direct, time.Since(start))
		start = time.Now()
		if _, err := client.Resolve(ctx, req); err != nil {
			b.Fatal(err)
		}
		remote = append(remote, time.Since(start))
	}
	p50 := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	b.ReportMetric(float64(p50(direct).Nanoseconds())/1000, "in-process-p50-µs")
	b.ReportMetric(float64(p50(remote).Nanoseconds())/1000, "host-api-p50-µs")
	b.ReportMetric(float64(p50(remote))/float64(p50(direct)), "host-api/in-process")
}

// benchNames starts four real nodes on loopback, claims bench.avtr on one
// and returns another's name service with the zone in its cache.
func benchNames(b *testing.B) *naming.Service {
	cfg, err := config.Load(config.Sources{})
	if err != nil {
		b.Fatal(err)
	}
	cfg.Listen, cfg.Metrics.Listen = []string{"/ip4/127.0.0.1/tcp/0"}, ""
	cfg.NAT.AutoNAT, cfg.NAT.HolePunching = false, false
	cfg.Names.ClaimDifficulty = 8
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var services []*naming.Service
	var nodes []*node.Node
	var stores []*keystore.Store
	for range 4 {
		key, _, _ := crypto.GenerateEd25519Key(nil)
		store := dssync.MutexWrap(ds.NewMapDatastore())
		var started atomic.Pointer[naming.Service]
		owners, err := naming.NewOwners(store, cfg, log, nil)
		if err != nil {
			b.Fatal(err)
		}
		n, err := node.New(node.Options{Config: cfg, Key: key, Datastore: store, Logger: log, Validators: owners.Validators(),
			StorePolicy: func(ctx context.Context, from peer.ID, rec *recpb.Record) error {
				if svc := started.Load(); svc != nil {
					return svc.AdmitPut(ctx, from, rec, nil)
				}
				return errors.New("starting")
			}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { n.Close() })
		keys, _ := keystore.Open(b.TempDir())
		svc, err := naming.New(naming.Options{Host: n.Host, DHT: n.DHT, Datastore: store, Owners: owners, Keys: keys, NodeKey: key, Config: cfg, Logger: log})
		if err != nil {
			b.Fatal(err)
		}
		started.Store(svc)
		b.Cleanup(svc.Close)
		if len(nodes) > 0 {
			if err := n.Host.Connect(context.Background(), peer.AddrInfo{ID: nodes[0].Host.ID(), Addrs: nodes[0].Host.Addrs()}); err != nil {
				b.Fatal(err)
			}
		}
		nodes, services, stores = append(nodes, n), append(services, svc), append(stores, keys)
	}
	for _, n := range nodes {
		<-n.DHT.ForceRefresh()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := stores[0].Generate("bench"); err != nil {
		b.Fatal(err)
	}
	if _, err := services[0].Claim(ctx, "bench.avtr", "bench"); err != nil {
		b.Fatal(err)
	}
	if _, err := services[2].Resolve(ctx, "bench.avtr"); err != nil {
		b.Fatal(err)
	}
	return services[2]
}
