package bench

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/marcopolo/simnet"
	"github.com/quic-go/quic-go"
	"go.uber.org/fx"
)

// wan is a simulated wide-area network (go-libp2p's simnet: QUIC over
// in-process packet links), so that a thousand nodes fit in one process
// with the latency of the Internet and no socket. Run inside a
// testing/synctest bubble, its clocks are virtual: a figure measured on it
// is what the protocols cost in round trips and bandwidth, with none of
// this machine's CPU contention in it.
//
// The latency model, per packet one way: each machine's last mile (5–10 ms,
// fixed per machine, drawn at random), the other machine's, and the
// backbone between their regions. Three regions, with one-way backbone
// delays near public inter-region round trips halved (Europe–North
// America 20 ms, North America–Asia 30 ms, Europe–Asia 40 ms; 0 within a
// region): round trips then span 20 ms (neighbours on fast lines) to 120
// ms (Europe to Asia on slow ones), the range the issue asks for, as seen
// between home and cloud machines. Links are home-like: 100 Mbit/s down,
// 20 Mbit/s up, so that several sources can beat one.
type wan struct {
	sim *simnet.Simnet
	mu  sync.Mutex
	rng *rand.Rand
	// machines by IP: a restarted member keeps its machine (and its
	// latency), with a new port, as a restarted daemon would.
	machines map[string]machineLink
	count    int
	// endpointMu serialises simnet's NewEndpoint, which is not safe for
	// concurrent use (members start in parallel). Not mu: the router may
	// hold its own lock while it asks latency for mu.
	endpointMu sync.Mutex
}

type machineLink struct {
	region   int
	lastMile time.Duration
}

// backbone is the one-way delay between regions (Europe, North America, Asia).
var backbone = [3][3]time.Duration{
	{0, 20 * time.Millisecond, 40 * time.Millisecond},
	{20 * time.Millisecond, 0, 30 * time.Millisecond},
	{40 * time.Millisecond, 30 * time.Millisecond, 0},
}

var homeLink = simnet.NodeBiDiLinkSettings{
	Downlink: simnet.LinkSettings{BitsPerSecond: 100_000_000},
	Uplink:   simnet.LinkSettings{BitsPerSecond: 20_000_000},
}

func newWAN(seed uint64) *wan {
	w := &wan{rng: rand.New(rand.NewPCG(seed, 2)), machines: map[string]machineLink{}}
	w.sim = &simnet.Simnet{LatencyFunc: w.latency}
	return w
}

func (w *wan) start() { w.sim.Start() }
func (w *wan) close() { w.sim.Close() }

func (w *wan) newEndpoint(addr *net.UDPAddr) net.PacketConn {
	w.endpointMu.Lock()
	defer w.endpointMu.Unlock()
	return w.sim.NewEndpoint(addr, homeLink)
}

// latency is one way, from the packet's machine to its destination's.
func (w *wan) latency(p *simnet.Packet) time.Duration {
	w.mu.Lock()
	from, to := w.machines[ipOf(p.From)], w.machines[ipOf(p.To)]
	w.mu.Unlock()
	return from.lastMile + backbone[from.region][to.region] + to.lastMile
}

func ipOf(a net.Addr) string {
	if u, ok := a.(*net.UDPAddr); ok {
		return u.IP.String()
	}
	return a.String()
}

// newMachine places a machine: each its own /16, so that the DHT's
// peer-diversity filter sees as many networks as machines, as on the
// Internet at this size.
func (w *wan) newMachine() net.IP {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.count
	w.count++
	ip := net.IPv4(byte(20+n/250), byte(n%250), 0, 1).To4()
	w.machines[ip.String()] = machineLink{
		region:   n % len(backbone),
		lastMile: 5*time.Millisecond + time.Duration(w.rng.Int64N(int64(5*time.Millisecond))),
	}
	return ip
}

// wanPort is a member's place on the network: its machine, and the port of
// its current run.
type wanPort struct {
	net  *wan
	ip   net.IP
	port int
	conn *mortalConn // the current run's; nil before the first
}

// newPort places a new member on the network; nil on a nil network
// (loopback).
func (w *wan) newPort() *wanPort {
	if w == nil {
		return nil
	}
	return &wanPort{net: w, ip: w.newMachine(), port: 4000}
}

// next is the listen address and libp2p options of a new run: QUIC over
// the simulated link, on a port the last run did not use.
func (p *wanPort) next() (listen string, opts []libp2p.Option) {
	p.port++
	listen = fmt.Sprintf("/ip4/%s/udp/%d/quic-v1", p.ip, p.port)
	src := fixedSource(p.ip)
	reuse := []quicreuse.Option{
		quicreuse.OverrideSourceIPSelector(func() (quicreuse.SourceIPSelector, error) { return src, nil }),
		quicreuse.OverrideListenUDP(func(_ string, addr *net.UDPAddr) (net.PacketConn, error) {
			c := &mortalConn{PacketConn: p.net.newEndpoint(addr)}
			p.conn = c
			return c, nil
		}),
	}
	return listen, []libp2p.Option{
		libp2p.QUICReuse(newClosingConnManager, reuse...),
		// Observed addresses are the listen addresses here; their discovery
		// waits on the wall clock, which a synctest bubble never advances.
		libp2p.DisableIdentifyAddressDiscovery(),
	}
}

// kill silences the current run at once: nothing it sends arrives, not
// even the QUIC close its host sends next. Its peers learn of the death
// only by their own timeouts, as after a power cut.
func (p *wanPort) kill() {
	if p.conn != nil {
		p.conn.dead.Store(true)
	}
}

// newClosingConnManager is quicreuse's connection manager, closed with the
// host: given as a constructor, libp2p leaves closing it to its maker.
func newClosingConnManager(l fx.Lifecycle, reset quic.StatelessResetKey, token quic.TokenGeneratorKey, opts ...quicreuse.Option) (*quicreuse.ConnManager, error) {
	cm, err := quicreuse.NewConnManager(reset, token, opts...)
	if err != nil {
		return nil, err
	}
	l.Append(fx.StopHook(cm.Close))
	return cm, nil
}

// fixedSource answers quicreuse's question of which local address reaches
// a destination: the machine's only one.
type fixedSource net.IP

func (s fixedSource) PreferredSourceIPForDestination(*net.UDPAddr) (net.IP, error) {
	return net.IP(s), nil
}

// mortalConn is a simulated UDP socket that can die without a word.
type mortalConn struct {
	net.PacketConn
	dead atomic.Bool
}

func (c *mortalConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.dead.Load() {
		return len(b), nil // lost on the way, as a dead machine's packets are
	}
	return c.PacketConn.WriteTo(b, addr)
}
