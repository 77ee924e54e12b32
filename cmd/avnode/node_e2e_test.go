package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/daemon"
	"github.com/avnode/avnode/core/repo"
)

// init → run → id --json, then four daemons bootstrapped from the first:
// the last finds the second through the DHT and lists the bootstrap peer.
func TestFourNodesFormANetwork(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	first := filepath.Join(base, "n0")
	out := mustCLI(t, first, "init")
	if !strings.Contains(out, "peer id 12D3") {
		t.Fatalf("init output: %s", out)
	}
	nodes := []*proc{startDaemon(t, first)}
	var info api.Info
	cliJSON(t, first, &info, "id")
	var built api.VersionInfo
	cliJSON(t, first, &built, "version")
	if info.PeerID != nodes[0].peerID || info.Agent != "avnode/"+built.Version || info.Roles == nil || info.Reachability == "" {
		t.Fatalf("id --json: %+v", info)
	}
	if len(info.Addrs) == 0 || !strings.HasSuffix(info.Addrs[0], "/p2p/"+info.PeerID) {
		t.Fatalf("addrs must be full multiaddrs ending in /p2p/<id>: %v", info.Addrs)
	}
	// The others are created by `run` itself (no init) and bootstrap from n0.
	for i := 1; i < 4; i++ {
		nodes = append(nodes, startDaemon(t, filepath.Join(base, fmt.Sprintf("n%d", i)), "--bootstrap", nodes[0].addr))
	}
	last, second := nodes[3], nodes[1]

	eventually(t, 20*time.Second, "peers lists the bootstrap peer", func() error {
		var peers []api.PeerInfo
		cliJSON(t, last.repo, &peers, "peers")
		for _, p := range peers {
			if p.ID == nodes[0].peerID {
				return nil
			}
		}
		return fmt.Errorf("bootstrap peer %s not in %v", nodes[0].peerID, peers)
	})

	var found api.FindPeerResult
	eventually(t, 30*time.Second, "findpeer through the DHT", func() error {
		r := cli(t, last.repo, nil, "routing", "findpeer", second.peerID, "--json", "--timeout", "5s")
		if r.code != 0 {
			return fmt.Errorf("exit %d: %s", r.code, r.stderr)
		}
		return jsonUnmarshal(r.stdout, &found)
	})
	wantAddr := strings.TrimSuffix(second.addr, "/p2p/"+second.peerID)
	if found.PeerID != second.peerID || !slices.Contains(found.Addrs, wantAddr) {
		t.Fatalf("findpeer %s gave %v, want it to include %s", second.peerID, found.Addrs, wantAddr)
	}
}

// A stopped and restarted node keeps its peer ID and the DHT records it stored.
func TestRestartKeepsPeerIDAndRecords(t *testing.T) {
	base := t.TempDir()
	a := startDaemon(t, filepath.Join(base, "a"))
	b := startDaemon(t, filepath.Join(base, "b"), "--bootstrap", a.addr)

	// B publishes its public-key record; A, its only peer, must hold it.
	key := "/pk/" + b.peerID
	pubFile := filepath.Join(base, "b.pub")
	os.WriteFile(pubFile, publicKeyRecord(t, b.repo), 0o600)
	eventually(t, 20*time.Second, "routing put reaches a peer", func() error {
		r := cli(t, b.repo, nil, "routing", "put", key, pubFile, "--timeout", "5s")
		if r.code != 0 {
			return fmt.Errorf("exit %d: %s", r.code, r.stderr)
		}
		return nil
	})
	a.stop()
	b.stop()

	a2 := startDaemon(t, a.repo)
	if a2.peerID != a.peerID {
		t.Fatalf("peer ID changed across restart: %s then %s", a.peerID, a2.peerID)
	}
	// B is down: the value can only come from A's own datastore.
	r := cli(t, a2.repo, nil, "routing", "get", key, "--timeout", "3s")
	want, _ := os.ReadFile(pubFile)
	if r.code != 0 || r.stdout != string(want) {
		t.Fatalf("record lost across restart: exit %d, %d bytes, stderr %s", r.code, len(r.stdout), r.stderr)
	}
}

