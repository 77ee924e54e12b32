package plugins

import (
	"context"
	"encoding/json"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/avnode/avnode/sdk/pluginpb"
)

// maxPolicyInput bounds the JSON a plugin may hand a policy hook.
const maxPolicyInput = 64 << 10

// Decide asks the node's Lua policies for a verdict; roles use it for the
// hooks the node itself does not call (mirror). relay_reserve is asked by
// the node's relay gate (host_relay.go), not through here.
func (h *HostAPI) Decide(ctx context.Context, req *pluginpb.PolicyRequest) (*pluginpb.PolicyVerdict, error) {
	if len(req.GetInputJson()) > maxPolicyInput || !json.Valid(req.GetInputJson()) {
		return nil, status.Errorf(codes.InvalidArgument, "policy %s: input must be JSON of at most %d bytes", req.GetHook(), maxPolicyInput)
	}
	v := h.node.Decide(ctx, req.GetHook(), json.RawMessage(req.GetInputJson()))
	return &pluginpb.PolicyVerdict{Decided: v.Decided, Allow: v.Allow, Order: v.Order, Reason: v.Reason,
		Script: v.Script, Fallback: v.Fallback}, nil
}
