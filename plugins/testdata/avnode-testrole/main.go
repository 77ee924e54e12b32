// Command avnode-testrole is a role plugin for the node's tests: it calls the
// host API as its config asks and reports what it saw in a file.
package main

import (
	"context"
	"encoding/json"
	"os"
	"strconv"

	"github.com/avnode/avnode/sdk"
)

type config struct {
	Report       string `json:"report"`         // file to write the report to
	Resolve      string `json:"resolve"`        // a name to resolve
	Fetch        string `json:"fetch"`          // a CID to fetch and pin
	CrashAtStart bool   `json:"crash_at_start"` // exit during Start
}

type report struct {
	PID      int    `json:"pid"`
	Key      string `json:"key,omitempty"`
	Pinned   string `json:"pinned,omitempty"`
	Error    string `json:"error,omitempty"`
	Protocol int    `json:"protocol"`
}

type testRole struct{ cfg config }

func (r *testRole) Describe() sdk.Description {
	return sdk.Description{Name: "testrole", Version: "0.0.1", Summary: "calls the host API for tests",
		Capabilities: []string{"test"}, ConfigSchema: `{"type":"object"}`}
}

func (r *testRole) ValidateConfig(raw json.RawMessage) sdk.Diagnostics {
	if err := json.Unmarshal(raw, &r.cfg); err != nil {
		return sdk.Diagnostics{{Severity: sdk.SeverityError, Summary: "config is not valid", Detail: err.Error()}}
	}
	return nil
}

func (r *testRole) Start(ctx context.Context, raw json.RawMessage, host sdk.Host) sdk.Diagnostics {
	if r.cfg.CrashAtStart {
		os.Exit(3)
	}
	rep := report{PID: os.Getpid(), Protocol: sdk.ProtocolVersion}
	if r.cfg.Resolve != "" {
		res, err := host.Resolve(ctx, r.cfg.Resolve)
		if err != nil {
			rep.Error = err.Error()
		} else {
			rep.Key = res.GetKey()
		}
	}
	if r.cfg.Fetch != "" {
		if _, err := host.Fetch(ctx, "/cid/"+r.cfg.Fetch); err != nil {
			rep.Error = err.Error()
		} else if err := host.Pin(ctx, r.cfg.Fetch, "testrole"); err != nil {
			rep.Error = err.Error()
		} else {
			rep.Pinned = r.cfg.Fetch
		}
	}
	host.Logger().Info("testrole started", "pid", strconv.Itoa(os.Getpid()))
	if r.cfg.Report != "" {
		data, _ := json.Marshal(rep)
		os.WriteFile(r.cfg.Report+".tmp", data, 0o600)
		os.Rename(r.cfg.Report+".tmp", r.cfg.Report)
	}
	return nil
}

func (r *testRole) Stop(context.Context) sdk.Diagnostics { return nil }

func main() {
	if v := os.Getenv("TESTROLE_PROTOCOL_VERSION"); v != "" {
		n, _ := strconv.Atoi(v)
		sdk.Handshake.ProtocolVersion = uint(n)
	}
	sdk.Serve(&testRole{})
}
