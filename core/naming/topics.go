package naming

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/avnode/avnode/core/names"
	"github.com/avnode/avnode/core/node"
	"github.com/avnode/avnode/sdk"
)

// nameTopics checks the messages of the names' topics (sdk.NameTopic)
// before any role gets them or the node relays them. A zone must pass the
// node's own checks (CheckAnnounced: signature, name, owner, not
// older than a version held) and be newer than any zone of the name this
// node delivered on the topic before: a replay of the current zone reaches
// no role, so it costs a signature check and nothing else.
type nameTopics struct {
	names      *Service
	self       peer.ID
	log        *slog.Logger
	rejectLogs *rate.Limiter // about one line a second each
	ignoreLogs *rate.Limiter
	count      *prometheus.CounterVec

	mu        sync.Mutex
	delivered map[string]uint64 // per topic, the highest seq let through
}

// GuardNameTopics has the node validate the names' topics with nameTopics
// (refused and ignored messages counted in avnode_pubsub_name_messages_total).
func GuardNameTopics(n *node.Node, names *Service, log *slog.Logger, reg prometheus.Registerer) error {
	v := &nameTopics{
		names: names, self: n.Host.ID(), log: log, delivered: map[string]uint64{},
		rejectLogs: rate.NewLimiter(1, 5), ignoreLogs: rate.NewLimiter(1, 5),
		count: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "avnode", Subsystem: "pubsub", Name: "name_messages_total",
			Help: "Messages on the names' topics by what the node's validator did: accepted, ignored (a zone already delivered or older), rejected (junk, forged, wrong name or owner).",
		}, []string{"result"}),
	}
	if reg != nil {
		if err := reg.Register(v.count); err != nil {
			return err
		}
	}
	n.ValidateTopics(sdk.NameTopic(""), v.validate)
	return nil
}

func (v *nameTopics) validate(ctx context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	if from == v.self {
		return pubsub.ValidationAccept // this node's own roles: the node made or checked it
	}
	result, err := v.check(ctx, msg)
	v.count.WithLabelValues(resultLabel(result)).Inc()
	if err == nil {
		return result
	}
	// Each result has its own limiter, so a flood of replays (ignored)
	// cannot hide forged zones (rejected) from the log.
	level, logs := slog.LevelInfo, v.rejectLogs
	if result == pubsub.ValidationIgnore {
		level, logs = slog.LevelDebug, v.ignoreLogs // mostly repeats of what the owner's node announces every interval
	}
	if logs.Allow() {
		v.log.Log(ctx, level, "name topic message not delivered", "topic", msg.GetTopic(), "from", msg.GetFrom(),
			"via", from, "result", resultLabel(result), "reason", err)
	}
	return result
}

func (v *nameTopics) check(ctx context.Context, msg *pubsub.Message) (pubsub.ValidationResult, error) {
	var m sdk.NameMessage
	if err := json.Unmarshal(msg.GetData(), &m); err != nil {
		return pubsub.ValidationReject, fmt.Errorf("not a name message (JSON with kind %s, %s or %s): %w", sdk.KindZone, sdk.KindCopy, sdk.KindLeaving, err)
	}
	switch m.Kind {
	case sdk.KindCopy, sdk.KindLeaving:
		if len(m.Zone) > 0 {
			return pubsub.ValidationReject, fmt.Errorf("a %s message carries no zone", m.Kind)
		}
		return pubsub.ValidationAccept, nil
	case sdk.KindZone:
		return v.checkZone(ctx, msg.GetTopic(), m.Zone)
	}
	return pubsub.ValidationReject, fmt.Errorf("unknown kind %q", m.Kind)
}

func (v *nameTopics) checkZone(ctx context.Context, topic string, zone []byte) (pubsub.ValidationResult, error) {
	name := strings.TrimPrefix(topic, sdk.NameTopic(""))
	seq, known, err := v.names.CheckAnnounced(ctx, name, zone)
	switch {
	case errors.Is(err, ErrAnnouncedBefore):
		return pubsub.ValidationIgnore, err // stale, maybe relayed in good faith
	case errors.Is(err, names.ErrNameTaken):
		// Validly signed by another key: a relay that does not know the
		// owner yet passes it on in good faith, and rejecting it would let
		// free keys spend an honest relay's score.
		return pubsub.ValidationIgnore, err
	case err != nil:
		return pubsub.ValidationReject, err
	case !known:
		// No owner bound yet: the role's OfferZone asks the name's holders
		// who owns it. Not recorded, so an unchecked zone with a high seq
		// cannot shadow the owner's.
		return pubsub.ValidationAccept, nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if seq <= v.delivered[topic] {
		return pubsub.ValidationIgnore, fmt.Errorf("zone %s seq %d: seq %d already delivered on the topic", name, seq, v.delivered[topic])
	}
	v.delivered[topic] = seq
	return pubsub.ValidationAccept, nil
}

func resultLabel(r pubsub.ValidationResult) string {
	switch r {
	case pubsub.ValidationAccept:
		return "accepted"
	case pubsub.ValidationIgnore:
		return "ignored"
	}
	return "rejected"
}
