package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/repo"
)

// TestCompareWithKubo times the same work on two networks of daemons on
// loopback, one of kubo, one of avnode, each through its own API as its CLI
// calls it: node i publishes (IPNS for kubo, a zone change for avnode),
// node i+1 resolves it (cold), then again (warm). It asserts only that every
// operation succeeded; the p50s and their ratios go to the log (and to
// AVNODE_KUBO_OUT as JSON), for the README. It runs only where AVNODE_KUBO
// names a kubo `ipfs` binary: the repository does not depend on kubo (the
// README says how to build one).
func TestCompareWithKubo(t *testing.T) {
	bin := os.Getenv("AVNODE_KUBO")
	if bin == "" {
		t.Skip("AVNODE_KUBO is not set to a kubo ipfs binary")
	}
	n := 30
	if s := os.Getenv("AVNODE_KUBO_NODES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	kubo := measureKubo(t, bin, n)
	av := measureAvnodeAPI(t, n)
	report := map[string]map[string]float64{}
	t.Logf("%d daemons each, p50 in ms through each daemon's API", n)
	for _, op := range []string{"publish", "resolve cold", "resolve warm"} {
		k, a := kubo[op], av[op]
		if len(k) != n || len(a) != n {
			t.Fatalf("%s: kubo %d of %d done, avnode %d", op, len(k), n, len(a))
		}
		report[op] = map[string]float64{"kubo_ms": p50ms(k), "avnode_ms": p50ms(a), "ratio": p50ms(a) / p50ms(k)}
		t.Logf("%-13s kubo %7.2f  avnode %7.2f  avnode/kubo %.2f", op, p50ms(k), p50ms(a), p50ms(a)/p50ms(k))
	}
	if out := os.Getenv("AVNODE_KUBO_OUT"); out != "" {
		data, _ := json.MarshalIndent(report, "", "  ")
		if err := os.WriteFile(out, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func p50ms(ds []time.Duration) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[len(s)/2]) / float64(time.Millisecond)
}

// timings are the durations of each operation, by name.
type timings map[string][]time.Duration

func (tm timings) time(op string, f func() error) error {
	start := time.Now()
	if err := f(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	tm[op] = append(tm[op], time.Since(start))
	return nil
}

// runWork does the compared work on n nodes of one network: node i
// publishes, node i+1 resolves it cold, then warm. resolve returns what the
// name resolved to, checked against what was published.
func runWork(t *testing.T, who string, n int, publish func(i int) error, resolve func(reader, owner int) (string, error), want string) timings {
	t.Helper()
	tm := timings{}
	for i := range n {
		if err := tm.time("publish", func() error { return publish(i) }); err != nil {
			t.Fatalf("%s node %d: %v", who, i, err)
		}
	}
	for i := range n {
		r := (i + 1) % n
		for _, op := range []string{"resolve cold", "resolve warm"} {
			if err := tm.time(op, func() error {
				got, err := resolve(r, i)
				if err == nil && got != want {
					err = fmt.Errorf("resolved to %q, want %q", got, want)
				}
				return err
			}); err != nil {
				t.Fatalf("%s node %d resolving node %d: %v", who, r, i, err)
			}
		}
	}
	return tm
}

// kuboNode is one `ipfs daemon` with its repo and RPC address.
type kuboNode struct {
	api, id string
	addrs   []string
}

func (k *kuboNode) rpc(ctx context.Context, path string, args url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, "POST", "http://"+k.api+"/api/v0/"+path+"?"+args.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("kubo %s: %s: %s", path, resp.Status, body)
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}

// startKubo inits a repo with kubo's test profile (loopback, no
// bootstrap, no mDNS), turns off what would reach the internet, runs the
// daemon and reads its RPC address from the repo's api file.
func startKubo(t *testing.T, bin, dir string) *kuboNode {
	t.Helper()
	env := append(os.Environ(), "IPFS_PATH="+dir)
	run := func(args ...string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ipfs %v: %v\n%s", args, err, out)
		}
	}
	run("init", "--profile=test")
	for _, kv := range [][2]string{
		{"Routing.Type", `"dht"`}, {"AutoTLS.Enabled", "false"}, {"AutoConf.Enabled", "false"},
		{"Swarm.DisableNatPortMap", "true"}, {"Swarm.RelayClient.Enabled", "false"}, {"Swarm.RelayService.Enabled", "false"},
	} {
		run("config", "--json", kv[0], kv[1])
	}
	cmd := exec.Command(bin, "daemon", "--enable-gc=false")
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	log := &syncWriter{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	k := &kuboNode{}
	eventually(t, time.Minute, "kubo daemon in "+dir+" answers", func() error {
		b, err := os.ReadFile(filepath.Join(dir, "api"))
		if err != nil {
			return fmt.Errorf("%v\n%s", err, log)
		}
		parts := strings.Split(strings.TrimSpace(string(b)), "/") // /ip4/127.0.0.1/tcp/PORT
		if len(parts) < 5 {
			return fmt.Errorf("api file %q", b)
		}
		k.api = parts[2] + ":" + parts[4]
		var id struct {
			ID        string
			Addresses []string
		}
		if err := k.rpc(context.Background(), "id", nil, &id); err != nil {
			return err
		}
		k.id, k.addrs = id.ID, id.Addresses
		return nil
	})
	return k
}

func measureKubo(t *testing.T, bin string, n int) timings {
	nodes := make([]*kuboNode, n)
	for i := range nodes {
		nodes[i] = startKubo(t, bin, filepath.Join(t.TempDir(), fmt.Sprintf("k%d", i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for i, k := range nodes[1:] {
		for _, other := range []*kuboNode{nodes[0], nodes[i/2], nodes[i]} {
			if other != k {
				k.rpc(ctx, "swarm/connect", url.Values{"arg": {other.addrs[0]}}, nil)
			}
		}
	}
	waitKuboTables(t, nodes)
	// bafkqaaa: the empty identity CID, so the publish needs no content.
	return runWork(t, "kubo", n, func(i int) error {
		return nodes[i].rpc(ctx, "name/publish", url.Values{"arg": {"/ipfs/bafkqaaa"}, "key": {"self"}, "allow-offline": {"false"}}, nil)
	}, func(r, i int) (string, error) {
		var out struct{ Path string }
		err := nodes[r].rpc(ctx, "name/resolve", url.Values{"arg": {"/ipns/" + nodes[i].id}}, &out)
		return out.Path, err
	}, "/ipfs/bafkqaaa")
}

// waitKuboTables waits until every kubo node has connections to most
// others, as the DHT's own refresh brings them.
func waitKuboTables(t *testing.T, nodes []*kuboNode) {
	want := min(len(nodes)-1, 20)
	eventually(t, 2*time.Minute, "kubo nodes connected", func() error {
		for i, k := range nodes {
			var peers struct{ Peers []struct{} }
			if err := k.rpc(context.Background(), "swarm/peers", nil, &peers); err != nil {
				return err
			}
			if len(peers.Peers) < want {
				return fmt.Errorf("kubo node %d has %d peers, want %d", i, len(peers.Peers), want)
			}
		}
		return nil
	})
}

// measureAvnodeAPI does the same on avnode daemons: node i owns a name
// (claimed first, untimed) and changes its zone; the calls are the control
// API's, as the CLI makes them.
func measureAvnodeAPI(t *testing.T, n int) timings {
	nodes, _ := startDaemons(t, t.TempDir(), n, nil)
	want := min(n-1, 20)
	for _, d := range nodes {
		waitPeers(t, d, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	name := func(i int) string { return fmt.Sprintf("cmp%d.avtr", i) }
	for i, d := range nodes {
		mustCLI(t, d.repo, "key", "gen", fmt.Sprintf("cmp%d", i))
		mustCLI(t, d.repo, "name", "claim", name(i), "--key", fmt.Sprintf("cmp%d", i))
	}
	// One client per daemon, keeping its connection, as kubo's side does.
	clients := make([]*api.Client, n)
	for i, d := range nodes {
		clients[i] = api.NewClient(d.repo, repo.SocketFile)
	}
	return runWork(t, "avnode", n, func(i int) error {
		q := url.Values{"name": {name(i)}, "type": {"ROOT"}, "value": {"bafkqaaa"}}
		return clients[i].Call(ctx, "POST", "/v1/record/set", q, nil, nil)
	}, func(r, i int) (string, error) {
		var res api.Resolution
		err := clients[r].Call(ctx, "GET", "/v1/resolve", url.Values{"name": {name(i)}}, nil, &res)
		return res.Root, err
	}, "bafkqaaa")
}
