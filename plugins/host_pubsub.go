package plugins

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/avnode/avnode/sdk/pluginpb"
)

// Publish sends a message on a GossipSub topic, signed by the node's key.
func (h *HostAPI) Publish(ctx context.Context, req *pluginpb.TopicMessage) (*pluginpb.Empty, error) {
	topic, err := h.node.Topic(req.GetTopic())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := topic.Publish(ctx, req.GetData()); err != nil {
		return nil, grpcError(err)
	}
	return &pluginpb.Empty{}, nil
}

// SubscribeTopic streams a topic's messages, this node's own included,
// until the plugin ends the call.
func (h *HostAPI) SubscribeTopic(req *pluginpb.TopicRequest, stream pluginpb.Host_SubscribeTopicServer) error {
	topic, err := h.node.Topic(req.GetTopic())
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	sub, err := topic.Subscribe()
	if err != nil {
		return grpcError(err)
	}
	defer sub.Cancel()
	if err := stream.SendHeader(nil); err != nil { // tells the plugin it is subscribed
		return err
	}
	for {
		msg, err := sub.Next(stream.Context())
		if err != nil {
			return nil // the plugin went away, or the node is stopping
		}
		out := &pluginpb.TopicMessage{Topic: req.GetTopic(), Data: msg.GetData(), From: msg.GetFrom().String(), Seqno: msg.GetSeqno()}
		if err := stream.Send(out); err != nil {
			return err
		}
	}
}