// SIGTERM stops the daemon within 5 s and leaves no socket or lock behind.
func TestGracefulShutdownCleansUp(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "n")
	d := startDaemon(t, dir)
	for _, f := range []string{repo.SocketFile, repo.LockFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("%s missing while running: %v", f, err)
		}
	}
	if took := d.stop(); took > daemon.ShutdownTimeout {
		t.Fatalf("shutdown took %s, more than %s", took, daemon.ShutdownTimeout)
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM:\n%s", code, d.log)
	}
	for _, f := range []string{repo.SocketFile, repo.LockFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
			t.Fatalf("%s left behind after shutdown (%v)", f, err)
		}
	}
	r := cli(t, dir, nil, "id")
	if r.code != exitFailure || !strings.Contains(r.stderr, "no avnode daemon is running") || !strings.Contains(r.stderr, "avnode run") {
		t.Fatalf("id with no daemon: exit %d, %q", r.code, r.stderr)
	}
}

// default < repo file < --config file < env < flag, seen through `config show`.
func TestConfigPrecedenceThroughCLI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "n")
	mustCLI(t, dir, "init")
	cfgPath := filepath.Join(dir, repo.ConfigFile)
	body, _ := os.ReadFile(cfgPath)
	body = []byte(strings.Replace(string(body), "level: info", "level: warn", 1))
	body = []byte(strings.Replace(string(body), "format: text", "format: json", 1))
	body = []byte(strings.Replace(string(body), "  low: 64", "  low: 10", 1))
	os.WriteFile(cfgPath, body, 0o600)
	extra := filepath.Join(t.TempDir(), "extra.yaml")
	os.WriteFile(extra, []byte("log:\n  format: text\nconnmgr:\n  low: 20\n"), 0o600)

	var got struct {
		DHT     struct{ Mode string }
		Log     struct{ Level, Format string }
		ConnMgr struct{ Low, High int }
	}
	r := cli(t, dir, []string{"AVNODE_CONNMGR_LOW=30", "AVNODE_DHT_MODE=client"},
		"config", "show", "--json", "--config", extra, "--dht.mode=auto")
	if r.code != 0 {
		t.Fatalf("config show: %s", r.stderr)
	}
	if err := jsonUnmarshal(r.stdout, &got); err != nil {
		t.Fatal(err)
	}
	if got.Log.Level != "warn" || got.Log.Format != "text" || got.ConnMgr.Low != 30 || got.ConnMgr.High != 192 || got.DHT.Mode != "auto" {
		t.Fatalf("precedence broken: %+v", got)
	}
}

