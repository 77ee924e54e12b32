package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avnode/avnode/core/api"
)

// TestDNSResponder runs a network of nodes in a network namespace of its
// own, whose /etc/resolv.conf names 127.0.0.1 only (ip netns exec
// bind-mounts /etc/netns/NS/resolv.conf over it). One node runs the
// receiver with its gateway on 127.0.0.1:80 and its DNS responder on
// 127.0.0.1:53, as a machine set up for http://einstein.avtr/ would. Then,
// inside the namespace: dig asks the responder (UDP and TCP), and curl
// opens http://einstein.avtr/ through the system's resolver, which asks
// the responder, and gets the published page. An attacker's queries and
// requests get nothing: a name outside the topics is REFUSED (nothing
// forwarded: the namespace has no other server), and a request under
// another site's name (DNS rebinding) is refused by the gateway.
//
// It needs root (network namespaces); where `ip netns add` fails it skips,
// saying so, and with $CI set it fails instead. dig and curl missing
// likewise (`make test-deps` installs them).
func TestDNSResponder(t *testing.T) {
	t.Parallel()
	dig := testTool(t, "dig", "bind9-dnsutils")
	curl := testTool(t, "curl", "curl")
	ns := dnsNetns(t, true)

	common := append(append([]string{}, lowWork...), "--names.resolve_timeout=3s")
	nodes := []*proc{startInNetns(t, ns, "n0", common...)}
	for i := 1; i < 4; i++ {
		nodes = append(nodes, startInNetns(t, ns, fmt.Sprintf("n%d", i), append(common, "--bootstrap", nodes[0].addr)...))
	}
	for _, d := range nodes {
		waitPeers(t, d, 2)
	}
	publisher := nodes[1]
	mustCLI(t, publisher.repo, "key", "gen", "albert")
	mustCLI(t, publisher.repo, "name", "claim", "einstein.avtr", "--key", "albert")
	siteDir, _ := writeWebSite(t)
	var pub api.PublishResult
	cliJSON(t, publisher.repo, &pub, "publish", siteDir, "--name", "einstein.avtr")

	cfg := writeConfig(t, map[string]any{
		"roles":   []string{"receiver"},
		"gateway": map[string]any{"listen": "127.0.0.1:80"},
		"role_config": map[string]any{"receiver": map[string]any{
			"dns_listen": "127.0.0.1:53", "proxy_topics": []string{"avtr", "code"}, "fetch_timeout": "40s"}},
	})
	receiver := startInNetns(t, ns, "receiver", append(common, "--bootstrap", nodes[0].addr, "--config", cfg)...)
	if gw := gatewayURL(t, receiver); gw != "http://127.0.0.1:80" {
		t.Fatalf("gateway at %s, want http://127.0.0.1:80", gw)
	}
	var st struct {
		DNS        string `json:"dns"`
		DNSQueries int    `json:"dns_queries"`
		DNSRefused int    `json:"dns_refused"`
	}
	cliJSON(t, receiver.repo, &st, "roles", "call", "receiver", "status")
	if st.DNS != "127.0.0.1:53" {
		t.Fatalf("receiver status: DNS %q, want 127.0.0.1:53\n%s", st.DNS, grepLog(receiver.log.String(), "receiver"))
	}
	if logged := grepLog(receiver.log.String(), "DNS responder"); !strings.Contains(logged, "127.0.0.1:53") {
		t.Errorf("the role's log does not say where the DNS responder answers:\n%s", grepLog(receiver.log.String(), "receiver"))
	}

	t.Run("dig", func(t *testing.T) {
		for _, c := range []struct {
			args []string
			want []string // in dig's output
		}{
			{[]string{"einstein.avtr", "A"}, []string{"status: NOERROR", "flags: qr aa", "einstein.avtr.\t\t60\tIN\tA\t127.0.0.1"}},
			{[]string{"+tcp", "EINSTEIN.AVTR", "A"}, []string{"status: NOERROR", "EINSTEIN.AVTR.\t\t60\tIN\tA\t127.0.0.1"}},
			{[]string{"api.coolblog.code", "A"}, []string{"status: NOERROR", "IN\tA\t127.0.0.1"}},
			{[]string{"einstein.avtr", "AAAA"}, []string{"status: NOERROR", "ANSWER: 0", "avtr.\t\t\t60\tIN\tSOA"}},
		} {
			out := runInNetns(t, ns, append([]string{dig, "@127.0.0.1", "-p", "53", "+tries=1", "+time=5"}, c.args...)...)
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("dig %v lacks %q:\n%s", c.args, w, out)
				}
			}
		}
		// The short form: the system's resolver (resolv.conf) is the responder.
		if out := runInNetns(t, ns, dig, "+short", "+tries=1", "+time=5", "einstein.avtr"); strings.TrimSpace(out) != "127.0.0.1" {
			t.Errorf("dig +short einstein.avtr through resolv.conf: %q", out)
		}
	})

	t.Run("curl", func(t *testing.T) {
		// Through the system's resolver, on port 80: the page itself.
		out := runInNetns(t, ns, curl, "-sS", "--max-time", "40", "http://einstein.avtr/")
		if !strings.Contains(out, "Albert Einstein") {
			t.Fatalf("curl http://einstein.avtr/: %q\n%s", out, grepLog(receiver.log.String(), "receiver"))
		}
		if out := runInNetns(t, ns, curl, "-sS", "--max-time", "40", "http://einstein.avtr/page2.html"); !strings.Contains(out, "Special relativity") {
			t.Errorf("curl http://einstein.avtr/page2.html: %q", out)
		}
		// As a browser: sent to the name's own origin, which curl -L follows
		// (curl resolves *.localhost to loopback itself).
		out = runInNetns(t, ns, curl, "-sS", "--max-time", "40", "-A", browserUA, "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "http://einstein.avtr/page2.html")
		if out != "302 http://einstein-avtr.localhost/page2.html" {
			t.Errorf("curl as a browser: %q, want a redirect to the name's origin", out)
		}
		if out := runInNetns(t, ns, curl, "-sSL", "--max-time", "40", "-A", browserUA, "http://einstein.avtr/"); !strings.Contains(out, "Albert Einstein") {
			t.Errorf("curl -L as a browser: %q", out)
		}
	})

	t.Run("Attacks", func(t *testing.T) {
		before := st.DNSRefused
		// Names outside the topics: REFUSED, not an answer; nothing else
		// in the namespace could have answered them.
		for _, args := range [][]string{{"google.com", "A"}, {"+tcp", "example.com", "AAAA"}, {"einstein.avtr.example", "A"}, {"avtr.evil.example", "A"}} {
			out := runInNetns(t, ns, append([]string{dig, "@127.0.0.1", "-p", "53", "+tries=1", "+time=5"}, args...)...)
			if !strings.Contains(out, "status: REFUSED") || !strings.Contains(out, "ANSWER: 0") {
				t.Errorf("dig %v: want REFUSED and no answer:\n%s", args, out)
			}
		}
		cliJSON(t, receiver.repo, &st, "roles", "call", "receiver", "status")
		if st.DNSRefused-before != 4 {
			t.Errorf("the responder counts %d refused queries, want 4", st.DNSRefused-before)
		}
		// A page of another site whose name rebinds to 127.0.0.1, and a
		// raw request under another name: 403, the node asked nothing.
		fetches, _ := gatewayCounts(t, receiver)
		for _, args := range [][]string{
			{"-H", "Host: evil.example", "http://127.0.0.1/"},
			{"--resolve", "evil.example:80:127.0.0.1", "-A", browserUA, "http://evil.example/"},
			{"--resolve", "rebind.evil.example:80:127.0.0.1", "http://rebind.evil.example/name/einstein.avtr/"},
			{"-H", "Host: einstein.avtr.evil.example", "http://127.0.0.1/index.html"},
		} {
			out := runInNetns(t, ns, append([]string{curl, "-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}"}, args...)...)
			if out != "403" {
				t.Errorf("curl %v: %s, want 403", args, out)
			}
		}
		if after, _ := gatewayCounts(t, receiver); after != fetches {
			t.Errorf("refused requests made the gateway resolve or fetch %d times", after-fetches)
		}
	})
}

