package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/avnode/avnode/core/api"
)

// The public segment of the NAT topology. 11.0.0.0/8 is a routable range to
// go-multiaddr (manet.IsPublicAddr), which libp2p needs to build relay
// addresses and to hole punch; RFC 1918, CGNAT, TEST-NET and benchmark ranges
// are all private to it. It never leaves the test's namespaces: no veth or
// route reaches the machine's own network.
const (
	natRelayIP = "11.0.0.1"
	natNAT1IP  = "11.0.0.2"
	natNAT2IP  = "11.0.0.3"
)

// natPort is where every node listens, on TCP and QUIC, inside its own
// namespace. One fixed port keeps the NATs' port-preserving mappings simple
// to read in a failure dump.
const natPort = "4001"

// TestNATTraversal proves that two nodes behind separate NATs reach each
// other: first through a circuit relay, then directly after hole punching
// (DCUtR), across real Linux network namespaces joined by veth links, with
// iptables MASQUERADE routers. Each case builds its own topology:
//
//	                namespace "world": bridge br0 (11.0.0.0/24)
//	      +------------------------+-------------------------+
//	      |                        |                         |
//	R 11.0.0.1            NAT1 wan 11.0.0.2          NAT2 wan 11.0.0.3
//	relay + bootstrap     MASQUERADE                 MASQUERADE
//	reachability public   lan 192.168.1.1            lan 192.168.2.1
//	                           |                         |
//	                      A 192.168.1.2              B 192.168.2.2
//	                      private, publisher         private, reader
//
// Each NAT masquerades its LAN behind its WAN address, keeping the source
// port when it is free, and like a home router silently drops unsolicited
// packets to its WAN address. A and B are private, DHT clients (dht.mode
// auto), bootstrap from R and reserve a slot on it. A claims a name and
// publishes a site on it; B resolves the name and fetches the site.
//
//   - punchable: A and B are told they are private and given R as a relay
//     (--nat.relays). R opens a circuit between B and A, then hole punching
//     gives B a direct connection to A's NAT address, over which a second
//     fetch runs; the hole-punch metrics count the success.
//   - relay-only: A and B are told nothing: AutoNAT, through R's dial-back,
//     finds them private, and they find R among the relays announced in the
//     DHT. NAT2 also drops every inbound packet on its WAN that is not from
//     R, so no punch can pass; the fetch runs through R within its limits:
//     R cuts each relayed connection after 2 MiB, and the fetch goes on over
//     new circuits (R's metrics count the bytes it carried). B's connections
//     to A stay relayed, and the hole-punch metrics count attempts and no
//     success.
//
// It needs root (network namespaces, iptables). Where `ip netns add` fails it
// skips, saying so; with $CI set it fails instead, so CI never skips it.
// iptables missing is a failure: install it (apt-get install iptables).
func TestNATTraversal(t *testing.T) {
	ipt := natPreflight(t)
	t.Run("punchable", func(t *testing.T) {
		n := startNATNet(t, ipt, "p", natCase{told: true})
		pub, site := n.publish(t)
		out := n.fetch(t, pub)
		sameTree(t, site, out)
		if st := n.relayStatus(t); st.Circuits < 1 {
			t.Fatalf("the relay opened no circuit, so B did not reach A through it first: %+v", st)
		}
		// Hole punching upgrades the relayed connection: B holds a direct
		// one to A's address on NAT1 (A's own address is not routable).
		var direct string
		eventually(t, 60*time.Second, "direct connection from B to A", func() error {
			relayed, dir, err := n.connsToA(t, n.b)
			if err != nil {
				return err
			}
			if len(dir) == 0 {
				// Hole punching needs each node's public address, which it
				// learns from how R sees it: its connection to R must come
				// from its listening port (port reuse), or there is nothing
				// to punch with.
				return fmt.Errorf("B's connections to A are all relayed: %v; R sees A at %v and B at %v (both listen on port %s)",
					relayed, n.addrsSeenBy(t, n.relay, n.a), n.addrsSeenBy(t, n.relay, n.b), natPort)
			}
			direct = dir[0]
			return nil
		})
		if !strings.HasPrefix(direct, "/ip4/"+natNAT1IP+"/") {
			t.Fatalf("B's direct connection to A is on %s, want A's NAT address %s", direct, natNAT1IP)
		}
		t.Logf("direct connection from B to A: %s", direct)
		// The site again, from scratch, now that the direct connection exists:
		// new streams prefer it to the relayed one.
		mustCLI(t, n.b.repo, "repo", "gc")
		again := n.fetch(t, pub)
		sameTree(t, site, again)
		if _, dir, _ := n.connsToA(t, n.b); len(dir) == 0 {
			t.Fatalf("B lost its direct connection to A during the second fetch")
		}
		punches := n.holePunches(t)
		if punches["success"] < 1 {
			t.Fatalf("the hole-punch metrics of A and B count no success: %v", punches)
		}
		t.Logf("hole punches counted by A and B: %v", punches)
	})
	t.Run("relay-only", func(t *testing.T) {
		n := startNATNet(t, ipt, "s", natCase{strict: true})
		pub, site := n.publish(t)
		out := n.fetch(t, pub)
		sameTree(t, site, out)
		// R cuts a relayed connection after 2 MiB each way: the 5 MB site
		// (five blocks of up to 1 MiB) takes several circuits.
		st := n.relayStatus(t)
		if st.Circuits < 3 || st.Refused != 0 {
			t.Fatalf("the relay did not carry the fetch over several circuits: %+v", st)
		}
		if carried := metricSum(n.scrape(t, n.relay), "libp2p_relaysvc_data_transferred_bytes_total", ""); carried < 5_000_000 {
			t.Fatalf("R's metrics count %.0f bytes relayed, less than the 5 MB site B fetched through it", carried)
		} else {
			t.Logf("R relayed %.1f MB", carried/1e6)
		}
		onlyRelayed := func(when string, mustHave bool) {
			relayed, direct, err := n.connsToA(t, n.b)
			if err != nil {
				t.Fatal(err)
			}
			if len(direct) > 0 {
				t.Fatalf("%s: B has a direct connection to A through a NAT that drops every inbound packet but the relay's: %v", when, direct)
			}
			if mustHave && len(relayed) == 0 {
				t.Fatalf("%s: B has no connection to A", when)
			}
		}
		onlyRelayed("after the fetch", true)
		// Hole punching retries for a while: give it the time it would take.
		time.Sleep(10 * time.Second)
		onlyRelayed("10 s after the fetch", false)
		punches := n.holePunches(t)
		if punches["success"] != 0 || len(punches) == 0 {
			t.Fatalf("the hole-punch metrics of A and B should count attempts and no success: %v", punches)
		}
		t.Logf("hole punches counted by A and B: %v", punches)
	})
}