// Each bad input gets a one-line error naming the thing, a non-zero exit,
// and leaves the repo as it was.
func TestBadInputLeavesRepoIntact(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "n")
	mustCLI(t, dir, "init")
	snapshot := repoSnapshot(t, dir)

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port

	cases := []struct {
		name  string
		env   []string
		args  []string
		setup func(t *testing.T) func()
		want  string
	}{
		{name: "malformed multiaddr", args: []string{"run", "--listen", "/ip4/300.1.1.1/tcp/1"}, want: "is not a multiaddr"},
		{name: "bootstrap without peer id", args: []string{"run", "--bootstrap", "/ip4/127.0.0.1/tcp/4001"}, want: "/p2p/"},
		{name: "unknown flag", args: []string{"run", "--dht.mdoe=client"}, want: "unknown flag"},
		{name: "mistyped env key", env: []string{"AVNODE_DHT_MDOE=client"}, args: []string{"run"}, want: "AVNODE_DHT_MDOE"},
		{name: "bad value", args: []string{"run", "--dht.mode=sever"}, want: "dht.mode"},
		{name: "unknown key in file", args: []string{"run", "--config", writeTemp(t, "dht:\n  mdoe: client\n")}, want: `unknown key "dht.mdoe"`},
		{name: "broken yaml", args: []string{"run", "--config", writeTemp(t, "listen: [oops\n")}, want: "not valid YAML"},
		{name: "port in use", args: []string{"run", "--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", busyPort), "--metrics.listen", ""}, want: "--listen"},
		{name: "metrics port in use", args: []string{"run", "--listen", "/ip4/127.0.0.1/tcp/0", "--metrics.listen", busy.Addr().String()}, want: "metrics.listen"},
		{name: "init over a repo", args: []string{"init"}, want: "already exists"},
		{name: "missing key file", args: []string{"run", "--listen", "/ip4/127.0.0.1/tcp/0", "--metrics.listen", ""},
			setup: func(t *testing.T) func() {
				path := filepath.Join(dir, repo.NodeKeyFile)
				os.Rename(path, path+".bak")
				return func() { os.Rename(path+".bak", path) }
			}, want: "node.key"},
		{name: "locked repo", args: []string{"run", "--listen", "/ip4/127.0.0.1/tcp/0", "--metrics.listen", ""},
			setup: func(t *testing.T) func() {
				d := startDaemon(t, dir)
				return d.kill
			}, want: "in use by another avnode process"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				defer tc.setup(t)()
			}
			r := cli(t, dir, tc.env, tc.args...)
			if r.code == 0 {
				t.Fatalf("exit 0, want failure; stdout %s", r.stdout)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("stderr %q does not mention %q", r.stderr, tc.want)
			}
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if last := lines[len(lines)-1]; !strings.HasPrefix(last, "avnode: ") || !strings.Contains(last, tc.want) {
				if len(lines) < 2 || !strings.HasPrefix(lines[len(lines)-2], "avnode: ") { // a usage hint may follow
					t.Fatalf("the error is not one line at the end of stderr: %q", r.stderr)
				}
			}
		})
	}
	if after := repoSnapshot(t, dir); !maps.Equal(snapshot, after) {
		t.Fatalf("bad input changed the repo:\nbefore %v\nafter  %v", snapshot, after)
	}
}

// repoSnapshot maps the repo's config and key files to their contents.
func repoSnapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	for _, f := range []string{repo.ConfigFile, repo.NodeKeyFile, repo.VersionFile} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		snap[f] = string(data)
	}
	return snap
}

func writeTemp(t testing.TB, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte(body), 0o600)
	return path
}

