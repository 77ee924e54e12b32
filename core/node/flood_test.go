package node

// The reliability matrix's resources line: one peer opening a thousand
// streams or connections does not stop the node answering others. The
// victim is a node built by New with the default config (libp2p's default
// limits scaled to this machine, the connection manager); the attacker holds
// everything it opened while an honest peer asks for a ping and a DHT answer.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/sec"
	"github.com/libp2p/go-libp2p/core/transport"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/upgrader"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/libp2p/go-msgio"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"google.golang.org/protobuf/proto"

	"github.com/avnode/avnode/core/config"
)

// floodCount is how many streams or connections the attacker opens.
const floodCount = 1000

// floodBound bounds each wait so that the tests stop by themselves; it is
// not a performance target.
const floodBound = 10 * time.Second

// floodVictim is a node as the daemon builds it, listening on the given
// addresses, with AutoNAT and hole punching off (no dial-backs on loopback).
func floodVictim(t *testing.T, listen ...string) *Node {
	t.Helper()
	return testNode(t, func(cfg *config.Config) {
		cfg.Listen = listen
		cfg.NAT.AutoNAT, cfg.NAT.HolePunching = false, false
		cfg.NAT.Reachability = "public"
	})
}

// floodHost is a plain libp2p host that dials out over TCP only. The
// attacker passes a null resource manager so that its own limits do not
// hold it back; the honest peer keeps libp2p's defaults (rm nil).
func floodHost(t *testing.T, rm network.ResourceManager) host.Host {
	t.Helper()
	opts := []libp2p.Option{libp2p.NoListenAddrs, libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DisableRelay(), libp2p.DisableMetrics()}
	if rm != nil {
		opts = append(opts, libp2p.ResourceManager(rm))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// rawTransport dials libp2p connections (Noise, yamux) under one identity
// without a swarm, which would reuse its first connection to a peer.
// rawAttacker is an identity with a bare TCP transport to dial with it.
func rawAttacker(t *testing.T) (peer.ID, *tcp.TcpTransport) {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return id, rawTransport(t, key)
}

func rawTransport(t *testing.T, key crypto.PrivKey) *tcp.TcpTransport {
	t.Helper()
	sn, err := noise.New(noise.ID, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	up, err := upgrader.New([]sec.SecureTransport{sn}, []upgrader.StreamMuxer{{ID: yamux.ID, Muxer: yamux.DefaultTransport}},
		nil, &network.NullResourceManager{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := tcp.NewTCPTransport(up, &network.NullResourceManager{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func kadProtocol(n *Node) protocol.ID { return protocolID(n.cfg.DHT.ProtocolPrefix) + "/kad/1.0.0" }

// askFindNode sends a DHT FIND_NODE for target on s and checks that the
// answer names it: the victim knows its own addresses.
func askFindNode(s network.Stream, target peer.ID, deadline time.Time) error {
	_ = s.SetDeadline(deadline)
	b, err := proto.Marshal(pb.NewMessage(pb.Message_FIND_NODE, []byte(target), 0))
	if err != nil {
		return err
	}
	if _, err := s.Write(append(binary.AppendUvarint(nil, uint64(len(b))), b...)); err != nil {
		return err
	}
	msg, err := msgio.NewVarintReaderSize(s, network.MessageSizeMax).ReadMsg()
	if err != nil {
		return err
	}
	var resp pb.Message
	if err := proto.Unmarshal(msg, &resp); err != nil {
		return err
	}
	for _, p := range resp.CloserPeers {
		if peer.ID(p.Id) == target && len(p.Addrs) > 0 {
			return nil
		}
	}
	return fmt.Errorf("FIND_NODE answer does not name %s: %d peers", target, len(resp.CloserPeers))
}

// askPing sends one ping payload on s and checks the echo.
func askPing(s network.Stream, _ peer.ID, deadline time.Time) error {
	_ = s.SetDeadline(deadline)
	out, in := make([]byte, ping.PingSize), make([]byte, ping.PingSize)
	_, _ = rand.Read(out)
	if _, err := s.Write(out); err != nil {
		return err
	}
	if _, err := io.ReadFull(s, in); err != nil {
		return err
	}
	if string(in) != string(out) {
		return errors.New("ping echo differs")
	}
	return nil
}

// scopes is what the victim's resource manager holds, and its limits.
type scopes struct {
	peer, transient                      network.ScopeStat
	peerStreamsIn, peerConnsIn           int // limits of the attacker's peer scope
	transientStreamsIn, transientConnsIn int // limits of the transient scope
}

func victimScopes(n *Node, p peer.ID) scopes {
	var sc scopes
	rm := n.Host.Network().ResourceManager()
	if p != "" {
		_ = rm.ViewPeer(p, func(s network.PeerScope) error {
			sc.peer = s.Stat()
			if l, ok := s.(rcmgr.ResourceScopeLimiter); ok {
				sc.peerStreamsIn = l.Limit().GetStreamLimit(network.DirInbound)
				sc.peerConnsIn = l.Limit().GetConnLimit(network.DirInbound)
			}
			return nil
		})
	}
	_ = rm.ViewTransient(func(s network.ResourceScope) error {
		sc.transient = s.Stat()
		if l, ok := s.(rcmgr.ResourceScopeLimiter); ok {
			sc.transientStreamsIn = l.Limit().GetStreamLimit(network.DirInbound)
			sc.transientConnsIn = l.Limit().GetConnLimit(network.DirInbound)
		}
		return nil
	})
	return sc
}

// requireAnswered has a fresh honest peer connect to the victim at addrs,
// then ping it and ask it a DHT question, each once: a node that is not
// stopped answers the first time.
func requireAnswered(t *testing.T, victim *Node, addrs []ma.Multiaddr) {
	t.Helper()
	honest := floodHost(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), floodBound)
	defer cancel()
	start := time.Now()
	id := victim.Host.ID()
	if err := honest.Connect(ctx, peer.AddrInfo{ID: id, Addrs: addrs}); err != nil {
		t.Fatalf("honest peer cannot connect: %v", err)
	}
	res := <-ping.Ping(ctx, honest, id)
	if res.Error != nil {
		t.Fatalf("honest peer's ping: %v", res.Error)
	}
	s, err := honest.NewStream(ctx, id, kadProtocol(victim))
	if err != nil {
		t.Fatalf("honest peer's DHT stream: %v", err)
	}
	defer s.Close()
	dl, _ := ctx.Deadline()
	if err := askFindNode(s, id, dl); err != nil {
		t.Fatalf("honest peer's DHT request: %v", err)
	}
	t.Logf("honest peer answered: ping rtt %v, connect+ping+FIND_NODE %v", res.RTT, time.Since(start).Round(time.Millisecond))
}

// floodStreams opens floodCount streams of proto from attacker to victim,
// a few at a time, sends one request on each and holds them all open. It
// counts the streams the victim answered and those it reset.
func floodStreams(t *testing.T, attacker host.Host, victim *Node, proto protocol.ID,
	ask func(network.Stream, peer.ID, time.Time) error) (answered, refused, failed int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*floodBound)
	defer cancel()
	var mu sync.Mutex
	var held []network.Stream
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range held {
			s.Reset()
		}
	})
	var nAnswered, nRefused, nFailed atomic.Int64
	var firstErr atomic.Value
	jobs := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range jobs {
				s, err := attacker.NewStream(ctx, victim.Host.ID(), proto)
				if err != nil {
					nFailed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				mu.Lock()
				held = append(held, s)
				mu.Unlock()
				switch err := ask(s, victim.Host.ID(), time.Now().Add(floodBound)); {
				case err == nil:
					nAnswered.Add(1)
				case errors.Is(err, network.ErrReset):
					nRefused.Add(1)
				default:
					nFailed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		})
	}
	for range floodCount {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		t.Logf("%s: first error other than a reset: %s", proto, e)
	}
	return int(nAnswered.Load()), int(nRefused.Load()), int(nFailed.Load())
}

// One peer opens a thousand DHT streams and a thousand ping streams and holds
// them: the victim answers up to its per-peer limits, resets the rest, and
// still answers an honest peer. The DHT flood takes the peer's whole stream
// allowance, so its pings may all be reset.
func TestFloodStreamsFromOnePeer(t *testing.T) {
	victim := floodVictim(t, "/ip4/127.0.0.1/tcp/0")
	attacker := floodHost(t, &network.NullResourceManager{})
	ctx, cancel := context.WithTimeout(context.Background(), floodBound)
	defer cancel()
	if err := attacker.Connect(ctx, peer.AddrInfo{ID: victim.Host.ID(), Addrs: victim.Host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		proto protocol.ID
		ask   func(network.Stream, peer.ID, time.Time) error
	}{{kadProtocol(victim), askFindNode}, {ping.ID, askPing}} {
		start := time.Now()
		answered, refused, failed := floodStreams(t, attacker, victim, c.proto, c.ask)
		sc := victimScopes(victim, attacker.ID())
		t.Logf("%s: %d streams in %v: answered %d, reset %d, other errors %d; victim holds %d inbound streams of the attacker (per-peer limit %d)",
			c.proto, floodCount, time.Since(start).Round(time.Millisecond), answered, refused, failed, sc.peer.NumStreamsInbound, sc.peerStreamsIn)
		if answered == 0 && c.proto != ping.ID {
			t.Errorf("%s: the victim answered none of the attacker's streams: %d reset, %d other errors", c.proto, refused, failed)
		}
		if answered >= floodCount || refused == 0 {
			t.Errorf("%s: the victim answered %d of %d streams from one peer and reset %d: no limit applied", c.proto, answered, floodCount, refused)
		}
		if sc.peer.NumStreamsInbound >= floodCount || sc.peer.NumStreamsInbound > sc.peerStreamsIn {
			t.Errorf("%s: the victim holds %d inbound streams of one peer (limit %d)", c.proto, sc.peer.NumStreamsInbound, sc.peerStreamsIn)
		}
	}
	if len(attacker.Network().ConnsToPeer(victim.Host.ID())) == 0 {
		t.Log("the victim closed the attacker's connection")
	}
	requireAnswered(t, victim, victim.Host.Addrs())
}

// One peer opens a thousand connections and holds them: raw TCP sockets that
// never start the handshake, from one address, and libp2p connections under
// one identity. The victim keeps a few and the honest peer gets in.
func TestFloodConnectionsFromOnePeer(t *testing.T) {
	t.Run("half-open TCP from one address", func(t *testing.T) {
		// 127.0.0.0/8 is exempt from libp2p's per-IP connection limits,
		// so the attacker needs an address of its own.
		ip := nonLoopbackIPv4(t)
		victim := floodVictim(t, "/ip4/127.0.0.1/tcp/0", "/ip4/"+ip.String()+"/tcp/0")
		loopback, target := victimAddr(t, victim, "127.0.0.1"), victimAddr(t, victim, ip.String())
		dst, err := manet.ToNetAddr(target)
		if err != nil {
			t.Fatal(err)
		}
		dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: floodBound}
		var conns []net.Conn
		var readers sync.WaitGroup
		var closedByVictim atomic.Int64
		t.Cleanup(func() {
			for _, c := range conns {
				c.Close()
			}
			readers.Wait()
		})
		start := time.Now()
		dialErrs := 0
		for range floodCount {
			c, err := dialer.Dial("tcp", dst.String())
			if err != nil {
				dialErrs++
				continue
			}
			conns = append(conns, c)
			readers.Go(func() {
				_, _ = io.Copy(io.Discard, c) // returns when the victim or the cleanup closes c
				closedByVictim.Add(1)
			})
		}
		// Each socket is either closed by the victim or held in its
		// transient scope, waiting for a handshake (15 s at most).
		var sc scopes
		settled := false
		for deadline := time.Now().Add(floodBound); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			sc = victimScopes(victim, "")
			if int(closedByVictim.Load())+sc.transient.NumConnsInbound == len(conns) {
				settled = true
				break
			}
		}
		closed := int(closedByVictim.Load())
		t.Logf("%d sockets from %s in %v: %d closed by the victim, %d held (transient inbound conns, limit %d), %d dials failed; settled %v",
			floodCount, ip, time.Since(start).Round(time.Millisecond), closed, sc.transient.NumConnsInbound, sc.transientConnsIn, dialErrs, settled)
		if closed == 0 || sc.transient.NumConnsInbound >= len(conns) {
			t.Errorf("the victim held all %d half-open sockets of one address", len(conns))
		}
		requireAnswered(t, victim, []ma.Multiaddr{loopback})
	})

	t.Run("libp2p connections from one identity", func(t *testing.T) {
		victim := floodVictim(t, "/ip4/127.0.0.1/tcp/0")
		attackerID, tr := rawAttacker(t)
		target := victimAddr(t, victim, "127.0.0.1")
		ctx, cancel := context.WithTimeout(context.Background(), 6*floodBound)
		defer cancel()
		var mu sync.Mutex
		var conns []transport.CapableConn
		t.Cleanup(func() {
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				c.Close()
			}
		})
		var dialed, refused atomic.Int64
		start := time.Now()
		jobs := make(chan struct{})
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range jobs {
					c, err := tr.Dial(ctx, target, victim.Host.ID())
					if err != nil {
						refused.Add(1)
						continue
					}
					dialed.Add(1)
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
				}
			})
		}
		for range floodCount {
			jobs <- struct{}{}
		}
		close(jobs)
		wg.Wait()
		sc := victimScopes(victim, attackerID)
		held := len(victim.Host.Network().ConnsToPeer(attackerID))
		t.Logf("%d connections of one identity in %v: %d upgraded, %d refused; victim holds %d (peer scope %d inbound, per-peer limit %d)",
			floodCount, time.Since(start).Round(time.Millisecond), dialed.Load(), refused.Load(), held, sc.peer.NumConnsInbound, sc.peerConnsIn)
		if held >= floodCount || sc.peer.NumConnsInbound > sc.peerConnsIn || refused.Load() == 0 {
			t.Errorf("the victim holds %d connections of one identity (limit %d), refused %d", held, sc.peerConnsIn, refused.Load())
		}
		requireAnswered(t, victim, []ma.Multiaddr{target})
	})
}

