// Command testrole is a role plugin for the SDK's own tests: it calls the
// host API as its config asks, so the tests can see what crossed the wire.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"

	"github.com/avnode/avnode/sdk"
)

type config struct {
	FailValidate bool `json:"fail_validate"` // an error diagnostic on "fail_validate"
	Warn         bool `json:"warn"`          // a warning from ValidateConfig
	PanicStart   bool `json:"panic_start"`   // panic in Start
	HangStop     bool `json:"hang_stop"`     // Stop never returns
	Subscribe    bool `json:"subscribe"`     // report events as /seen/<kind> records
}

type role struct {
	mu     sync.Mutex
	cfg    config
	host   sdk.Host
	cancel context.CancelFunc
}

func (r *role) Describe() sdk.Description {
	return sdk.Description{
		Name: "testrole", Version: "1.2.3", Summary: "exercises the SDK in its tests",
		Capabilities: []string{"test", "events"}, ConfigSchema: `{"type":"object"}`,
	}
}

func (r *role) ValidateConfig(raw json.RawMessage) sdk.Diagnostics {
	var c config
	if err := json.Unmarshal(raw, &c); err != nil {
		return sdk.FromErr(err)
	}
	var diags sdk.Diagnostics
	if c.FailValidate {
		diags = append(diags, sdk.Errorf("asked to fail").WithAttribute("fail_validate").WithDetail("set it to false"))
	}
	if c.Warn {
		diags = append(diags, sdk.Warningf("a warning"))
	}
	return diags
}

func (r *role) Start(ctx context.Context, raw json.RawMessage, host sdk.Host) sdk.Diagnostics {
	var c config
	if err := json.Unmarshal(raw, &c); err != nil {
		return sdk.FromErr(err)
	}
	if c.PanicStart {
		panic("asked to panic")
	}
	if err := host.Pin(ctx, "bafytest", "testrole"); err != nil {
		return sdk.FromErr(err)
	}
	_, getErr := host.GetRecord(ctx, "/missing")
	provideErr := host.Provide(ctx, "bafytest")
	host.Logger().With("role_attr", "x").WithGroup("g").Info("started",
		"not_found", sdk.IsNotFound(getErr),
		"unimplemented", sdk.IsUnimplemented(provideErr),
		"get_error", fmt.Sprint(getErr))
	host.Gauge("up", "1 when started", 1)
	host.CounterAdd("starts", "", 1)

	loop, cancel := context.WithCancel(context.Background())
	r.mu.Lock()
	r.cfg, r.host, r.cancel = c, host, cancel
	r.mu.Unlock()
	if c.Subscribe {
		events, err := host.Subscribe(loop, "test.kind")
		if err != nil {
			cancel()
			return sdk.FromErr(err)
		}
		go func() {
			for ev := range events {
				_ = host.PutRecord(loop, "/seen/"+ev.Kind, []byte(ev.Attrs["n"]))
			}
		}()
	}
	return nil
}

func (r *role) Stop(ctx context.Context) sdk.Diagnostics {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cfg.HangStop {
		select {}
	}
	r.host.Logger().Info("stopping", "deadline_set", strconv.FormatBool(hasDeadline(ctx)))
	r.cancel()
	return nil
}

func hasDeadline(ctx context.Context) bool { _, ok := ctx.Deadline(); return ok }

func main() { sdk.Serve(&role{}) }