// publicKeyRecord is the value of a node's /pk/ record: its marshalled public key.
func publicKeyRecord(t testing.TB, repoDir string) []byte {
	t.Helper()
	key, err := repo.LoadNodeKey(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := crypto.MarshalPublicKey(key.GetPublic())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := peer.IDFromPublicKey(key.GetPublic()); err != nil {
		t.Fatal(err)
	}
	return pub
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// The README's local network: localnet starts N daemons wired by bootstrap,
// and stops them all on SIGTERM.
func TestLocalnetStartsAndStopsANetwork(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(avnodeBin, "localnet", "--nodes", "3", "--dir", dir)
	cmd.Env = cleanEnv()
	out := &syncWriter{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	eventually(t, 60*time.Second, "localnet ready", func() error {
		select {
		case <-exited:
			t.Fatalf("localnet exited: %s", out)
		default:
		}
		if !strings.Contains(out.String(), "3 nodes running") {
			return fmt.Errorf("output so far: %s", out)
		}
		return nil
	})
	var first api.Info
	cliJSON(t, filepath.Join(dir, "node0"), &first, "id")
	eventually(t, 20*time.Second, "node2 connected to node0", func() error {
		var peers []api.PeerInfo
		cliJSON(t, filepath.Join(dir, "node2"), &peers, "peers")
		for _, p := range peers {
			if p.ID == first.PeerID {
				return nil
			}
		}
		return fmt.Errorf("node0 not among %v", peers)
	})

	// A second localnet on the same folder is refused at once, naming the first.
	second := cli(t, t.TempDir(), nil, "localnet", "--nodes", "2", "--dir", dir)
	if second.code != exitFailure || !strings.Contains(second.stderr, "in use by another localnet (pid "+strconv.Itoa(cmd.Process.Pid)+")") {
		t.Fatalf("a second localnet on %s: exit %d\n%s%s", dir, second.code, second.stdout, second.stderr)
	}
	// A node that dies is reported, and its repo runs it again as it is:
	// its own loopback port, no metrics, node0 to bootstrap from.
	node1 := filepath.Join(dir, "node1")
	pid, _ := os.ReadFile(filepath.Join(node1, repo.LockFile))
	if n, err := strconv.Atoi(strings.TrimSpace(string(pid))); err != nil || syscall.Kill(n, syscall.SIGKILL) != nil {
		t.Fatalf("node1's pid %q: %v", pid, err)
	}
	eventually(t, 20*time.Second, "localnet reports node1's death", func() error {
		if !strings.Contains(out.String(), "node1 exited") || !strings.Contains(out.String(), "2 of 3 nodes running") ||
			!strings.Contains(out.String(), "avnode run --repo "+node1) {
			return fmt.Errorf("output so far: %s", out)
		}
		return nil
	})
	again := launchDaemon(t, node1, exec.Command(avnodeBin, "run", "--repo", node1))
	eventually(t, 20*time.Second, "node1, run by hand, connected to node0", func() error {
		var peers []api.PeerInfo
		cliJSON(t, node1, &peers, "peers")
		for _, p := range peers {
			if p.ID == first.PeerID {
				return nil
			}
		}
		return fmt.Errorf("node0 not among %v", peers)
	})
	again.stop()

	// localnet restart stops a node and the localnet starts it again, on
	// the same repo: the same peer ID answers, and it is stopped with the rest.
	node2 := filepath.Join(dir, "node2")
	var before api.Info
	cliJSON(t, node2, &before, "id")
	if r := cli(t, t.TempDir(), nil, "localnet", "restart", "2", "--dir", dir); r.code != 0 {
		t.Fatalf("localnet restart 2: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	eventually(t, 30*time.Second, "node2 restarted", func() error {
		if !strings.Contains(out.String(), "node2 restarted") {
			return fmt.Errorf("output so far: %s", out)
		}
		return nil
	})
	var after api.Info
	cliJSON(t, node2, &after, "id")
	if after.PeerID != before.PeerID {
		t.Fatalf("node2 came back as %s, was %s", after.PeerID, before.PeerID)
	}
	if r := cli(t, t.TempDir(), nil, "localnet", "restart", "2", "--dir", t.TempDir()); r.code == 0 || !strings.Contains(r.stderr, "no localnet runs on") {
		t.Fatalf("localnet restart on a folder with no localnet: exit %d\n%s", r.code, r.stderr)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		t.Fatal("localnet did not stop on SIGTERM")
	}
	for i := 0; i < 3; i++ {
		lock := filepath.Join(dir, fmt.Sprintf("node%d", i), repo.LockFile)
		if _, err := os.Stat(lock); !os.IsNotExist(err) {
			t.Errorf("node%d still holds its repo after localnet stopped", i)
		}
	}
}

// No other user of the machine can drive the node through its control API.
func TestControlAPIRefusesOtherUsers(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a command as another user")
	}
	dir := filepath.Join(t.TempDir(), "n")
	startDaemon(t, dir)
	os.Chmod(filepath.Dir(dir), 0o755)
	cmd := exec.Command(avnodeBin, "--repo", dir, "id", "--json")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err == nil || strings.Contains(string(out), "peer_id") {
		t.Fatalf("user nobody drove the node: %s", out)
	}
}

// Metrics are served on the configured localhost address, libp2p's beside
// the node's, with the time each control API call took; --log-format json makes every log line a JSON object.
func TestMetricsAndJSONLogs(t *testing.T) {
	addr := metricsAddr(t)
	d := startDaemon(t, filepath.Join(t.TempDir(), "n"), "--metrics.listen", addr, "--log-format", "json")
	mustCLI(t, d.repo, "id")
	body := scrapeMetrics(t, addr)
	for _, want := range []string{"avnode_node_connected_peers", "avnode_dht_routing_table_peers", "libp2p_", "avnode_names_resolves_total", "go_goroutines",
		`avnode_api_call_duration_seconds_count{call="GET /v1/id"}`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	d.stop()
	for _, line := range strings.Split(strings.TrimSpace(d.log.String()), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil || v["msg"] == nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
	}
}
