package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/backoff"
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
	ps         *pubsub.PubSub
	mu         sync.Mutex
	m          map[string]*pubsub.Topic
	validators map[string]pubsub.ValidatorEx // by topic prefix
}

// Peer scoring (GossipSub v1.1). Every peer starts at 0 and only loses:
// the node asks nothing of honest peers it could reward (they publish
// rarely), but a peer that sends messages a topic validator rejects (P4),
// or breaks gossip promises and re-grafts during backoff (P7), sinks
// below the thresholds and is cut off, its score kept for RetainScore
// after it disconnects so reconnecting does not wipe it.
//
// P4 is counted on topics with a validator (ValidateTopics) and squared:
// at weight -1, 4 rejected messages reach the gossip threshold (-16 < -10:
// no gossip to or from it), 8 the publish threshold (-64 < -50: the node
// stops flooding its own messages to it), 9 the graylist (-81 < -80: all
// its messages are dropped unread). The count decays to 1 % in 10 minutes, so
// an honest peer that relayed a few bad messages recovers. P7 counts the
// misbehaviours past 6, squared, at weight -1, decaying alike.
//
// P6 (peers sharing an IP) is off: many honest nodes share one address
// behind a NAT or a carrier-grade NAT, and tests run every node on 127.0.0.1.
var (
	scoreThresholds = &pubsub.PeerScoreThresholds{
		GossipThreshold:             -10,
		PublishThreshold:            -50,
		GraylistThreshold:           -80,
		AcceptPXThreshold:           10, // never reached (no positive terms): no PX is taken
		OpportunisticGraftThreshold: 1,
	}
	validatedTopicScore = &pubsub.TopicScoreParams{
		SkipAtomicValidation:           true,
		TopicWeight:                    1,
		TimeInMeshQuantum:              time.Second, // P1 is off (weight 0), but libp2p divides by it
		InvalidMessageDeliveriesWeight: -1,
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(10 * time.Minute),
	}
)

func scoreParams() *pubsub.PeerScoreParams {
	return &pubsub.PeerScoreParams{
		SkipAtomicValidation:      true,
		Topics:                    map[string]*pubsub.TopicScoreParams{},
		AppSpecificScore:          func(peer.ID) float64 { return 0 },
		BehaviourPenaltyWeight:    -1,
		BehaviourPenaltyThreshold: 6,
		BehaviourPenaltyDecay:     pubsub.ScoreParameterDecay(10 * time.Minute),
		DecayInterval:             time.Second,
		DecayToZero:               0.01,
		RetainScore:               time.Hour,
	}
}

// gossipParams are GossipSub's defaults but one connector: connectors dial
// the peers that peer exchange suggests, which this node does not enable,
// and the default eight idle goroutines per node were a measurable share of
// a light node's.
func gossipParams() pubsub.GossipSubParams {
	p := pubsub.DefaultGossipSubParams()
	p.Connectors = 1
	return p
}

// Topic discovery backs off: GossipSub asks for more peers every second for
// each topic whose mesh is short of peers, and most of a node's topics (a
// name's, followed by its owner and a few mirrors) always are. Asked of
// the DHT each time, that was a provider walk per topic per second on
// every node, most of an idle node's CPU. The answers are kept and the DHT
// asked again after 1 s, then 2, 4, ... up to topicRediscoverMax while they
// stay the same; a new subscriber is not missed meanwhile, since it finds
// the others itself when it joins and connects to them.
const topicRediscoverMax = 5 * time.Minute

func topicDiscovery(d discovery.Discovery) (discovery.Discovery, error) {
	return backoff.NewBackoffDiscovery(d, backoff.NewExponentialBackoff(time.Second, topicRediscoverMax,
		backoff.NoJitter, time.Second, 2, 0, rand.NewSource(1)))
}

// startPubSub runs GossipSub. Peers find each other's topics through the DHT
// (a topic is advertised like content), so followers need no fixed list.
func (n *Node) startPubSub(ctx context.Context) error {
	disc, err := topicDiscovery(drouting.NewRoutingDiscovery(n.DHT))
	if err != nil {
		return fmt.Errorf("start pubsub: %w", err)
	}
	ps, err := pubsub.NewGossipSub(ctx, newTopicPeers(n.Host),
		pubsub.WithDiscovery(disc),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithMaxMessageSize(MaxMessageSize),
		pubsub.WithPeerScore(scoreParams(), scoreThresholds),
		pubsub.WithGossipSubParams(gossipParams()),
	)
	if err != nil {
		return fmt.Errorf("start pubsub: %w", err)
	}
	n.topics = &topics{ps: ps, m: map[string]*pubsub.Topic{}, validators: map[string]pubsub.ValidatorEx{}}
	return nil
}

// ValidateTopics has validate check every message of the topics named
// prefix+anything before the node delivers or relays it, and peers scored
// by what it rejects (validatedTopicScore). Set it before such topics are joined.
func (n *Node) ValidateTopics(prefix string, validate pubsub.ValidatorEx) {
	n.topics.mu.Lock()
	defer n.topics.mu.Unlock()
	n.topics.validators[prefix] = validate
}

// guard registers the validator and score of a topic being joined.
func (t *topics) guard(topic *pubsub.Topic) error {
	for prefix, validate := range t.validators {
		if !strings.HasPrefix(topic.String(), prefix) {
			continue
		}
		if err := t.ps.RegisterTopicValidator(topic.String(), validate); err != nil {
			return err
		}
		return topic.SetScoreParams(validatedTopicScore)
	}
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
	if err == nil {
		if err = t.guard(topic); err != nil {
			topic.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("join topic %q: %w", name, err)
	}
	t.m[name] = topic
	return topic, nil
}

// PubSub is the node's GossipSub router, for validators on topics.
func (n *Node) PubSub() *pubsub.PubSub { return n.topics.ps }
