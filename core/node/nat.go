package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/multiformats/go-multihash"

	"github.com/avnode/avnode/core/config"
)

// RelayCID is the DHT key under which circuit relays announce themselves:
// a relay provides it, and a private node finds relays among its providers,
// with no fixed list.
func RelayCID() cid.Cid {
	mh, _ := multihash.Sum([]byte("avnode/relays/v1"), multihash.SHA2_256, -1)
	return cid.NewCidV1(cid.Raw, mh)
}

// natOptions are the libp2p options for reachability and relay clients.
// A private node holds reservations on relays found by relayCandidates and
// advertises their /p2p-circuit addresses; hole punching (DCUtR) then
// upgrades relayed connections to direct ones.
func (n *Node) natOptions(cfg *config.Config) []libp2p.Option {
	var opts []libp2p.Option
	switch cfg.NAT.Reachability {
	case "public":
		opts = append(opts, libp2p.ForceReachabilityPublic())
	case "private":
		opts = append(opts, libp2p.ForceReachabilityPrivate())
	}
	if !cfg.NAT.RelayClient {
		return append(opts, libp2p.DisableRelay())
	}
	return append(opts, libp2p.EnableRelay(), libp2p.EnableAutoRelayWithPeerSource(n.relayCandidates,
		autorelay.WithMinCandidates(1), // one relay found is enough to start
		autorelay.WithNumRelays(2),
		autorelay.WithBootDelay(0),
		autorelay.WithBackoff(time.Minute),
		autorelay.WithMinInterval(10*time.Second),
	))
}

// relayCandidates feeds autorelay: the configured relays, then the
// providers of RelayCID in the DHT.
func (n *Node) relayCandidates(ctx context.Context, num int) <-chan peer.AddrInfo {
	out := make(chan peer.AddrInfo)
	go func() {
		defer close(out)
		send := func(info peer.AddrInfo) bool {
			select {
			case out <- info:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for _, s := range n.cfg.NAT.Relays {
			if info, err := config.ParsePeerAddr(s); err == nil && !send(*info) {
				return
			}
		}
		for info := range n.DHT.FindProvidersAsync(ctx, RelayCID(), num) {
			if info.ID != n.DHT.Host().ID() && len(info.Addrs) > 0 && !send(info) {
				return
			}
		}
	}()
	return out
}

// RelayAddrs are the /p2p-circuit addresses this node holds through relay
// reservations.
func (n *Node) RelayAddrs() []string {
	var out []string
	for _, a := range n.Addrs() {
		if strings.Contains(a, "/p2p-circuit") {
			out = append(out, a)
		}
	}
	return out
}

// RelayLimits bound what this node's relay service gives others.
type RelayLimits struct {
	MaxReservations      int
	MaxReservationsPerIP int
	MaxCircuits          int // open relayed connections per peer
	CircuitDuration      time.Duration
	CircuitBytes         int64 // per direction, per relayed connection
	ReservationTTL       time.Duration
}

// RelayGate decides who may reserve a slot; nil lets everyone within limits.
type RelayGate func(p peer.ID, addr ma.Multiaddr) (allow bool, reason string)

// RelayStats counts what the relay service did since it started.
type RelayStats struct {
	Running      bool  `json:"running"`
	Reservations int64 `json:"reservations"` // reservations (and renewals) accepted
	Refused      int64 `json:"refused"`      // reservations refused by the gate
	Circuits     int64 `json:"circuits"`     // relayed connections opened
}

type relayService struct {
	svc                            *relay.Relay
	reservations, refused, circuit atomic.Int64
}

// StartRelay runs the circuit relay v2 service with limits, replacing one
// already running, and announces the node as a relay in the DHT. The relay
// only hands out addresses it considers public.
func (n *Node) StartRelay(limits RelayLimits, gate RelayGate) error {
	if limits.MaxReservations <= 0 || limits.MaxCircuits <= 0 || limits.CircuitDuration <= 0 || limits.CircuitBytes <= 0 {
		return errors.New("relay limits must all be positive")
	}
	res := relay.DefaultResources()
	res.MaxReservations, res.MaxCircuits = limits.MaxReservations, limits.MaxCircuits
	if limits.MaxReservationsPerIP > 0 {
		res.MaxReservationsPerIP = limits.MaxReservationsPerIP
	}
	if limits.ReservationTTL > 0 {
		res.ReservationTTL = limits.ReservationTTL
	}
	res.Limit = &relay.RelayLimit{Duration: limits.CircuitDuration, Data: limits.CircuitBytes}
	rs := &relayService{}
	opts := []relay.Option{relay.WithResources(res), relay.WithACL(relayACL{rs: rs, gate: gate, log: n})}
	if n.registerer != nil {
		opts = append(opts, relay.WithMetricsTracer(relay.NewMetricsTracer(relay.WithRegisterer(n.registerer))))
	}
	// One service at a time: closing the old one removes the protocol
	// handler, so it goes before the new one sets it.
	n.mu.Lock()
	defer n.mu.Unlock()
	first := n.relay == nil
	if !first {
		n.relay.svc.Close()
		n.relay = nil
	}
	svc, err := relay.New(n.Host, opts...)
	if err != nil {
		return fmt.Errorf("start relay: %w", err)
	}
	rs.svc = svc
	n.relay = rs
	if first {
		n.wg.Add(1)
		go n.announceRelay()
	}
	n.log.Info("relay service running", "max_reservations", limits.MaxReservations, "max_circuits", limits.MaxCircuits,
		"circuit_duration", limits.CircuitDuration, "circuit_bytes", limits.CircuitBytes)
	return nil
}

// RelayStats reports the relay service's counters.
func (n *Node) RelayStats() RelayStats {
	n.mu.Lock()
	rs := n.relay
	n.mu.Unlock()
	if rs == nil {
		return RelayStats{}
	}
	return RelayStats{Running: true, Reservations: rs.reservations.Load(), Refused: rs.refused.Load(), Circuits: rs.circuit.Load()}
}

// announceRelay provides RelayCID now (retrying until the DHT takes it) and
// again every hour, while the node runs.
func (n *Node) announceRelay() {
	defer n.wg.Done()
	wait := 2 * time.Second
	for {
		ctx, cancel := context.WithTimeout(n.ctx, time.Minute)
		err := n.DHT.Provide(ctx, RelayCID(), true)
		cancel()
		if err == nil {
			wait = time.Hour
		} else {
			n.log.Debug("announce relay", "err", err)
			wait = min(2*wait, 5*time.Minute)
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// relayACL counts and gates reservations, and counts circuits.
type relayACL struct {
	rs   *relayService
	gate RelayGate
	log  *Node
}

func (a relayACL) AllowReserve(p peer.ID, addr ma.Multiaddr) bool {
	if a.gate != nil {
		if ok, reason := a.gate(p, addr); !ok {
			a.rs.refused.Add(1)
			a.log.log.Info("relay reservation refused", "peer", p, "addr", addr, "reason", reason)
			return false
		}
	}
	a.rs.reservations.Add(1)
	return true
}

func (a relayACL) AllowConnect(_ peer.ID, _ ma.Multiaddr, _ peer.ID) bool {
	a.rs.circuit.Add(1)
	return true
}
