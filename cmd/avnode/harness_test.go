package main

// A harness for tests that run avnode as real processes: the binary is built
// once, every daemon is a child process on 127.0.0.1 with its own repo, and
// every process is stopped when its test ends.
//
// A test that spends its time waiting on a network of daemons calls
// t.Parallel(): `make test` runs three at a time. One that measures what a
// flood costs, takes a fixed port or times hole punching stays serial, so
// that other tests' daemons do not skew what it measures.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/avnode/avnode/sdk/sdktest"
)

var avnodeBin string

// buildFlags are passed to `go build` for the avnode binary under test.
var buildFlags []string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "avnode-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	avnodeBin = filepath.Join(dir, "avnode")
	os.Chmod(dir, 0o755) // other users run it in the permission test
	// The shipped roles sit next to the binary, where the node looks first.
	// Each is built in its folder: the chat example is a module of its own.
	for out, pkgDir := range map[string]string{"avnode": ".", "avnode-beacon": "../../roles/beacon", "avnode-mirror": "../../roles/mirror",
		"avnode-relay": "../../roles/relay", "avnode-receiver": "../../roles/receiver", "avnode-satellite": "../../roles/satellite",
		"avnode-chat": "../../sdk/examples/chat"} {
		// -buildvcs=auto stamps the commit, as `make build` does, even
		// where GOFLAGS turns it off.
		build := exec.Command("go", append(append([]string{"build", "-buildvcs=auto"}, buildFlags...), "-o", filepath.Join(dir, out), ".")...)
		build.Dir = pkgDir
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build", out+":", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one CLI invocation did.
type result struct {
	stdout, stderr string
	code           int
}

// cli runs `avnode --repo repo args...` and waits for it (30 s at most,
// unless the test said otherwise with setCLITimeout).
func cli(t testing.TB, repo string, env []string, args ...string) result {
	t.Helper()
	limit := cliTimeout
	if d, ok := cliTimeouts.Load(t); ok {
		limit = d.(time.Duration)
	}
	cmd := exec.Command(avnodeBin, append([]string{"--repo", repo}, args...)...)
	cmd.Env = append(cleanEnv(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(limit):
		cmd.Process.Kill()
		<-done
		return result{stdout: out.String(), stderr: errb.String() + fmt.Sprintf("\n(killed: did not finish in %s)", limit), code: -1}
	}
	return result{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}
}

// mustCLI runs the command and fails the test unless it exits 0.
func mustCLI(t testing.TB, repo string, args ...string) string {
	t.Helper()
	r := cli(t, repo, nil, args...)
	if r.code != 0 {
		t.Fatalf("avnode %v: exit %d\n%s", args, r.code, r.stderr)
	}
	return r.stdout
}

// cliJSON runs a read command with --json and decodes its output.
func cliJSON(t testing.TB, repo string, out any, args ...string) {
	t.Helper()
	stdout := mustCLI(t, repo, append(args, "--json")...)
	if err := json.Unmarshal([]byte(stdout), out); err != nil {
		t.Fatalf("avnode %v --json: %v\n%s", args, err, stdout)
	}
}

// cleanEnv drops AVNODE_ variables of the machine running the tests.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AVNODE_") {
			env = append(env, kv)
		}
	}
	return env
}

// daemon is one running `avnode run` process.
type proc struct {
	t      testing.TB
	repo   string
	peerID string
	addr   string // first TCP address, full with /p2p/
	cmd    *exec.Cmd
	exited chan struct{}
	log    *syncWriter
	ended  atomic.Bool // the test stopped or killed it
}

// startDaemon runs `avnode run` on loopback with any free port and waits for
// its ready line. The process is killed when the test ends.
func startDaemon(t testing.TB, repo string, args ...string) *proc {
	t.Helper()
	return startDaemonWithEnv(t, repo, nil, args...)
}