// A node run as root has its plugins' capabilities dropped (the plugin
// sandbox): the receiver cannot take port 80 or 53 unless the system lets
// every program bind them, and its error says so.
func TestDNSResponderLowPortRefused(t *testing.T) {
	ns := dnsNetns(t, false)
	cfg := writeConfig(t, map[string]any{
		"roles":       []string{"receiver"},
		"gateway":     map[string]any{"listen": "127.0.0.1:80"},
		"role_config": map[string]any{"receiver": map[string]any{"dns_listen": "127.0.0.1:53"}},
	})
	d := startInNetns(t, ns, "receiver", append(append([]string{}, lowWork...), "--config", cfg)...)
	eventually(t, 30*time.Second, "the receiver says why port 80 is refused", func() error {
		if log := d.log.String(); !strings.Contains(log, "permission denied") || !strings.Contains(log, "CAP_NET_BIND_SERVICE") {
			return fmt.Errorf("not yet:\n%s", grepLog(log, "receiver"))
		}
		return nil
	})
	d.stop()
}

// testTool finds a program a test runs, or skips the test (fails it on CI,
// where `make test-deps` installs it from pkg).
func testTool(t *testing.T, name, pkg string) string {
	t.Helper()
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	msg := fmt.Sprintf("%s is not installed; `make test-deps` installs it (apt-get install %s)", name, pkg)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg + ": skipping")
	return ""
}

