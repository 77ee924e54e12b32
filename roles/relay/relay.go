package main

import (
	"context"
	"encoding/json"
	"time"

	"github.com/avnode/avnode/sdk"
)

type config struct {
	MaxReservations      int32  `json:"max_reservations"`        // default 128
	MaxReservationsPerIP int32  `json:"max_reservations_per_ip"` // default 8
	MaxCircuits          int32  `json:"max_circuits"`            // per peer; default 16
	CircuitDuration      string `json:"circuit_duration"`        // default 2m
	CircuitBytesMB       int64  `json:"circuit_bytes_mb"`        // per relayed connection and direction; default 16
	ReservationTTL       string `json:"reservation_ttl"`         // default 1h
}

type relay struct {
	limits sdk.RelayLimits
	host   sdk.Host
	cancel context.CancelFunc
	done   chan struct{}
}

func (r *relay) Describe() sdk.Description {
	return sdk.Description{
		Name: "relay", Version: "0.1.0",
		Summary:      "circuit relay v2 for nodes behind NAT, with limits, announced in the DHT",
		Capabilities: []string{"relay"},
		Permissions:  []string{"relay"}, // README.md, "Permissions"
		ConfigSchema: `{"type":"object","properties":{"max_reservations":{"type":"integer","minimum":1},` +
			`"max_reservations_per_ip":{"type":"integer","minimum":1},"max_circuits":{"type":"integer","minimum":1},` +
			`"circuit_duration":{"type":"string"},"circuit_bytes_mb":{"type":"integer","minimum":1},` +
			`"reservation_ttl":{"type":"string"}},"additionalProperties":false}`,
	}
}

func (r *relay) ValidateConfig(raw json.RawMessage) sdk.Diagnostics {
	_, diags := parseConfig(raw)
	return diags
}

// parseConfig decodes and checks a config, and returns the limits it sets.
func parseConfig(raw json.RawMessage) (sdk.RelayLimits, sdk.Diagnostics) {
	c := config{MaxReservations: 128, MaxReservationsPerIP: 8, MaxCircuits: 16, CircuitBytesMB: 16}
	if err := sdk.DecodeStrict(raw, &c); err != nil {
		return sdk.RelayLimits{}, sdk.Diagnostics{sdk.Errorf("config is not valid: %v", err)}
	}
	var diags sdk.Diagnostics
	duration := func(attr, s string, def time.Duration) time.Duration {
		if s == "" {
			return def
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < time.Second {
			diags = append(diags, sdk.Errorf("%q is not a duration of at least 1s", s).WithAttribute(attr))
		}
		return d.Truncate(time.Second)
	}
	positive := func(attr string, v int64) {
		if v <= 0 {
			diags = append(diags, sdk.Errorf("%s must be at least 1", attr).WithAttribute(attr))
		}
	}
	positive("max_reservations", int64(c.MaxReservations))
	positive("max_reservations_per_ip", int64(c.MaxReservationsPerIP))
	positive("max_circuits", int64(c.MaxCircuits))
	positive("circuit_bytes_mb", c.CircuitBytesMB)
	limits := sdk.RelayLimits{
		MaxReservations: int(c.MaxReservations), MaxReservationsPerIP: int(c.MaxReservationsPerIP),
		MaxCircuits:     int(c.MaxCircuits),
		CircuitDuration: duration("circuit_duration", c.CircuitDuration, 2*time.Minute),
		CircuitBytes:    c.CircuitBytesMB << 20,
		ReservationTTL:  duration("reservation_ttl", c.ReservationTTL, time.Hour),
	}
	return limits, diags
}

func (r *relay) Start(ctx context.Context, raw json.RawMessage, host sdk.Host) sdk.Diagnostics {
	limits, diags := parseConfig(raw)
	if diags.HasError() {
		return diags
	}
	r.limits, r.host = limits, host
	if _, err := host.StartRelay(ctx, r.limits); err != nil {
		return sdk.Diagnostics{sdk.Errorf("start the relay service: %v", err)}
	}
	var loopCtx context.Context
	loopCtx, r.cancel = context.WithCancel(context.Background())
	r.done = make(chan struct{})
	go r.report(loopCtx)
	host.Logger().Info("relay running", "max_reservations", r.limits.MaxReservations,
		"circuit_bytes", r.limits.CircuitBytes, "circuit_duration_s", int64(r.limits.CircuitDuration/time.Second))
	return nil
}

// report mirrors the relay's counters into the role's metrics. The node
// also exports libp2p's own relay metrics (libp2p_relaysvc_*: reservations,
// connections, bytes).
func (r *relay) report(ctx context.Context) {
	defer close(r.done)
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		if st, err := r.host.RelayStatus(ctx); err == nil {
			r.host.Gauge("reservations_accepted", "relay reservations accepted since start", float64(st.Reservations))
			r.host.Gauge("reservations_refused", "relay reservations refused by the relay_reserve policy", float64(st.Refused))
			r.host.Gauge("circuits", "relayed connections opened since start", float64(st.Circuits))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Stop leaves the service to the node: it ends with the node.
func (r *relay) Stop(context.Context) sdk.Diagnostics {
	if r.cancel != nil {
		r.cancel()
		<-r.done
	}
	return nil
}

// Command answers `avnode roles call relay status`.
func (r *relay) Command(ctx context.Context, name string, args []string) (any, sdk.Diagnostics) {
	if name != "status" || len(args) != 0 {
		return nil, sdk.Diagnostics{sdk.Errorf("unknown command %q %v; the relay takes: status", name, args)}
	}
	st, err := r.host.RelayStatus(ctx)
	if err != nil {
		return nil, sdk.Diagnostics{sdk.Errorf("relay status: %v", err)}
	}
	return map[string]any{"running": st.Running, "reservations": st.Reservations, "refused": st.Refused,
		"circuits": st.Circuits, "limits": limitsJSON(r.limits)}, nil
}

// limitsJSON is how the status command shows the limits: in the units and
// under the keys of the node's RelayConfig, zero values left out.
func limitsJSON(l sdk.RelayLimits) map[string]int64 {
	out := map[string]int64{}
	for key, v := range map[string]int64{
		"max_reservations": int64(l.MaxReservations), "max_reservations_per_ip": int64(l.MaxReservationsPerIP),
		"max_circuits": int64(l.MaxCircuits), "circuit_duration_seconds": int64(l.CircuitDuration / time.Second),
		"circuit_bytes": l.CircuitBytes, "reservation_ttl_seconds": int64(l.ReservationTTL / time.Second),
	} {
		if v != 0 {
			out[key] = v
		}
	}
	return out
}

// A signature slip in a method fails the build, not the role: sdk.Serve
// finds Command by a type assertion.
var (
	_ sdk.Role      = (*relay)(nil)
	_ sdk.Commander = (*relay)(nil)
)
