package node

import (
	"context"
	"errors"
	"fmt"
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
)

// MaxTopics bounds the pub/sub topics a node joins, so plugins cannot make
// it hold an unbounded number of meshes.
const MaxTopics = 1024

// MaxMessageSize bounds one pub/sub message: a signed zone fits many times.
const MaxMessageSize = 256 << 10

// topics joins GossipSub topics once each and keeps them for the node's life:
// libp2p allows one Join per topic per node, while many subscribers may share it.
type topics struct {
	ps *pubsub.PubSub
	mu sync.Mutex
	m  map[string]*pubsub.Topic
}

// startPubSub runs GossipSub. Peers find each other's topics through the DHT
// (a topic is advertised like content), so followers need no fixed list.
func (n *Node) startPubSub(ctx context.Context) error {
	ps, err := pubsub.NewGossipSub(ctx, n.Host,
		pubsub.WithDiscovery(drouting.NewRoutingDiscovery(n.DHT)),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithMaxMessageSize(MaxMessageSize),
	)
	if err != nil {
		return fmt.Errorf("start pubsub: %w", err)
	}
	n.topics = &topics{ps: ps, m: map[string]*pubsub.Topic{}}
	return nil
}

// ErrTooManyTopics is returned when a node already holds MaxTopics topics.
var ErrTooManyTopics = errors.New("too many pub/sub topics")

// Topic returns the node's handle on a GossipSub topic, joining it the first time.
func (n *Node) Topic(name string) (*pubsub.Topic, error) {
	if name == "" || len(name) > 256 {
		return nil, fmt.Errorf("topic %q: must be 1 to 256 bytes", name)
	}
	t := n.topics
	t.mu.Lock()
	defer t.mu.Unlock()
	if topic, ok := t.m[name]; ok {
		return topic, nil
	}
	if len(t.m) >= MaxTopics {
		return nil, fmt.Errorf("topic %q: %w (%d)", name, ErrTooManyTopics, MaxTopics)
	}
	topic, err := t.ps.Join(name)
	if err != nil {
		return nil, fmt.Errorf("join topic %q: %w", name, err)
	}
	t.m[name] = topic
	return topic, nil
}

// PubSub is the node's GossipSub router, for validators on topics.
func (n *Node) PubSub() *pubsub.PubSub { return n.topics.ps }