// natPreflight skips where network namespaces cannot be created, and
// returns the iptables command that can add NAT rules inside one.
func natPreflight(t *testing.T) string {
	t.Helper()
	cannot := func(why string) {
		t.Helper()
		msg := "NAT traversal test needs network namespaces (run as root with iproute2): " + why
		if os.Getenv("CI") != "" {
			t.Fatal(msg + "; CI must run it, not skip it")
		}
		t.Skip(msg)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		cannot("the ip command is not installed")
	}
	probe := fmt.Sprintf("avn%dprobe", os.Getpid())
	if out, err := natCmd("ip", "netns", "add", probe); err != nil {
		cannot(fmt.Sprintf("ip netns add: %v: %s", err, out))
	}
	defer natCmd("ip", "netns", "del", probe)
	if out, err := natCmd("ip", "-n", probe, "link", "set", "lo", "up"); err != nil {
		t.Fatalf("lo up in a namespace: %v: %s", err, out)
	}
	var tried []string
	for _, ipt := range []string{"iptables", "iptables-legacy", "iptables-nft"} {
		if _, err := exec.LookPath(ipt); err != nil {
			continue
		}
		out, err := natCmd("ip", "netns", "exec", probe, ipt, "-t", "nat", "-A", "POSTROUTING", "-o", "lo", "-j", "MASQUERADE")
		if err == nil {
			return ipt
		}
		tried = append(tried, fmt.Sprintf("%s: %v: %s", ipt, err, out))
	}
	if len(tried) == 0 {
		t.Fatal("NAT traversal test: iptables is not installed; install it (apt-get install iptables)")
	}
	t.Fatalf("NAT traversal test: no iptables can add a MASQUERADE rule in a network namespace:\n%s", strings.Join(tried, "\n"))
	return ""
}

