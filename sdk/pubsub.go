package sdk

import (
	"context"
	"encoding/json"

	"github.com/avnode/avnode/sdk/pluginpb"
)

// Publish sends data on a pub/sub topic (GossipSub), signed by the node.
func (h *grpcHost) Publish(ctx context.Context, topic string, data []byte) error {
	_, err := h.c.Publish(ctx, &pluginpb.TopicMessage{Topic: topic, Data: data})
	return wrap("Publish", topic, err)
}

// SubscribeTopic streams a topic's messages, this node's own included. It
// returns once the node has subscribed; the channel closes when ctx ends or
// the node goes. A slow reader holds up only its own subscription.
func (h *grpcHost) SubscribeTopic(ctx context.Context, topic string) (<-chan TopicMessage, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := h.c.SubscribeTopic(ctx, &pluginpb.TopicRequest{Topic: topic})
	if err == nil {
		err = awaitAccepted(stream)
	}
	if err != nil {
		cancel()
		return nil, wrap("SubscribeTopic", topic, err)
	}
	out := make(chan TopicMessage, 64)
	go func() {
		defer cancel()
		defer close(out)
		for {
			m, err := stream.Recv()
			if err != nil {
				return
			}
			select {
			case out <- topicMessageFromProto(m):
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// Decide asks the node's Lua policies for a verdict on hook (e.g. "mirror",
// "relay_reserve"); input is marshalled to JSON. A verdict with Decided
// false means no script had an opinion: apply the role's own default.
func (h *grpcHost) Decide(ctx context.Context, hook string, input any) (Verdict, error) {
	data, err := json.Marshal(input)
	if err != nil {
		return Verdict{}, wrap("Decide", hook, err)
	}
	v, err := h.c.Decide(ctx, &pluginpb.PolicyRequest{Hook: hook, InputJson: data})
	if err != nil {
		return Verdict{}, wrap("Decide", hook, err)
	}
	return verdictFromProto(v), nil
}