// startDaemonWithEnv is startDaemon with extra environment variables.
func startDaemonWithEnv(t testing.TB, repo string, env []string, args ...string) *proc {
	t.Helper()
	full := append([]string{"run", "--repo", repo,
		"--listen", "/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/quic-v1",
		"--metrics.listen", "", "--dashboard.listen", ""}, args...)
	cmd := exec.Command(avnodeBin, full...)
	cmd.Env = append(cleanEnv(), env...)
	return launchDaemon(t, repo, cmd)
}

// launchDaemon starts cmd, an `avnode run` for repo, and waits for its ready
// line; the process is killed when the test ends.
func launchDaemon(t testing.TB, repo string, cmd *exec.Cmd) *proc {
	t.Helper()
	d := &proc{t: t, repo: repo, cmd: cmd, exited: make(chan struct{}), log: &syncWriter{}}
	cmd.Stderr = d.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		select {
		case <-d.exited:
			if !d.ended.Load() {
				// Not the test's doing: its log says why, if the test fails.
				t.Logf("daemon %s exited during the test (%v); its log:\n%s", repo, cmd.ProcessState, d.log)
			}
		default:
		}
		d.kill()
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "avnode ready:") {
				ready <- sc.Text()
			}
		}
	}()
	select {
	case line := <-ready:
		fields := strings.Fields(line)
		d.peerID = fields[3]
		for _, f := range fields {
			if strings.Contains(f, "/tcp/") {
				d.addr = f
				break
			}
		}
	case <-d.exited:
		t.Fatalf("daemon %s exited before ready:\n%s", repo, d.log)
	case <-time.After(30 * time.Second):
		t.Fatalf("daemon %s not ready in 30s:\n%s", repo, d.log)
	}
	return d
}

// stop sends SIGTERM and returns how long the daemon took to exit.
func (d *proc) stop() time.Duration {
	d.t.Helper()
	start := time.Now()
	d.ended.Store(true)
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		d.kill()
		d.t.Fatalf("daemon %s ignored SIGTERM for 15s", d.repo)
	}
	return time.Since(start)
}

func (d *proc) kill() {
	d.ended.Store(true)
	select {
	case <-d.exited:
	default:
		d.cmd.Process.Kill()
		<-d.exited
	}
}

// eventually is the repository's one bounded wait.
var eventually = sdktest.Eventually

// syncWriter lets the test read a log while the process writes it.
type syncWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// metricsAddr is a free loopback address for a daemon's --metrics.listen.
func metricsAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// scrapeMetrics reads the metrics page a daemon serves at addr.
func scrapeMetrics(t testing.TB, addr string) string {
	t.Helper()
	return scrapeMetricsWith(t, http.DefaultClient, addr)
}

// scrapeMetricsWith reads the metrics page at addr through client.
func scrapeMetricsWith(t testing.TB, client *http.Client, addr string) string {
	t.Helper()
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics at %s: %s, %v", addr, resp.Status, err)
	}
	return string(body)
}

// metricSum adds up the samples of a metric in a Prometheus text page
// whose labels contain label (all samples if label is empty).
func metricSum(page, metric, label string) float64 {
	var sum float64
	for _, line := range strings.Split(page, "\n") {
		rest, ok := strings.CutPrefix(line, metric)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') || !strings.Contains(rest, label) {
			continue
		}
		fields := strings.Fields(rest[strings.LastIndex(rest, "}")+1:])
		if len(fields) > 0 {
			if v, err := strconv.ParseFloat(fields[0], 64); err == nil {
				sum += v
			}
		}
	}
	return sum
}

const cliTimeout = 30 * time.Second

// cliTimeouts holds the CLI time limits of tests that need a longer one,
// per test: the tests run in parallel.
var cliTimeouts sync.Map // testing.TB → time.Duration

// setCLITimeout gives the CLI commands t runs up to d each.
func setCLITimeout(t testing.TB, d time.Duration) {
	cliTimeouts.Store(t, d)
	t.Cleanup(func() { cliTimeouts.Delete(t) })
}