// natCmd runs a command for 20 s at most and returns its combined output.
func natCmd(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// natNet is one NAT topology and the three nodes running in it.
type natNet struct {
	ipt                                  string
	world, relayNS, nat1, aNS, nat2, bNS string
	relay, a, b                          *proc
	relayAddr                            string
	procs                                map[string]*proc
	nsOf                                 map[*proc]string // the namespace each daemon runs in
}

// natCase is what differs between the two cases.
type natCase struct {
	strict bool // NAT2 drops all inbound traffic but R's
	// told: A and B are told they are private and given R as a relay. Else
	// AutoNAT finds out that they are private and the DHT gives them R.
	told bool
}

// startNATNet builds the namespaces, starts R, then A and B, and waits until
// A and B hold relay addresses and can hole punch. When the test ends it
// dumps what explains a failure, kills the daemons, then deletes the
// namespaces.
func startNATNet(t *testing.T, ipt, tag string, c natCase) *natNet {
	t.Helper()
	prefix := fmt.Sprintf("avn%d%s", os.Getpid(), tag)
	n := &natNet{ipt: ipt, world: prefix + "w", relayNS: prefix + "r", nat1: prefix + "n1", aNS: prefix + "a",
		nat2: prefix + "n2", bNS: prefix + "b", procs: map[string]*proc{}, nsOf: map[*proc]string{}}
	n.build(t, c.strict)

	// Registered after build's: runs first, while daemons and namespaces live.
	t.Cleanup(func() {
		if t.Failed() {
			n.dump(t)
		}
		for _, d := range n.procs {
			d.kill()
		}
	})
	args := func(extra ...string) []string {
		common := append(append([]string{}, lowWork...),
			"--listen", "/ip4/0.0.0.0/tcp/"+natPort+",/ip4/0.0.0.0/udp/"+natPort+"/quic-v1",
			// Three nodes: the only peer every node reaches before a punch is
			// the relay, so one witness certifies a claim and one holder
			// answers a resolve. Every node of the network agrees on both.
			"--names.claim_quorum=1", "--names.resolve_quorum=1")
		return append(common, extra...)
	}
	relayCfg := writeConfig(t, map[string]any{"roles": []string{"relay"}, "role_config": map[string]any{
		"relay": map[string]any{"max_reservations": 16, "max_circuits": 16, "circuit_duration": "2m", "circuit_bytes_mb": 2}}})
	n.relay = n.start(t, "R", n.relayNS, args("--nat.reachability", "public", "--config", relayCfg)...)
	n.relayAddr = "/ip4/" + natRelayIP + "/tcp/" + natPort + "/p2p/" + n.relay.peerID
	// The relay service must be up before A and B look for it: a relay
	// candidate without it is backed off for a minute.
	eventually(t, 30*time.Second, "relay service running on R", func() error {
		st, err := n.tryRelayStatus(t)
		if err != nil {
			return err
		}
		if st.Running != nil && !*st.Running {
			return fmt.Errorf("relay not running: %+v", st)
		}
		return nil
	})
	// Behind NAT a node is a DHT client (auto: a server only when publicly
	// reachable): a private DHT server is reachable through relays only,
	// and every DHT query sent to it waits for a direct connection first.
	// Debug logs hold libp2p's hole-punching steps, for the failure dump.
	private := args("--bootstrap", n.relayAddr, "--dht.mode=auto", "--log-level", "debug")
	if c.told {
		private = append(private, "--nat.reachability", "private", "--nat.relays", n.relayAddr)
	}
	n.a = n.start(t, "A", n.aNS, private...)
	n.b = n.start(t, "B", n.bNS, private...)
	started := time.Now()
	for _, d := range []*proc{n.a, n.b} {
		eventually(t, 60*time.Second, "relay address on "+n.name(d), func() error {
			var id struct {
				Reachability string   `json:"reachability"`
				RelayAddrs   []string `json:"relay_addrs"`
			}
			if err := tryJSON(t, d.repo, &id, "id"); err != nil {
				return err
			}
			if id.Reachability != "private" {
				return fmt.Errorf("reachability %q, want private", id.Reachability)
			}
			for _, a := range id.RelayAddrs {
				if strings.Contains(a, "/p2p/"+n.relay.peerID+"/p2p-circuit") {
					return nil
				}
			}
			return fmt.Errorf("no relay address through R: %v", id.RelayAddrs)
		})
	}
	// A node's hole punching starts once it knows its public address, which
	// R tells it on connecting; libp2p checks for one at 0.25, 0.75, 1.75
	// and 3.75 s after start. DCUtR runs when a relayed connection opens, so
	// one that opens earlier (B resolving A at once) stays relayed for good.
	time.Sleep(time.Until(started.Add(4 * time.Second)))
	return n
}

// build makes the namespaces, links, addresses, routes and NAT rules.
func (n *natNet) build(t *testing.T, strict bool) {
	t.Helper()
	var made []string
	t.Cleanup(func() {
		for i := len(made) - 1; i >= 0; i-- {
			if out, err := natCmd("ip", "netns", "del", made[i]); err != nil {
				t.Errorf("delete namespace %s: %v: %s", made[i], err, out)
			}
		}
	})
	run := func(args ...string) {
		t.Helper()
		if out, err := natCmd(args[0], args[1:]...); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	for _, ns := range []string{n.world, n.relayNS, n.nat1, n.aNS, n.nat2, n.bNS} {
		run("ip", "netns", "add", ns)
		made = append(made, ns)
		run("ip", "-n", ns, "link", "set", "lo", "up")
	}
	run("ip", "-n", n.world, "link", "add", "br0", "type", "bridge")
	run("ip", "-n", n.world, "link", "set", "br0", "up")
	// wan links a namespace to the world bridge: the veth's end in ns is "wan",
	// its end on the bridge is port.
	wan := func(ns, port, ip string) {
		run("ip", "-n", ns, "link", "add", "wan", "type", "veth", "peer", "name", port, "netns", n.world)
		run("ip", "-n", n.world, "link", "set", port, "master", "br0", "up")
		run("ip", "-n", ns, "addr", "add", ip+"/24", "dev", "wan")
		run("ip", "-n", ns, "link", "set", "wan", "up")
	}
	// router makes nat a masquerading router for host on subnet 192.168.<net>.0/24.
	router := func(nat, host string, net int) {
		lan := fmt.Sprintf("192.168.%d.", net)
		run("ip", "-n", nat, "link", "add", "lan", "type", "veth", "peer", "name", "eth0", "netns", host)
		run("ip", "-n", nat, "addr", "add", lan+"1/24", "dev", "lan")
		run("ip", "-n", nat, "link", "set", "lan", "up")
		run("ip", "-n", host, "addr", "add", lan+"2/24", "dev", "eth0")
		run("ip", "-n", host, "link", "set", "eth0", "up")
		run("ip", "-n", host, "route", "add", "default", "via", lan+"1")
		if err := inNetns(nat, func() error { return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644) }); err != nil {
			t.Fatalf("ip_forward in %s: %v", nat, err)
		}
		run("ip", "netns", "exec", nat, n.ipt, "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE")
		// Like a home router, the NAT ignores unsolicited packets to its
		// own address instead of answering them: a TCP reset for a SYN that
		// arrives before the local peer's own SYN has opened the mapping
		// would abort the simultaneous open hole punching relies on.
		run("ip", "netns", "exec", nat, n.ipt, "-A", "INPUT", "-i", "wan", "-j", "DROP")
	}
	wan(n.relayNS, "r", natRelayIP)
	wan(n.nat1, "n1", natNAT1IP)
	wan(n.nat2, "n2", natNAT2IP)
	router(n.nat1, n.aNS, 1)
	router(n.nat2, n.bNS, 2)
	if strict {
		// Nothing but R gets in, not even replies within a mapping: no
		// punch can pass. (INPUT on the WAN already drops everything.)
		run("ip", "netns", "exec", n.nat2, n.ipt, "-A", "FORWARD", "-i", "wan", "!", "-s", natRelayIP, "-j", "DROP")
	}
	// The NATs work: A and B reach R, seen from their NAT's address, and
	// R reaches neither A's private address nor anything behind NAT1's.
	for host, natIP := range map[string]string{n.aNS: natNAT1IP, n.bNS: natNAT2IP} {
		if err := natProbe(n.relayNS, natRelayIP, host, natRelayIP, natIP); err != nil {
			t.Fatalf("%s to R: %v", host, err)
		}
	}
	for _, target := range []string{"192.168.1.2", natNAT1IP} {
		if err := natProbe(n.aNS, "0.0.0.0", n.relayNS, target, ""); err == nil {
			t.Fatalf("R reaches A at %s: the NAT topology leaks", target)
		}
	}
}

// natProbe listens on TCP at listenIP in namespace lns, dials it as dialIP
// from namespace dns, and checks that the connection arrives from wantFrom
// (any address if empty).
func natProbe(lns, listenIP, dns, dialIP, wantFrom string) error {
	var l net.Listener
	if err := inNetns(lns, func() (err error) {
		l, err = net.Listen("tcp4", net.JoinHostPort(listenIP, "0"))
		return err
	}); err != nil {
		return fmt.Errorf("listen in %s: %w", lns, err)
	}
	defer l.Close()
	accepted := make(chan net.Addr, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			accepted <- c.RemoteAddr()
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	if err := inNetns(dns, func() error {
		c, err := net.DialTimeout("tcp4", net.JoinHostPort(dialIP, port), 2*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		return err
	}
	select {
	case from := <-accepted:
		if ip, _, _ := net.SplitHostPort(from.String()); wantFrom != "" && ip != wantFrom {
			return fmt.Errorf("connection arrived from %s, want %s", ip, wantFrom)
		}
		return nil
	case <-time.After(2 * time.Second):
		return errors.New("connected, but the listener saw nothing")
	}
}

// inNetns runs f on an OS thread moved into network namespace ns; sockets
// f creates belong to ns. The thread then goes back to its own namespace
// and to the runtime. It must not end instead: a daemon started from that
// thread earlier would get its parent-death SIGKILL (Pdeathsig follows the
// thread, not the process). Only if going back fails does it end with f.
func inNetns(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer own.Close()
		target, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		err = f()
		if unix.Setns(int(own.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// start runs a daemon inside namespace ns (`ip netns exec` execs it, so the
// process killed at the end is the daemon itself) and waits for its ready
// line. startNATNet's cleanup kills it.
func (n *natNet) start(t *testing.T, name, ns string, args ...string) *proc {
	t.Helper()
	repo := filepath.Join(t.TempDir(), name)
	full := append([]string{"netns", "exec", ns, avnodeBin, "run", "--repo", repo, "--metrics.listen", natMetrics}, args...)
	cmd := exec.Command("ip", full...)
	cmd.Env = cleanEnv()
	d := launchDaemon(t, repo, cmd)
	n.procs[name] = d
	n.nsOf[d] = ns
	return d
}

// natMetrics is where each daemon serves its metrics, on the loopback of
// its own namespace.
const natMetrics = "127.0.0.1:9400"

// scrape reads d's metrics page. The connection is made inside d's
// namespace, then read from any thread: a socket stays in the namespace
// it was made in.
func (n *natNet) scrape(t testing.TB, d *proc) string {
	t.Helper()
	dialInNetns := func(ctx context.Context, network, addr string) (conn net.Conn, err error) {
		err = inNetns(n.nsOf[d], func() (err error) {
			conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dialInNetns, DisableKeepAlives: true}}
	return scrapeMetricsWith(t, client, natMetrics)
}

// holePunches sums libp2p's hole-punch outcomes on A and B, by outcome.
func (n *natNet) holePunches(t testing.TB) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, d := range []*proc{n.a, n.b} {
		for _, outcome := range []string{"success", "failed", "cancelled", "no_suitable_address"} {
			if v := metricSum(n.scrape(t, d), "libp2p_holepunch_outcomes_total", `outcome="`+outcome+`"`); v > 0 {
				out[outcome] += v
			}
		}
	}
	return out
}

func (n *natNet) name(d *proc) string {
	for name, p := range n.procs {
		if p == d {
			return name
		}
	}
	return d.repo
}

// publish claims nat.avtr on A, points it at A and publishes a site on it.
func (n *natNet) publish(t *testing.T) (api.PublishResult, string) {
	t.Helper()
	mustCLI(t, n.a.repo, "key", "gen", "k")
	eventually(t, 30*time.Second, "claim nat.avtr on A", func() error {
		r := cli(t, n.a.repo, nil, "name", "claim", "nat.avtr", "--key", "k")
		if r.code != 0 {
			return errors.New(r.stderr)
		}
		return nil
	})
	mustCLI(t, n.a.repo, "record", "set", "nat.avtr", "HOST", n.a.peerID)
	site := writeSite(t)
	var pub api.PublishResult
	cliJSON(t, n.a.repo, &pub, "publish", site, "--name", "nat.avtr")
	if pub.Root == "" {
		t.Fatalf("publish: %+v", pub)
	}
	return pub, site
}

// fetch resolves nat.avtr on B and gets the site from A into a new folder.
func (n *natNet) fetch(t *testing.T, pub api.PublishResult) string {
	t.Helper()
	eventually(t, 30*time.Second, "B resolves nat.avtr to A", func() error {
		var res api.Resolution
		if err := tryJSON(t, n.b.repo, &res, "resolve", "nat.avtr"); err != nil {
			return err
		}
		if len(res.Hosts) == 0 || res.Hosts[0].PeerID != n.a.peerID {
			return fmt.Errorf("hosts %+v, want A %s", res.Hosts, n.a.peerID)
		}
		// A's own addresses are private: the HOST entry is reachable
		// through the relay address A publishes.
		through := "/p2p/" + n.relay.peerID + "/p2p-circuit"
		if !slices.ContainsFunc(res.Hosts[0].Addrs, func(a string) bool { return strings.HasSuffix(a, through) }) {
			return fmt.Errorf("A's addresses in the resolution %v lack one through R", res.Hosts[0].Addrs)
		}
		return nil
	})
	out := filepath.Join(t.TempDir(), "copy")
	r := cli(t, n.b.repo, nil, "get", "nat.avtr", "-o", out, "--json")
	if r.code != 0 {
		t.Fatalf("B gets nat.avtr: exit %d\n%s", r.code, r.stderr)
	}
	var got api.GetResult
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("get --json: %v\n%s", err, r.stdout)
	}
	if got.Root != pub.Root || got.Stats.Sources[n.a.peerID] == 0 {
		t.Fatalf("B did not fetch root %s from A: %+v", pub.Root, got)
	}
	return out
}

// natRelayStatus is what `roles call relay status` prints.
type natRelayStatus struct {
	Running      *bool `json:"running"`
	Reservations int64 `json:"reservations"`
	Circuits     int64 `json:"circuits"`
	Refused      int64 `json:"refused"`
}

func (n *natNet) tryRelayStatus(t testing.TB) (natRelayStatus, error) {
	var st natRelayStatus
	err := tryJSON(t, n.relay.repo, &st, "roles", "call", "relay", "status")
	return st, err
}

func (n *natNet) relayStatus(t *testing.T) natRelayStatus {
	t.Helper()
	st, err := n.tryRelayStatus(t)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// addrsSeenBy lists the remote addresses of d's connections to p.
func (n *natNet) addrsSeenBy(t testing.TB, d, p *proc) []string {
	var peers []struct {
		PeerID string   `json:"peer_id"`
		Addrs  []string `json:"addrs"`
	}
	if err := tryJSON(t, d.repo, &peers, "peers"); err != nil {
		return []string{err.Error()}
	}
	for _, q := range peers {
		if q.PeerID == p.peerID {
			return q.Addrs
		}
	}
	return nil
}

// connsToA splits the remote addresses of d's open connections to A into
// relayed (/p2p-circuit) and direct ones.
func (n *natNet) connsToA(t testing.TB, d *proc) (relayed, direct []string, err error) {
	var peers []struct {
		PeerID string   `json:"peer_id"`
		Addrs  []string `json:"addrs"`
	}
	if err := tryJSON(t, d.repo, &peers, "peers"); err != nil {
		return nil, nil, err
	}
	for _, p := range peers {
		if p.PeerID != n.a.peerID {
			continue
		}
		for _, a := range p.Addrs {
			if strings.Contains(a, "/p2p-circuit") {
				relayed = append(relayed, a)
			} else {
				direct = append(direct, a)
			}
		}
	}
	return relayed, direct, nil
}

// dump logs what explains a failure: each daemon's log lines about NAT,
// relays and hole punching, and the NATs' rule counters.
func (n *natNet) dump(t *testing.T) {
	for _, name := range []string{"R", "A", "B"} {
		d := n.procs[name]
		if d == nil {
			continue
		}
		var keep []string
		for _, l := range strings.Split(grepLog(d.log.String(), "level=WARN", "level=ERROR", "p2p-holepunch", "autorelay",
			"logger=relay", "p2p-circuit", "open stream", "observedaddrs", "reachability", "relay service", "role", "panic"), "\n") {
			if !strings.Contains(l, "logger=p2p-config") && !strings.Contains(l, "[limiter]") {
				keep = append(keep, l)
			}
		}
		lines := strings.Join(keep[max(0, len(keep)-150):], "\n")
		t.Logf("--- %s (%s) log, filtered:\n%s", name, d.peerID, lines)
		if r := cli(t, d.repo, nil, "peers"); r.code == 0 {
			t.Logf("--- %s peers:\n%s", name, r.stdout)
		}
	}
	for _, ns := range []string{n.nat1, n.nat2} {
		nat, _ := natCmd("ip", "netns", "exec", ns, n.ipt, "-t", "nat", "-L", "-v", "-n")
		filter, _ := natCmd("ip", "netns", "exec", ns, n.ipt, "-L", "-v", "-n")
		conntrack, _ := natCmd("ip", "netns", "exec", ns, "cat", "/proc/net/nf_conntrack")
		t.Logf("--- %s iptables:\n%s\n%s\n--- %s connections:\n%s", ns, nat, filter, ns, conntrack)
	}
}

// tryJSON runs a read command with --json and decodes its output, reporting
// a failure instead of ending the test (for use inside eventually).
func tryJSON(t testing.TB, repo string, out any, args ...string) error {
	t.Helper()
	r := cli(t, repo, nil, append(args, "--json")...)
	if r.code != 0 {
		return fmt.Errorf("avnode %v: exit %d: %s", args, r.code, strings.TrimSpace(r.stderr))
	}
	if err := json.Unmarshal([]byte(r.stdout), out); err != nil {
		return fmt.Errorf("avnode %v --json: %v: %s", args, err, r.stdout)
	}
	return nil
}