// One peer opens a thousand streams over its eight connections and never
// names a protocol. Until a stream is negotiated libp2p counts it in the
// transient scope, shared by all peers, and the default per-peer inbound
// stream limit is above the transient one: the attacker fills it and the
// victim resets every other peer's new streams until its 10 s negotiation
// timeout, and the attacker could open them again. guardTransient (limits.go)
// keeps each peer to a sixteenth of that scope.
func TestFloodSilentStreamsFromOnePeer(t *testing.T) {
	victim := floodVictim(t, "/ip4/127.0.0.1/tcp/0")
	attackerID, tr := rawAttacker(t)
	target := victimAddr(t, victim, "127.0.0.1")
	ctx, cancel := context.WithTimeout(context.Background(), floodBound)
	defer cancel()
	// yamux reserves 256 KiB per stream from a connection's 32 MiB: over
	// about 127 unread streams a connection is closed, so spread them.
	const perConn = floodCount / 8
	var streams []network.MuxedStream
	for range 8 {
		c, err := tr.Dial(ctx, target, victim.Host.ID())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		for range perConn {
			if s, err := c.OpenStream(ctx); err == nil {
				streams = append(streams, s)
			}
		}
	}
	// The victim writes its multistream header on each stream it takes
	// and resets those it refuses.
	accepted, refused, other := 0, 0, 0
	for _, s := range streams {
		_ = s.SetReadDeadline(time.Now().Add(floodBound))
		switch _, err := s.Read(make([]byte, 1)); {
		case err == nil:
			accepted++
		case errors.Is(err, network.ErrReset):
			refused++
		default:
			other++
		}
	}
	sc := victimScopes(victim, attackerID)
	t.Logf("%d silent streams: %d taken, %d reset, %d other; victim holds %d inbound streams of the attacker (per-peer limit %d), transient %d (limit %d)",
		len(streams), accepted, refused, other, sc.peer.NumStreamsInbound, sc.peerStreamsIn, sc.transient.NumStreamsInbound, sc.transientStreamsIn)
	requireAnswered(t, victim, []ma.Multiaddr{target})
}

// nonLoopbackIPv4 is an address of this machine outside 127.0.0.0/8 that a
// node can listen on; the test is skipped without one.
func nonLoopbackIPv4(t *testing.T) net.IP {
	t.Helper()
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Skipf("no interfaces: %v", err)
	}
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := iface.Addrs()
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.To4() == nil || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() {
				continue
			}
			l, err := net.Listen("tcp4", net.JoinHostPort(ipn.IP.String(), "0"))
			if err != nil {
				continue
			}
			l.Close()
			return ipn.IP.To4()
		}
	}
	t.Skip("no non-loopback IPv4 address: loopback is exempt from libp2p's per-IP connection limits")
	return nil
}

// victimAddr is the victim's TCP listen address on ip.
func victimAddr(t *testing.T, n *Node, ip string) ma.Multiaddr {
	t.Helper()
	for _, a := range n.Host.Network().ListenAddresses() {
		if v, err := a.ValueForProtocol(ma.P_IP4); err == nil && v == ip {
			if _, err := a.ValueForProtocol(ma.P_TCP); err == nil {
				return a
			}
		}
	}
	t.Fatalf("victim does not listen on %s: %v", ip, n.Host.Network().ListenAddresses())
	return nil
}
