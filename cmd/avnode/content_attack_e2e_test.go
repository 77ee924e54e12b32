package main

// Attacks on a node's content paths, across real daemons on loopback. The
// attacker is a bare go-libp2p host written here: it speaks the block
// protocol byte by byte (uvarint-framed requests and answers, as the
// protocol's doc says) and answers kad-dht's GET_PROVIDERS with itself, and
// its DAGs are JSON nodes built byte by byte here, hashed with go-cid.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	dhtpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-msgio/pbio"
	mh "github.com/multiformats/go-multihash"
)

const blocksProtocol = protocol.ID("/avtr/blocks/1.0.0")

// rawCID and jsonCID name blocks as the format does: CIDv1, sha2-256,
// codec raw (0x55) or json (0x0200).
func rawCID(data []byte) cid.Cid  { return blockCID(cid.Raw, data) }
func jsonCID(data []byte) cid.Cid { return blockCID(0x0200, data) }

func blockCID(codec uint64, data []byte) cid.Cid {
	d := sha256.Sum256(data)
	m, _ := mh.Encode(d[:], mh.SHA2_256)
	return cid.NewCidV1(codec, m)
}

// fileNode spells a file node as the format's canonical JSON: n links to
// child, each declared to hold each bytes, and a total it declares.
func fileNode(child cid.Cid, n int, each, total int64) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `{"kind":"file","size":%d,"chunks":[`, total)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"cid":"%s","size":%d}`, child, each)
	}
	b.WriteString("]}")
	return []byte(b.String())
}

// blockPeer is an outside host that serves the blocks it is given and
// tells whoever asks the DHT that it provides them.
func newBlockPeer(t *testing.T, blocks map[cid.Cid][]byte) *attacker {
	a := newAttacker(t)
	a.h.SetStreamHandler(blocksProtocol, func(s network.Stream) {
		defer s.Close()
		r := bufio.NewReader(s)
		for {
			n, err := binary.ReadUvarint(r)
			if err != nil || n > 128 {
				return
			}
			b := make([]byte, n)
			if _, err := io.ReadFull(r, b); err != nil {
				return
			}
			off, _ := binary.ReadUvarint(r)
			length, err := binary.ReadUvarint(r)
			if err != nil {
				return
			}
			_, c, _ := cid.CidFromBytes(b)
			data, ok := blocks[c]
			if !ok || off != 0 || length != 0 {
				s.Write([]byte{1, 0})
				continue
			}
			s.Write(append(binary.AppendUvarint([]byte{0}, uint64(len(data))), data...))
		}
	})
	a.h.SetStreamHandler(kadProtocol, func(s network.Stream) {
		defer s.Close()
		rd, wr := pbio.NewDelimitedReader(s, 1<<20), pbio.NewDelimitedWriter(s)
		for {
			var req dhtpb.Message
			if rd.ReadMsg(&req) != nil {
				return
			}
			resp := &dhtpb.Message{Type: req.Type, Key: req.Key}
			if req.Type == dhtpb.Message_GET_PROVIDERS {
				self := peer.AddrInfo{ID: a.h.ID(), Addrs: a.h.Addrs()}
				resp.ProviderPeers = dhtpb.RawPeerInfosToPBPeers([]peer.AddrInfo{self})
			}
			if wr.WriteMsg(resp) != nil {
				return
			}
		}
	})
	return a
}

// dirBytes adds up the sizes of the files under dir.
func dirBytes(t *testing.T, dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
		return nil
	})
	return n
}

// getBounded runs an avnode command and stops it once it has written more
// than most bytes to stdout or into outDir, or after 30 s. It returns the
// exit code, stderr and the bytes written.
func getBounded(t *testing.T, repo, outDir string, most int64, args ...string) (int, string, int64) {
	cmd := exec.Command(avnodeBin, append([]string{"--repo", repo}, args...)...)
	cmd.Env = cleanEnv()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncWriter
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var printed atomic.Int64
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		buf := make([]byte, 64<<10)
		for {
			n, err := stdout.Read(buf)
			printed.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	written := func() int64 { return printed.Load() + dirBytes(t, outDir) }
	deadline := time.After(30 * time.Second)
	for stopped := false; !stopped; {
		select {
		case <-copied:
			stopped = true
		case <-deadline:
			stopped = true
		case <-time.After(50 * time.Millisecond):
			stopped = written() > most
		}
	}
	cmd.Process.Kill()
	<-copied
	cmd.Wait()
	return cmd.ProcessState.ExitCode(), stderr.String(), written()
}

// A DAG bomb, and a DAG whose root declares less than its children hold,
// served by an outside host: get, get -o and the gateway refuse them with
// the declared size named, and write nothing beyond the limit.
func TestDAGBombRefused(t *testing.T) {
	chunk := make([]byte, 1<<20)
	rand.Read(chunk)
	chunkCID := rawCID(chunk)
	// One chunk named 8192 × 8192 times: 2.4 MB of blocks for 64 TiB.
	mid := fileNode(chunkCID, 8192, 1<<20, 8192<<20)
	midCID := jsonCID(mid)
	bomb := fileNode(midCID, 8192, 8192<<20, 8192*8192<<20)
	bombCID := jsonCID(bomb)
	// A liar: 4 MiB declared, but each piece is the 8 GiB node.
	liar := fileNode(midCID, 4, 1<<20, 4<<20)
	liarCID := jsonCID(liar)
	src := newBlockPeer(t, map[cid.Cid][]byte{chunkCID: chunk, midCID: mid, bombCID: bomb, liarCID: liar})

	const limitMB = 16
	cfg := writeConfig(t, map[string]any{
		"roles":       []string{"receiver"},
		"gateway":     map[string]any{"listen": "127.0.0.1:0"},
		"content":     map[string]any{"max_fetch_mb": limitMB},
		"role_config": map[string]any{"receiver": map[string]any{"fetch_timeout": "20s"}},
	})
	d := startDaemon(t, filepath.Join(t.TempDir(), "reader"), "--config", cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	src.connect(ctx, d)
	gw := gatewayURL(t, d)
	blocksDir := filepath.Join(d.repo, "blocks")

	for _, tc := range []struct {
		name string
		root cid.Cid
		want string // in the error
	}{
		{"bomb", bombCID, fmt.Sprintf("declares %d bytes (64.0 TiB), over the limit of %d bytes", int64(8192*8192)<<20, limitMB<<20)},
		{"liar", liarCID, fmt.Sprintf("holds %d bytes but its parent says %d", int64(8192)<<20, 1<<20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := "/cid/" + tc.root.String()
			outDir := t.TempDir()
			code, stderr, n := getBounded(t, d.repo, outDir, limitMB<<20, "get", target)
			if code == 0 || !strings.Contains(stderr, tc.want) || n != 0 {
				t.Fatalf("get %s: exit %d, %d bytes on stdout, want a refusal naming %q:\n%s", tc.name, code, n, tc.want, stderr)
			}
			t.Logf("get: %s", strings.TrimSpace(stderr))
			code, stderr, n = getBounded(t, d.repo, outDir, limitMB<<20, "get", target, "-o", filepath.Join(outDir, "out.bin"))
			if code == 0 || !strings.Contains(stderr, tc.want) || n != 0 {
				t.Fatalf("get -o %s: exit %d, %d bytes written, want a refusal naming %q:\n%s", tc.name, code, n, tc.want, stderr)
			}
			if n := dirBytes(t, blocksDir); n > limitMB<<20 {
				t.Fatalf("the store holds %d bytes after refusing %s, over the %d MiB limit", n, tc.name, limitMB)
			}
			// The gateway never announces a length it has not verified:
			// the bomb declares 64 TiB, the liar 4 MiB it does not have.
			for _, method := range []string{"HEAD", "GET"} {
				req, _ := http.NewRequestWithContext(ctx, method, gw+target, nil)
				// The gateway sends /cid/ to the CID's own origin, CID.localhost.
				resp, err := originClient(strings.TrimPrefix(gw, "http://")).Do(req)
				if err != nil {
					t.Fatalf("%s %s: %v", method, target, err)
				}
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusPartialContent {
					t.Fatalf("gateway %s %s: %d, Content-Length %q: served an unverified size", method, tc.name, resp.StatusCode, resp.Header.Get("Content-Length"))
				}
				if method == "GET" && !strings.Contains(string(body), tc.want) {
					t.Errorf("gateway GET %s: %d %q, want the reason %q", tc.name, resp.StatusCode, body, tc.want)
				}
			}
		})
	}
	if _, err := os.Stat(filepath.Join(d.repo, "blocks")); err != nil {
		t.Fatal(err)
	}
	t.Logf("the store holds %d bytes after both refusals (limit %d MiB)", dirBytes(t, blocksDir), limitMB)
}

// floodRanges asks p for 1-byte ranges of block c, pipelined on every
// stream the server allows, until ctx ends; answered counts the answers.
func floodRanges(ctx context.Context, a *attacker, p peer.ID, c cid.Cid, answered *atomic.Int64) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				floodStream(ctx, a, p, c, answered)
			}
		}()
	}
	return &wg
}

func floodStream(ctx context.Context, a *attacker, p peer.ID, c cid.Cid, answered *atomic.Int64) {
	s, err := a.h.NewStream(ctx, p, blocksProtocol)
	if err != nil {
		time.Sleep(50 * time.Millisecond)
		return
	}
	defer s.Reset()
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	go func() {
		w := bufio.NewWriter(s)
		b := c.Bytes()
		for i := uint64(0); ctx.Err() == nil; i++ {
			req := binary.AppendUvarint(nil, uint64(len(b)))
			req = append(req, b...)
			req = binary.AppendUvarint(req, (i*7919)%(1<<20)) // offset
			req = binary.AppendUvarint(req, 1)                // length
			if _, err := w.Write(req); err != nil {
				return
			}
			if i%64 == 63 && w.Flush() != nil {
				return
			}
		}
	}()
	r := bufio.NewReader(s)
	for {
		if _, err := r.ReadByte(); err != nil {
			return
		}
		n, err := binary.ReadUvarint(r)
		if err != nil || n > 2<<20 {
			return
		}
		if _, err := r.Discard(int(n)); err != nil {
			return
		}
		answered.Add(1)
	}
}

// cpuSeconds is the CPU time process pid has used (utime + stime).
func cpuSeconds(t *testing.T, pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // clock ticks; 100 a second on Linux
}

// A bare host floods a node with 1-byte range requests on a 1 MiB block:
// each costs the node what it reads (at most 64 KiB, here 1 byte), and
// another peer's honest get keeps at least half of its speed.
func TestBlockServerRangeFlood(t *testing.T) {
	metrics := metricsAddr(t)
	base := t.TempDir()
	server := startDaemon(t, filepath.Join(base, "server"), "--metrics.listen", metrics)
	reader := startDaemon(t, filepath.Join(base, "reader"), "--bootstrap", server.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	file := make([]byte, 32<<20)
	rand.Read(file)
	path := filepath.Join(base, "file.bin")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	var root string
	eventually(t, 30*time.Second, "the file is published and announced", func() error {
		r := cli(t, server.repo, nil, "publish", path)
		if r.code != 0 || strings.Contains(r.stderr, "could not be announced") {
			return fmt.Errorf("exit %d: %s", r.code, r.stderr)
		}
		root = strings.Fields(r.stdout)[0]
		return nil
	})
	// honestGet times one get of the whole file by the reader, which
	// then forgets it (gc), so the next get fetches it all again.
	honestGet := func() time.Duration {
		out := filepath.Join(t.TempDir(), "copy.bin")
		start := time.Now()
		mustCLI(t, reader.repo, "get", "/cid/"+root, "-o", out)
		took := time.Since(start)
		if fi, err := os.Stat(out); err != nil || fi.Size() != int64(len(file)) {
			t.Fatalf("honest get: %v", err)
		}
		mustCLI(t, reader.repo, "repo", "gc")
		return took
	}
	honestGet() // warm up: the reader finds the server as a provider

	a := newAttacker(t)
	p := a.connect(ctx, server)
	block := rawCID(file[:1<<20])
	var answered atomic.Int64
	// startFlood floods until the returned stop is called, once it is
	// under way (some answers came back).
	startFlood := func() (stop func()) {
		floodCtx, cancelFlood := context.WithCancel(ctx)
		flood := floodRanges(floodCtx, a, p, block, &answered)
		stop = func() { cancelFlood(); flood.Wait() }
		from := answered.Load()
		eventually(t, 30*time.Second, "the flood is answered", func() error {
			if n := answered.Load() - from; n < 500 {
				return fmt.Errorf("%d answered", n)
			}
			return nil
		})
		return stop
	}

	// The flood alone: what each request costs the node.
	stop := startFlood()
	page := scrapeMetrics(t, metrics)
	req0, read0 := metricSum(page, "avnode_blocks_served_requests_total", ""), metricSum(page, "avnode_blocks_served_read_bytes_total", "")
	cpu0, ans0, t0 := cpuSeconds(t, server.cmd.Process.Pid), answered.Load(), time.Now()
	eventually(t, 60*time.Second, "the flood goes on", func() error {
		if n := answered.Load() - ans0; n < 3000 {
			return fmt.Errorf("%d more answered", n)
		}
		return nil
	})
	page = scrapeMetrics(t, metrics)
	reqs, read := metricSum(page, "avnode_blocks_served_requests_total", "")-req0, metricSum(page, "avnode_blocks_served_read_bytes_total", "")-read0
	cpu, ans, took := cpuSeconds(t, server.cmd.Process.Pid)-cpu0, answered.Load()-ans0, time.Since(t0)
	stop()
	t.Logf("flood: %d answers (%.0f a second), %.0f requests, %.0f bytes read (%.1f per request), node CPU %.2f s per 10,000 answers, %.2f cores",
		ans, float64(ans)/took.Seconds(), reqs, read, read/max(reqs, 1), cpu/float64(ans)*10000, cpu/took.Seconds())
	if reqs < 3000 || read/reqs > 64<<10 {
		t.Errorf("the node read %.0f bytes for %.0f 1-byte range requests: over 64 KiB each", read, reqs)
	}

	// The honest get alone and during the flood, in turns, so that the
	// machine's other load weighs on both alike; the median of the ratios.
	var ratios []float64
	for range 3 {
		quiet := honestGet()
		stop := startFlood()
		loud := honestGet()
		stop()
		ratios = append(ratios, quiet.Seconds()/loud.Seconds())
		t.Logf("honest get of %d MiB: %s alone, %s during the flood: %.0f%% of its speed",
			len(file)>>20, quiet.Round(time.Millisecond), loud.Round(time.Millisecond), 100*ratios[len(ratios)-1])
	}
	slices.Sort(ratios)
	if ratios[1] < 0.5 {
		t.Fatalf("the honest get kept %.0f%% of its speed during the flood (the median of %.2f), want at least 50%%", 100*ratios[1], ratios)
	}
}
