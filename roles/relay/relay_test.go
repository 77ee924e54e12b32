package main

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/avnode/avnode/sdk"
	"github.com/avnode/avnode/sdk/sdktest"
)

// start starts a relay with config on h and stops it when the test ends.
func start(t *testing.T, h *sdktest.Host, config string) *relay {
	t.Helper()
	r := &relay{}
	if diags := r.Start(t.Context(), json.RawMessage(config), h); diags.HasError() {
		t.Fatalf("Start(%s): %v", config, diags)
	}
	t.Cleanup(func() { r.Stop(t.Context()) })
	return r
}

func TestConfigBecomesTheRelayLimits(t *testing.T) {
	for _, c := range []struct {
		config string
		want   sdk.RelayLimits
	}{
		{`{}`, sdk.RelayLimits{MaxReservations: 128, MaxReservationsPerIP: 8, MaxCircuits: 16,
			CircuitDuration: 2 * time.Minute, CircuitBytes: 16 << 20, ReservationTTL: time.Hour}},
		{`{"max_reservations":4,"max_reservations_per_ip":2,"max_circuits":3,"circuit_duration":"90.5s","circuit_bytes_mb":1,"reservation_ttl":"10m"}`,
			sdk.RelayLimits{MaxReservations: 4, MaxReservationsPerIP: 2, MaxCircuits: 3,
				CircuitDuration: 90 * time.Second, CircuitBytes: 1 << 20, ReservationTTL: 10 * time.Minute}},
	} {
		t.Run(c.config, func(t *testing.T) {
			h := sdktest.NewHost(t)
			start(t, h, c.config)
			if got, ok := h.RelayLimits(); !ok || got != c.want {
				t.Errorf("the node's relay runs with %+v (started %v), want %+v", got, ok, c.want)
			}
		})
	}
}

func TestStartTakesTheConfigItIsGiven(t *testing.T) {
	h := sdktest.NewHost(t)
	r := &relay{}
	if diags := r.ValidateConfig(json.RawMessage(`{"max_reservations":1}`)); len(diags) != 0 {
		t.Fatal(diags)
	}
	if r.limits != (sdk.RelayLimits{}) {
		t.Errorf("ValidateConfig changed the relay: %+v", r.limits)
	}
	start(t, h, `{"max_reservations":7}`)
	if got, _ := h.RelayLimits(); got.MaxReservations != 7 {
		t.Errorf("max reservations = %d, want Start's 7", got.MaxReservations)
	}
}

func TestValidateConfigNamesTheKey(t *testing.T) {
	for _, c := range []struct{ config, attr, want string }{
		{`{"max_reservations":0}`, "max_reservations", "at least 1"},
		{`{"max_circuits":-1}`, "max_circuits", "at least 1"},
		{`{"circuit_bytes_mb":0}`, "circuit_bytes_mb", "at least 1"},
		{`{"circuit_duration":"500ms"}`, "circuit_duration", "at least 1s"},
		{`{"reservation_ttl":"soon"}`, "reservation_ttl", "at least 1s"},
		{`{"max_reservation":3}`, "", "unknown field"},
	} {
		t.Run(c.config, func(t *testing.T) {
			diags := (&relay{}).ValidateConfig(json.RawMessage(c.config))
			if len(diags) != 1 || !diags.HasError() || diags[0].Attribute != c.attr || !strings.Contains(diags[0].Summary, c.want) {
				t.Errorf("diagnostics = %+v, want one error at %q saying %q", diags, c.attr, c.want)
			}
			h := sdktest.NewHost(t)
			if diags := (&relay{}).Start(t.Context(), json.RawMessage(c.config), h); !diags.HasError() {
				t.Error("Start took a config ValidateConfig refuses")
			}
			if _, started := h.RelayLimits(); started {
				t.Error("the relay started with a refused config")
			}
		})
	}
}

func TestSchemaAgreesWithConfig(t *testing.T) {
	sdktest.CheckSchema(t, (&relay{}).Describe().ConfigSchema, config{})
}

func TestCountersBecomeMetrics(t *testing.T) {
	h := sdktest.NewHost(t)
	h.SetRelayStats(sdk.RelayStats{Reservations: 5, Refused: 2, Circuits: 3})
	start(t, h, `{}`)
	want := map[string]float64{"reservations_accepted": 5, "reservations_refused": 2, "circuits": 3}
	sdktest.Eventually(t, 5*time.Second, "the relay's gauges", func() error {
		for name, v := range want {
			if got, ok := h.GaugeValue(name); !ok || got != v {
				return fmt.Errorf("%s = %v (set %v), want %v", name, got, ok, v)
			}
		}
		return nil
	})
}

func TestStatusCommand(t *testing.T) {
	h := sdktest.NewHost(t)
	h.SetRelayStats(sdk.RelayStats{Reservations: 5, Refused: 2, Circuits: 3})
	r := start(t, h, `{"max_reservations":4,"circuit_duration":"30s"}`)

	out, diags := r.Command(t.Context(), "status", nil)
	if diags.HasError() {
		t.Fatal(diags)
	}
	// What `avnode roles call relay status` prints.
	data, _ := json.Marshal(out)
	var got map[string]any
	json.Unmarshal(data, &got)
	want := map[string]any{"running": true, "reservations": 5.0, "refused": 2.0, "circuits": 3.0,
		"limits": map[string]any{"max_reservations": 4.0, "max_reservations_per_ip": 8.0, "max_circuits": 16.0,
			"circuit_duration_seconds": 30.0, "circuit_bytes": float64(16 << 20), "reservation_ttl_seconds": 3600.0}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("status = %s,\nwant %v", data, want)
	}
	if _, diags := r.Command(t.Context(), "stats", nil); !diags.HasError() || !strings.Contains(diags[0].Summary, "takes: status") {
		t.Errorf("unknown command = %v, want the commands listed", diags)
	}
}
