package plugins

import (
	"context"
	"log/slog"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/avnode/avnode/sdk/pluginpb"
)

// needs says which permissions each host call needs, from its request. A
// call missing here is refused: a new host call is denied until it is given
// its permission.
var needs = map[string]func(req any) []permission{
	pluginpb.Host_Resolve_FullMethodName:    fixed("names.resolve"),
	pluginpb.Host_FindCopies_FullMethodName: fixed("names.resolve"),
	pluginpb.Host_Claim_FullMethodName: func(req any) []permission {
		r := req.(*pluginpb.ClaimRequest)
		return []permission{{"names.claim", nameScope(r.GetName())}, {"keys.use", r.GetKey()}}
	},
	pluginpb.Host_SetZoneRecord_FullMethodName: func(req any) []permission {
		return []permission{{"zone.write", nameScope(req.(*pluginpb.ZoneChange).GetName())}}
	},
	pluginpb.Host_GetRecord_FullMethodName: func(req any) []permission {
		return []permission{{"records.get", recordNamespace(req.(*pluginpb.RecordKey).GetKey())}}
	},
	pluginpb.Host_PutRecord_FullMethodName:     putRecord,
	pluginpb.Host_OfferZone_FullMethodName:     putRecord,
	pluginpb.Host_Fetch_FullMethodName:         fixed("content.fetch"),
	pluginpb.Host_ReadFile_FullMethodName:      fixed("content.fetch"),
	pluginpb.Host_FindProviders_FullMethodName: fixed("content.fetch"),
	pluginpb.Host_Provide_FullMethodName:       fixed("content.provide"),
	pluginpb.Host_AttestCopy_FullMethodName:    fixed("content.provide"),
	pluginpb.Host_Pin_FullMethodName:           fixed("content.pin"),
	pluginpb.Host_Unpin_FullMethodName:         fixed("content.unpin"),
	pluginpb.Host_Subscribe_FullMethodName: func(req any) []permission {
		kinds := req.(*pluginpb.SubscribeRequest).GetKinds()
		if len(kinds) == 0 {
			return []permission{{"events", "*"}} // every kind: only a grant of all
		}
		out := make([]permission, len(kinds))
		for i, k := range kinds {
			out[i] = permission{"events", k}
		}
		return out
	},
	pluginpb.Host_Publish_FullMethodName: func(req any) []permission {
		return []permission{{"pubsub", req.(*pluginpb.TopicMessage).GetTopic()}}
	},
	pluginpb.Host_SubscribeTopic_FullMethodName: func(req any) []permission {
		return []permission{{"pubsub", req.(*pluginpb.TopicRequest).GetTopic()}}
	},
	pluginpb.Host_HandleProtocol_FullMethodName: func(req any) []permission {
		return []permission{{"streams", req.(*pluginpb.ProtocolRequest).GetProtocol()}}
	},
	// A stream opened needs its protocol; one accepted was offered to this
	// role by its own HandleProtocol, which the registry checks.
	pluginpb.Host_Stream_FullMethodName: func(req any) []permission {
		if open := req.(*pluginpb.StreamChunk).GetOpen(); open != nil {
			return []permission{{"streams", open.GetProtocol()}}
		}
		return nil
	},
	pluginpb.Host_Decide_FullMethodName: func(req any) []permission {
		return []permission{{"policy.decide", req.(*pluginpb.PolicyRequest).GetHook()}}
	},
	pluginpb.Host_CallRole_FullMethodName: func(req any) []permission {
		return []permission{{"roles.call", req.(*pluginpb.RoleCall).GetRole()}}
	},
	pluginpb.Host_NodeConfig_FullMethodName: func(req any) []permission {
		return []permission{{"config.read", req.(*pluginpb.ConfigKey).GetKey()}}
	},
	pluginpb.Host_SetService_FullMethodName:  fixed("services"),
	pluginpb.Host_StartRelay_FullMethodName:  fixed("relay"),
	pluginpb.Host_RelayStatus_FullMethodName: fixed("relay"),
	// Logs and metrics need no permission; the logger bounds them.
	pluginpb.Host_Log_FullMethodName:    fixed(),
	pluginpb.Host_Metric_FullMethodName: fixed(),
}

func fixed(verbs ...string) func(any) []permission {
	out := make([]permission, len(verbs))
	for i, v := range verbs {
		out[i] = permission{verb: v}
	}
	return func(any) []permission { return out }
}

func putRecord(req any) []permission {
	return []permission{{"records.put", recordNamespace(req.(*pluginpb.RecordValue).GetKey())}}
}

// guard checks each host call of one role against the role's grants, and
// bounds how many of its unary calls run at once.
type guard struct {
	role    string
	grants  func() grants // read at each call: a grant or revoke applies at once
	calls   chan struct{} // one slot per unary call under way
	log     *slog.Logger
	logRate *rate.Limiter // denials are logged at most this often
	denied  func(role, perm string)
}

func newGuard(role string, g func() grants, concurrent int, log *slog.Logger, denied func(role, perm string)) *guard {
	return &guard{role: role, grants: g, calls: make(chan struct{}, concurrent), log: log,
		logRate: rate.NewLimiter(rate.Every(time.Second), 5), denied: denied}
}

// serverOptions add the guard to the broker's gRPC server for the role.
func (g *guard) serverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(g.unary), grpc.ChainStreamInterceptor(g.stream)}
}

// check returns PermissionDenied, naming what to grant, unless the role
// holds every permission the call needs.
func (g *guard) check(method string, req any) error {
	need, ok := needs[method]
	if !ok {
		return status.Errorf(codes.PermissionDenied, "role %s: %s is not a host call this node lets plugins make", g.role, method)
	}
	have := g.grants()
	for _, p := range need(req) {
		if have.allows(p) {
			continue
		}
		g.denied(g.role, p.verb)
		if g.logRate.Allow() {
			g.log.Warn("plugin call denied", "role", g.role, "call", method, "permission", p.String())
		}
		return status.Errorf(codes.PermissionDenied,
			"role %s: permission %q not granted; if you trust this role with it: avnode plugins grant %s '%s'", g.role, p, g.role, p)
	}
	return nil
}

func (g *guard) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := g.check(info.FullMethod, req); err != nil {
		return nil, err
	}
	select {
	case g.calls <- struct{}{}:
		defer func() { <-g.calls }()
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	return handler(ctx, req)
}

// stream checks each message the plugin sends on a streaming call: the
// request of a server stream, every chunk of Stream. Long-lived streams do
// not hold a call slot; their own bounds (subscribers, pending streams)
// apply.
func (g *guard) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if _, ok := needs[info.FullMethod]; !ok {
		return g.check(info.FullMethod, nil)
	}
	return handler(srv, &checkedStream{ServerStream: ss, check: func(m any) error { return g.check(info.FullMethod, m) }})
}

type checkedStream struct {
	grpc.ServerStream
	check func(any) error
}

func (s *checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.check(m)
}