var dnsNetnsCount atomic.Int64

// dnsNetns makes a network namespace with loopback up and a resolv.conf
// that names 127.0.0.1 only; with lowPorts, the ports below 1024 are open to
// every user in it (the role's process has no capabilities: the plugin
// sandbox drops a root node's). Both go when the test ends, after its
// daemons.
func dnsNetns(t *testing.T, lowPorts bool) string {
	t.Helper()
	cannot := func(why string) {
		t.Helper()
		msg := "the DNS responder test needs a network namespace (run as root with iproute2): " + why
		if os.Getenv("CI") != "" {
			t.Fatal(msg + "; CI must run it, not skip it")
		}
		t.Skip(msg)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		cannot("the ip command is not installed")
	}
	ns := fmt.Sprintf("avn%ddns%d", os.Getpid(), dnsNetnsCount.Add(1))
	if out, err := natCmd("ip", "netns", "add", ns); err != nil {
		cannot(fmt.Sprintf("ip netns add: %v: %s", err, out))
	}
	etc := filepath.Join("/etc/netns", ns)
	t.Cleanup(func() {
		if out, err := natCmd("ip", "netns", "del", ns); err != nil {
			t.Errorf("delete namespace %s: %v: %s", ns, err, out)
		}
		if err := os.RemoveAll(etc); err != nil {
			t.Errorf("remove %s: %v", etc, err)
		}
		os.Remove(filepath.Dir(etc)) // /etc/netns, if nothing else uses it
	})
	if out, err := natCmd("ip", "-n", ns, "link", "set", "lo", "up"); err != nil {
		t.Fatalf("lo up in %s: %v: %s", ns, err, out)
	}
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver 127.0.0.1\noptions timeout:5 attempts:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !lowPorts {
		return ns
	}
	if err := inNetns(ns, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_unprivileged_port_start", []byte("0\n"), 0o644)
	}); err != nil {
		t.Fatalf("open the low ports in %s: %v", ns, err)
	}
	return ns
}

// startInNetns runs `avnode run` in namespace ns on loopback, with a repo
// named name; the CLI reaches it from outside through the repo's socket.
func startInNetns(t *testing.T, ns, name string, args ...string) *proc {
	t.Helper()
	repo := filepath.Join(t.TempDir(), name)
	full := append([]string{"netns", "exec", ns, avnodeBin, "run", "--repo", repo,
		"--listen", "/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/quic-v1", "--metrics.listen", ""}, args...)
	cmd := exec.Command("ip", full...)
	cmd.Env = cleanEnv()
	return launchDaemon(t, repo, cmd)
}

// runInNetns runs a program in namespace ns (60 s at most) and returns its
// standard output; a failure to run it, or its exit status, fails the test.
func runInNetns(t *testing.T, ns string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s in %s: %v\n%s%s", strings.Join(args, " "), ns, err, out.String(), errb.String())
	}
	return out.String()
}
