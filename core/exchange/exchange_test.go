package exchange

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	relayclient "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/avnode/avnode/core/content"
	"github.com/avnode/avnode/core/frame"
)

const prefix = "/avtr-test"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newHost(t testing.TB) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func connect(t testing.TB, a, b host.Host) {
	t.Helper()
	if err := a.Connect(context.Background(), peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

func newStore(t testing.TB) *content.Blockstore {
	t.Helper()
	bs, err := content.OpenBlockstore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bs
}

// publishRandom imports a directory holding one random file of size bytes.
func publishRandom(t testing.TB, bs *content.Blockstore, size int) (cid.Cid, []byte) {
	t.Helper()
	dir := t.TempDir()
	data := make([]byte, size)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(dir, "data.bin"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := content.Import(context.Background(), dir, bs, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res.Root, data
}

// server is a host serving a block store.
type server struct {
	h  host.Host
	bs *content.Blockstore
}

func newServer(t testing.TB, bs *content.Blockstore) server {
	h := newHost(t)
	NewServer(h, prefix, bs, quiet)
	return server{h: h, bs: bs}
}

func readBack(t testing.TB, bs *content.Blockstore, root cid.Cid) []byte {
	t.Helper()
	c, err := content.ResolvePath(root, "data.bin", bs)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := content.WriteFile(context.Background(), c, &buf, bs); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestFetchFromSeveralSources(t *testing.T) {
	origin := newStore(t)
	root, data := publishRandom(t, origin, 5<<20+123)
	a, b := newServer(t, origin), newServer(t, copyStore(t, origin))
	client := newHost(t)
	connect(t, client, a.h)
	connect(t, client, b.h)
	bs := newStore(t)
	stats, err := NewFetcher(client, prefix, bs, quiet).Fetch(context.Background(), root, []peer.ID{a.h.ID(), b.h.ID()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readBack(t, bs, root), data) {
		t.Fatal("fetched bytes differ")
	}
	if stats.Fetched != stats.Blocks || len(stats.Sources) != 2 {
		t.Fatalf("want every block fetched, from both sources: %+v", stats)
	}
}

// withoutOneLeaf copies a store but for one raw (file data) block.
func withoutOneLeaf(t testing.TB, from *content.Blockstore) *content.Blockstore {
	t.Helper()
	partial := copyStore(t, from)
	keys, _ := partial.AllKeys(context.Background())
	for _, c := range keys {
		if c.Prefix().Codec == cid.Raw {
			partial.Delete(c)
			break
		}
	}
	return partial
}

func copyStore(t testing.TB, from *content.Blockstore) *content.Blockstore {
	t.Helper()
	to := newStore(t)
	keys, err := from.AllKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range keys {
		data, _ := from.Get(c)
		to.Put(c, data)
	}
	return to
}

// A hostile source answering every request with a bit-flipped block, or
// announcing an oversized one, is dropped; the fetch completes from the
// honest source, byte for byte.
func TestBadSourcesAreDropped(t *testing.T) {
	origin := newStore(t)
	root, data := publishRandom(t, origin, 3<<20)
	honest := newServer(t, origin)
	cases := map[string]func(w io.Writer, block []byte){
		"corrupt": func(w io.Writer, block []byte) {
			bad := bytes.Clone(block)
			bad[len(bad)/2] ^= 0x40
			frame.Write(w, statusHave, bad)
		},
		"oversized": func(w io.Writer, _ []byte) {
			w.Write([]byte{statusHave, 0xff, 0xff, 0xff, 0xff, 0x0f}) // announces 4 GiB
		},
	}
	for what, lie := range cases {
		t.Run(what, func(t *testing.T) {
			liar := newHost(t)
			liar.SetStreamHandler(ProtocolID(prefix), func(st network.Stream) {
				defer st.Close()
				r := bufio.NewReader(st)
				for {
					req, err := readRequest(r)
					if err != nil {
						return
					}
					block, _ := origin.Get(req.cid)
					lie(st, block)
				}
			})
			client := newHost(t)
			connect(t, client, honest.h)
			connect(t, client, liar)
			bs := newStore(t)
			stats, err := NewFetcher(client, prefix, bs, quiet).Fetch(context.Background(), root, []peer.ID{liar.ID(), honest.h.ID()}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(stats.Dropped) != 1 || !strings.Contains(stats.Dropped[0], liar.ID().String()) {
				t.Fatalf("liar not dropped: %+v", stats)
			}
			if stats.Sources[liar.ID().String()] != 0 {
				t.Fatalf("blocks accepted from the liar: %+v", stats.Sources)
			}
			if !bytes.Equal(readBack(t, bs, root), data) {
				t.Fatal("fetched bytes differ")
			}
		})
	}
}

// An interrupted fetch resumes: the second run fetches only what is missing.
func TestInterruptedFetchResumes(t *testing.T) {
	origin := newStore(t)
	root, data := publishRandom(t, origin, 8<<20)
	src := newServer(t, origin)
	client := newHost(t)
	connect(t, client, src.h)
	bs := newStore(t)
	f := NewFetcher(client, prefix, bs, quiet)
	f.window = 1 // one block at a time, so the interruption lands mid-way

	ctx, cancel := context.WithCancel(context.Background())
	first, err := f.Fetch(ctx, root, []peer.ID{src.h.ID()}, func(s Stats) {
		if s.Fetched >= 3 {
			cancel()
		}
	})
	if err == nil || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "resume") {
		t.Fatalf("interrupted fetch: %v (%+v)", err, first)
	}
	second, err := f.Fetch(context.Background(), root, []peer.ID{src.h.ID()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if second.Present < first.Fetched || second.Fetched != second.Blocks-second.Present {
		t.Fatalf("resume refetched blocks: first %+v, second %+v", first, second)
	}
	if !bytes.Equal(readBack(t, bs, root), data) {
		t.Fatal("fetched bytes differ")
	}
}

// A block no source has fails the fetch with a reason, without hanging.
func TestMissingBlockFailsClearly(t *testing.T) {
	origin := newStore(t)
	root, _ := publishRandom(t, origin, 3<<20)
	partial := withoutOneLeaf(t, origin)
	src := newServer(t, partial)
	client := newHost(t)
	connect(t, client, src.h)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := NewFetcher(client, prefix, newStore(t), quiet).Fetch(ctx, root, []peer.ID{src.h.ID()}, nil)
	if err == nil || !strings.Contains(err.Error(), "no source has block") {
		t.Fatalf("got %v", err)
	}
}

// A source that takes requests and never answers (a peer killed while its
// connection still looks open) does not hold the fetch until its timeout:
// its blocks are also asked of idle sources.
func TestSilentSourceIsWorkedAround(t *testing.T) {
	origin := newStore(t)
	root, data := publishRandom(t, origin, 6<<20)
	honest := newServer(t, origin)
	silent := newHost(t)
	silent.SetStreamHandler(ProtocolID(prefix), func(st network.Stream) {
		io.Copy(io.Discard, st) // read every request, answer none
	})
	client := newHost(t)
	connect(t, client, honest.h)
	connect(t, client, silent)
	bs := newStore(t)
	// Well under responseTimeout: only hedging can finish in time.
	ctx, cancel := context.WithTimeout(context.Background(), responseTimeout/2)
	defer cancel()
	stats, err := NewFetcher(client, prefix, bs, quiet).Fetch(ctx, root, []peer.ID{silent.ID(), honest.h.ID()}, nil)
	if err != nil {
		t.Fatalf("%v (%+v)", err, stats)
	}
	if stats.Sources[silent.ID().String()] != 0 || !bytes.Equal(readBack(t, bs, root), data) {
		t.Fatalf("bad result: %+v", stats)
	}
}

// The server answers ranges, says "don't have" at once for unknown blocks,
// refuses ranges past the end, and refuses streams beyond its per-peer bound.
func TestServerAnswers(t *testing.T) {
	origin := newStore(t)
	root, _ := publishRandom(t, origin, 1000)
	srv := newServer(t, origin)
	client := newHost(t)
	connect(t, client, srv.h)
	open := func() (network.Stream, *bufio.Reader) {
		st, err := client.NewStream(context.Background(), srv.h.ID(), ProtocolID(prefix))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Reset() })
		return st, bufio.NewReader(st)
	}
	st, r := open()
	block, _ := origin.Get(root)
	unknown, _ := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: 0x12, MhLength: -1}.Sum([]byte("nobody has this"))
	asks := []struct {
		req    request
		status byte
		want   []byte
	}{
		{request{cid: root, offset: 2, length: 5}, statusHave, block[2:7]},
		{request{cid: unknown}, statusDontHave, nil},
		{request{cid: root, offset: uint64(len(block)) + 1}, statusRefused, nil},
		{request{cid: root, offset: 1, length: 1<<64 - 1}, statusHave, block[1:]}, // offset+length wraps
		{request{cid: root}, statusHave, block},
	}
	for _, a := range asks {
		writeRequest(st, a.req)
		status, data, err := frame.Read(r, content.MaxBlockSize)
		if err != nil || status != a.status || (a.want != nil && !bytes.Equal(data, a.want)) {
			t.Fatalf("%+v: status %d, %d bytes, %v", a.req, status, len(data), err)
		}
	}
	// MaxStreamsPerPeer are held open; one more is refused, not left hanging.
	for i := 1; i < MaxStreamsPerPeer; i++ {
		s, rr := open()
		writeRequest(s, request{cid: root})
		frame.Read(rr, content.MaxBlockSize)
	}
	extra, rr := open()
	writeRequest(extra, request{cid: root})
	if status, msg, err := frame.Read(rr, content.MaxBlockSize); err != nil || status != statusRefused || !strings.Contains(string(msg), "busy") {
		t.Fatalf("stream over the bound: %d %q %v", status, msg, err)
	}
}

// A source keeps serving past the per-stream request limit: the fetcher
// opens a new stream instead of dropping it.
func TestFetchOpensNewStreamsPastTheLimit(t *testing.T) {
	origin := newStore(t)
	root, data := publishRandom(t, origin, 9<<20) // 9 chunks, a file node, a dir node
	h := newHost(t)
	srv := NewServer(h, prefix, origin, quiet)
	srv.maxRequests = 2
	client := newHost(t)
	connect(t, client, h)
	bs := newStore(t)
	f := NewFetcher(client, prefix, bs, quiet)
	f.maxRequests = 2
	stats, err := f.Fetch(context.Background(), root, []peer.ID{h.ID()}, nil)
	if err != nil || len(stats.Dropped) != 0 {
		t.Fatalf("%v (%+v)", err, stats)
	}
	if !bytes.Equal(readBack(t, bs, root), data) {
		t.Fatal("fetched bytes differ")
	}
}

// With MaxSources 1 a fetch uses the first source only; a spare is started
// when the first lacks blocks, and the fetch completes from it.
func TestSpareSourcesStartWhenNeeded(t *testing.T) {
	origin := newStore(t)
	root, data := publishRandom(t, origin, 3<<20)
	partial := withoutOneLeaf(t, origin)
	full, lacking, unused := newServer(t, origin), newServer(t, partial), newServer(t, copyStore(t, origin))
	client := newHost(t)
	for _, s := range []server{full, lacking, unused} {
		connect(t, client, s.h)
	}
	f := NewFetcher(client, prefix, newStore(t), quiet)
	f.MaxSources = 1
	stats, err := f.Fetch(context.Background(), root, []peer.ID{full.h.ID(), unused.h.ID()}, nil)
	if err != nil || len(stats.Sources) != 1 || stats.Sources[full.h.ID().String()] == 0 {
		t.Fatalf("want every block from the first source only: %+v, %v", stats, err)
	}
	bs := newStore(t)
	f = NewFetcher(client, prefix, bs, quiet)
	f.MaxSources = 1
	stats, err = f.Fetch(context.Background(), root, []peer.ID{lacking.h.ID(), full.h.ID()}, nil)
	if err != nil {
		t.Fatalf("the spare was not used: %v (%+v)", err, stats)
	}
	if stats.Sources[full.h.ID().String()] == 0 || !bytes.Equal(readBack(t, bs, root), data) {
		t.Fatalf("fetch from the spare: %+v", stats)
	}
}

// A source reached only through a relay is fetched from whole, though the
// relay cuts each relayed connection after 3 MiB (three 1 MiB blocks at
// most): the fetch dials through the relay again, on a new circuit, instead
// of dropping the source.
func TestFetchGoesOnAcrossRelayCircuits(t *testing.T) {
	relayHost := newHost(t)
	res := relay.DefaultResources()
	res.Limit = &relay.RelayLimit{Duration: time.Minute, Data: 3 << 20}
	svc, err := relay.New(relayHost, relay.WithResources(res))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	// Neither the source nor the client listens: they reach each other only
	// through the relay.
	unreachable := func() host.Host {
		h, err := libp2p.New(libp2p.NoListenAddrs, libp2p.EnableRelay(), libp2p.DisableMetrics())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}
	source, client := unreachable(), unreachable()
	origin := newStore(t)
	root, data := publishRandom(t, origin, 12<<20)
	NewServer(source, prefix, origin, quiet)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	relayInfo := peer.AddrInfo{ID: relayHost.ID(), Addrs: relayHost.Addrs()}
	if err := source.Connect(ctx, relayInfo); err != nil {
		t.Fatal(err)
	}
	if _, err := relayclient.Reserve(ctx, source, relayInfo); err != nil {
		t.Fatal(err)
	}
	circuit, err := ma.NewMultiaddr(relayHost.Addrs()[0].String() + "/p2p/" + relayHost.ID().String() + "/p2p-circuit")
	if err != nil {
		t.Fatal(err)
	}
	client.Peerstore().AddAddr(source.ID(), circuit, peerstore.PermanentAddrTTL)
	var circuits atomic.Int32
	client.Network().Notify(&network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		if c.RemotePeer() == source.ID() && c.Stat().Limited {
			circuits.Add(1)
		}
	}})

	bs := newStore(t)
	stats, err := NewFetcher(client, prefix, bs, quiet).Fetch(ctx, root, []peer.ID{source.ID()}, nil)
	if err != nil {
		t.Fatalf("fetch through a relay that cuts every 3 MiB: %v", err)
	}
	if !bytes.Equal(readBack(t, bs, root), data) {
		t.Fatal("fetched bytes differ")
	}
	if n := circuits.Load(); n < 4 {
		t.Fatalf("12 MiB came over %d relayed connections, limited to 3 MiB each", n)
	}
	if len(stats.Dropped) != 0 {
		t.Fatalf("the source was dropped: %v", stats.Dropped)
	}
}
