package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/avnode/avnode/sdk/pluginpb"
)

// hostDialTimeout bounds how long Start tries to reach the node's Host
// service through the broker (go-plugin #89: the node's accept may not be
// ready yet when Start arrives).
const hostDialTimeout = 5 * time.Second

// roleServer serves pluginpb.Role over a Role. It owns the connection to
// the node's Host service: dialled in Start, closed after Stop.
type roleServer struct {
	pluginpb.UnimplementedRoleServer
	role     Role
	stderr   io.Writer
	logLevel slog.Leveler

	mu      sync.Mutex // serialises ValidateConfig, Start and Stop
	broker  *plugin.GRPCBroker
	running bool
	conn    *grpc.ClientConn
}

func newRoleServer(r Role, stderr io.Writer, level slog.Leveler) *roleServer {
	return &roleServer{role: r, stderr: stderr, logLevel: level}
}

// setBroker is RolePlugin.Server: go-plugin calls it once it has a broker.
func (s *roleServer) setBroker(b *plugin.GRPCBroker) pluginpb.RoleServer {
	s.mu.Lock()
	s.broker = b
	s.mu.Unlock()
	return s
}

func (s *roleServer) Describe(context.Context, *pluginpb.DescribeRequest) (d *pluginpb.Description, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.reportPanic("Describe", p)
			d, err = nil, status.Errorf(codes.Internal, "the role panicked in Describe: %v", p)
		}
	}()
	return describeProto(s.role.Describe()), nil
}

func describeProto(d Description) *pluginpb.Description {
	return &pluginpb.Description{
		Name:            d.Name,
		Version:         d.Version,
		ProtocolVersion: uint32(Handshake.ProtocolVersion),
		Capabilities:    d.Capabilities,
		ConfigSchema:    d.ConfigSchema,
		Summary:         d.Summary,
		Permissions:     d.Permissions,
	}
}

func (s *roleServer) ValidateConfig(_ context.Context, req *pluginpb.ConfigRequest) (*pluginpb.Diagnostics, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.call("ValidateConfig", func() Diagnostics {
		return s.role.ValidateConfig(normalizeConfig(req.GetConfigJson()))
	}).Proto(), nil
}

func (s *roleServer) Start(ctx context.Context, req *pluginpb.StartRequest) (*pluginpb.Diagnostics, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return Diagnostics{Errorf("the role is already started").
			WithDetail("call Stop before starting it again")}.Proto(), nil
	}
	if s.broker == nil {
		return Diagnostics{Errorf("no go-plugin broker to reach the node through")}.Proto(), nil
	}
	conn, err := dialHost(ctx, s.broker, req.GetHostBrokerId())
	if err != nil {
		return Diagnostics{Errorf("cannot reach the node's host API on broker ID %d", req.GetHostBrokerId()).
			WithDetail("%v; the node must serve it (AcceptAndServe) before calling Start", err)}.Proto(), nil
	}
	host := newGRPCHost(conn, s.stderr, s.logLevel)
	host.dataDir, host.peerID = req.GetDataDir(), req.GetNodePeerId()
	diags := s.call("Start", func() Diagnostics {
		return s.role.Start(ctx, normalizeConfig(req.GetConfigJson()), host)
	})
	if diags.HasError() {
		_ = conn.Close()
		return diags.Proto(), nil
	}
	s.running, s.conn = true, conn
	return diags.Proto(), nil
}

func (s *roleServer) Stop(ctx context.Context, _ *pluginpb.StopRequest) (*pluginpb.Diagnostics, error) {
	return s.stop(ctx).Proto(), nil
}

// stop stops a running role; stopping a stopped role does nothing, so the
// node's Stop and a signal can both ask.
func (s *roleServer) stop(ctx context.Context) Diagnostics {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return nil
	}
	diags := s.call("Stop", func() Diagnostics { return s.role.Stop(ctx) })
	s.running = false
	_ = s.conn.Close()
	s.conn = nil
	return diags
}

// call runs one of the role's methods and turns a panic into an error
// diagnostic: a bug in a role should fail that call, not kill the process
// in the middle of the node's request.
func (s *roleServer) call(method string, f func() Diagnostics) (diags Diagnostics) {
	defer func() {
		if p := recover(); p != nil {
			s.reportPanic(method, p)
			diags = append(diags, Errorf("the role panicked in %s: %v", method, p).
				WithDetail("a bug in the plugin; its stderr in the node's log has the stack"))
		}
	}()
	return f()
}

func (s *roleServer) reportPanic(method string, p any) {
	fmt.Fprintf(s.stderr, "avnode sdk: panic in %s: %v\n%s", method, p, debug.Stack())
}

// normalizeConfig gives roles "{}" for an absent or null section, so that
// decoding into a struct always works.
func normalizeConfig(b []byte) json.RawMessage {
	if len(b) == 0 || string(b) == "null" {
		return json.RawMessage("{}")
	}
	return json.RawMessage(b)
}

// dialHost connects to the Host service the node serves on broker ID id and
// waits until the connection is up. broker.Dial waits for the node's
// connection info, and gRPC retries the connection itself with a short
// backoff here; Dial is tried again if it fails outright.
func dialHost(ctx context.Context, b *plugin.GRPCBroker, id uint32) (*grpc.ClientConn, error) {
	ctx, cancel := context.WithTimeout(ctx, hostDialTimeout)
	defer cancel()
	params := grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 2, Jitter: 0.2, MaxDelay: 500 * time.Millisecond},
		MinConnectTimeout: time.Second,
	})
	wait := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		conn, err := b.DialWithOptions(id, params)
		if err == nil {
			if err = waitReady(ctx, conn); err == nil {
				return conn, nil
			}
			_ = conn.Close()
			// The broker hands out a connection's address once; dialling
			// again would only wait for an address that will not come.
			return nil, fmt.Errorf("connection not ready after %d attempt(s): %w", attempt, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("after %d attempt(s): %w", attempt, err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

func waitReady(ctx context.Context, conn *grpc.ClientConn) error {
	conn.Connect()
	for {
		st := conn.GetState()
		switch st {
		case connectivity.Ready:
			return nil
		case connectivity.Shutdown:
			return fmt.Errorf("connection shut down")
		}
		if !conn.WaitForStateChange(ctx, st) {
			return fmt.Errorf("still %s: %w", st, ctx.Err())
		}
	}
}

var _ pluginpb.RoleServer = (*roleServer)(nil)
