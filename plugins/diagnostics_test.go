package plugins

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/avnode/avnode/sdk/pluginpb"
)

// A role's warnings reach the node's log with the role named, and only
// its errors fail the call.
func TestDiagnosticsErrorLogsWarnings(t *testing.T) {
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	warning := &pluginpb.Diagnostic{Severity: pluginpb.Diagnostic_SEVERITY_WARNING, Summary: "cache_entries is large", Attribute: "cache_entries"}
	failure := &pluginpb.Diagnostic{Severity: pluginpb.Diagnostic_SEVERITY_ERROR, Summary: "not a duration", Attribute: "fetch_timeout"}

	err := diagnosticsError(log, "receiver", "config", &pluginpb.Diagnostics{Diagnostics: []*pluginpb.Diagnostic{warning}})
	if err != nil {
		t.Fatalf("a warning alone failed the call: %v", err)
	}
	if got := logged.String(); !strings.Contains(got, "role=receiver") || !strings.Contains(got, "cache_entries: cache_entries is large") {
		t.Fatalf("warning not logged with its role: %q", got)
	}

	logged.Reset()
	err = diagnosticsError(log, "receiver", "config", &pluginpb.Diagnostics{Diagnostics: []*pluginpb.Diagnostic{warning, failure}})
	if err == nil || err.Error() != "role receiver: config: fetch_timeout: not a duration" {
		t.Fatalf("error = %v, want the error diagnostic alone", err)
	}
	if !strings.Contains(logged.String(), "cache_entries is large") {
		t.Fatalf("warning beside an error not logged: %q", logged.String())
	}
}
