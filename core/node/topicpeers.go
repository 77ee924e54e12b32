package node

import (
	"context"
	"sync"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// topicPeers is the host GossipSub is given: it speaks pub/sub only with
// the peers that share a topic with this node, not with every peer it is
// connected to.
//
// GossipSub opens a stream to every connected peer that speaks it, and keeps
// three goroutines per such peer (a reader, a writer and a watcher) for as
// long as the connection lasts. A node is connected to many peers for the
// DHT's sake, few of which follow any of its topics (a name's topic has its
// owner and a few mirrors): most of those goroutines, and their stacks,
// served nothing. A peer is let through once this node has reason to speak
// pub/sub with it:
//   - the topic discovery asked to connect to it: it advertised one of this
//     node's topics in the DHT (GossipSub connects through this host);
//   - it opened a pub/sub stream to this node: it found this node the same way.
//
// GossipSub learns of a new peer from the identify events on the event bus;
// this host's bus holds those back for a peer not let through, and sends one
// when a peer already connected is let through.
type topicPeers struct {
	host.Host
	bus *topicPeersBus
}

// maxTopicPeers bounds the peers remembered as let through; past it, those no
// longer connected are forgotten first.
const maxTopicPeers = 4096

func newTopicPeers(h host.Host) *topicPeers {
	return &topicPeers{Host: h, bus: &topicPeersBus{Bus: h.EventBus(), net: h.Network(), peers: h.Peerstore(),
		admitted: map[peer.ID]struct{}{}}}
}

func (h *topicPeers) EventBus() event.Bus { return h.bus }

// Network is the host's, with Peers narrowed to the peers let through:
// GossipSub reads it once, as it starts, for the peers already connected
// (a bootstrap peer dialled by then would otherwise be linked).
func (h *topicPeers) Network() network.Network {
	return admittedNetwork{Network: h.Host.Network(), bus: h.bus}
}

type admittedNetwork struct {
	network.Network
	bus *topicPeersBus
}

func (n admittedNetwork) Peers() []peer.ID {
	all := n.Network.Peers()
	out := all[:0:0]
	for _, p := range all {
		if n.bus.isAdmitted(p) {
			out = append(out, p)
		}
	}
	return out
}

// Connect lets the peer through first, so that its identify event, or the
// one sent for a connection already open, reaches GossipSub.
func (h *topicPeers) Connect(ctx context.Context, pi peer.AddrInfo) error {
	h.bus.admit(pi.ID)
	return h.Host.Connect(ctx, pi)
}

func (h *topicPeers) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, h.admitting(handler))
}

func (h *topicPeers) SetStreamHandlerMatch(pid protocol.ID, match func(protocol.ID) bool, handler network.StreamHandler) {
	h.Host.SetStreamHandlerMatch(pid, match, h.admitting(handler))
}

// admitting lets the sender of a pub/sub stream through before GossipSub
// reads it, so that GossipSub opens its own stream back.
func (h *topicPeers) admitting(handler network.StreamHandler) network.StreamHandler {
	return func(s network.Stream) {
		h.bus.admit(s.Conn().RemotePeer())
		handler(s)
	}
}

// topicPeersBus is the host's event bus with the peer events of peers not
// let through held back.
type topicPeersBus struct {
	event.Bus
	net   network.Network
	peers peerstore.Peerstore

	mu       sync.Mutex
	admitted map[peer.ID]struct{}
	subs     map[*peerEventsSub]struct{}
}

func (b *topicPeersBus) Subscribe(eventType any, opts ...event.SubscriptionOpt) (event.Subscription, error) {
	sub, err := b.Bus.Subscribe(eventType, opts...)
	if err != nil {
		return nil, err
	}
	s := &peerEventsSub{Subscription: sub, out: make(chan any, 16), done: make(chan struct{}), bus: b}
	b.mu.Lock()
	if b.subs == nil {
		b.subs = map[*peerEventsSub]struct{}{}
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	go s.relay()
	return s, nil
}

// admit lets p through; if it is new and already connected, every
// subscriber is told of its protocols as if it had just been identified.
func (b *topicPeersBus) admit(p peer.ID) {
	b.mu.Lock()
	if _, ok := b.admitted[p]; ok {
		b.mu.Unlock()
		return
	}
	if len(b.admitted) >= maxTopicPeers {
		for old := range b.admitted {
			if b.net.Connectedness(old) != network.Connected {
				delete(b.admitted, old)
			}
		}
	}
	if len(b.admitted) >= maxTopicPeers {
		b.mu.Unlock()
		return // every one of them connected: GossipSub has enough to do
	}
	b.admitted[p] = struct{}{}
	subs := make([]*peerEventsSub, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	if b.net.Connectedness(p) != network.Connected {
		return // its identify event, once connected, will pass
	}
	protos, err := b.peers.GetProtocols(p)
	if err != nil || len(protos) == 0 {
		return // not identified yet: its event will pass
	}
	ev := event.EvtPeerIdentificationCompleted{Peer: p, Protocols: protos}
	for _, s := range subs {
		s.send(ev)
	}
}

func (b *topicPeersBus) allows(ev any) bool {
	var p peer.ID
	switch ev := ev.(type) {
	case event.EvtPeerIdentificationCompleted:
		p = ev.Peer
	case event.EvtPeerProtocolsUpdated:
		p = ev.Peer
	default:
		return true
	}
	return b.isAdmitted(p)
}

func (b *topicPeersBus) isAdmitted(p peer.ID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.admitted[p]
	return ok
}

// peerEventsSub is one subscription on topicPeersBus. Its Out channel is
// never closed (admit may still send on it): GossipSub, its one user, stops
// reading on its context.
type peerEventsSub struct {
	event.Subscription
	out  chan any
	done chan struct{}
	once sync.Once
	bus  *topicPeersBus
}

func (s *peerEventsSub) Out() <-chan any { return s.out }

func (s *peerEventsSub) relay() {
	for ev := range s.Subscription.Out() {
		if s.bus.allows(ev) {
			s.send(ev)
		}
	}
	s.Close()
}

func (s *peerEventsSub) send(ev any) {
	select {
	case s.out <- ev:
	case <-s.done:
	}
}

func (s *peerEventsSub) Close() error {
	var err error
	s.once.Do(func() {
		close(s.done)
		s.bus.mu.Lock()
		delete(s.bus.subs, s)
		s.bus.mu.Unlock()
		err = s.Subscription.Close()
	})
	return err
}
