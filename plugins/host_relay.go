package plugins

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/sdk/pluginpb"
)

// relayGateBudget bounds one relay_reserve decision: it runs inside the
// relay's stream handler.
const relayGateBudget = time.Second

// StartRelay runs the node's relay service with the role's limits.
func (h *HostAPI) StartRelay(_ context.Context, req *pluginpb.RelayConfig) (*pluginpb.RelayStats, error) {
	limits := api.RelayLimits{
		MaxReservations: int(req.GetMaxReservations()), MaxReservationsPerIP: int(req.GetMaxReservationsPerIp()),
		MaxCircuits:     int(req.GetMaxCircuits()),
		CircuitDuration: time.Duration(req.GetCircuitDurationSeconds()) * time.Second,
		CircuitBytes:    req.GetCircuitBytes(),
		ReservationTTL:  time.Duration(req.GetReservationTtlSeconds()) * time.Second,
	}
	if err := h.node.StartRelay(limits, h.relayGate); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return h.RelayStatus(context.Background(), nil)
}

// RelayStatus reports the relay service's counters.
func (h *HostAPI) RelayStatus(context.Context, *pluginpb.Empty) (*pluginpb.RelayStats, error) {
	s := h.node.RelayStats()
	return &pluginpb.RelayStats{Running: s.Running, Reservations: s.Reservations, Refused: s.Refused, Circuits: s.Circuits}, nil
}

// relayGate asks the Lua relay_reserve hook; with no script deciding, the
// relay is open to everyone within its limits.
func (h *HostAPI) relayGate(p peer.ID, addr ma.Multiaddr) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), relayGateBudget)
	defer cancel()
	input := map[string]any{"peer": p.String(), "addrs": []string{addr.String()}}
	if ip, err := manet.ToIP(addr); err == nil {
		input["ip"] = ip.String()
	}
	v := h.node.Decide(ctx, "relay_reserve", input)
	if !v.Decided {
		return true, ""
	}
	return v.Allow, v.Reason
}
