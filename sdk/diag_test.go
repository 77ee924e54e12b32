package sdk

import (
	"errors"
	"testing"

	"github.com/avnode/avnode/sdk/pluginpb"
)

func TestDiagnosticConstructors(t *testing.T) {
	d := Errorf("%q is not a CID", "xyz").WithAttribute("cids[2]").WithDetail("CIDs start with %s", "bafy")
	want := Diagnostic{Severity: SeverityError, Summary: `"xyz" is not a CID`, Detail: "CIDs start with bafy", Attribute: "cids[2]"}
	if d != want {
		t.Fatalf("Errorf chain = %+v, want %+v", d, want)
	}
	if got := d.String(); got != `error: cids[2]: "xyz" is not a CID (CIDs start with bafy)` {
		t.Errorf("String() = %q", got)
	}
	w := Warningf("interval %s is short", "1s")
	if w.Severity != SeverityWarning || w.IsError() || w.String() != "warning: interval 1s is short" {
		t.Errorf("Warningf = %+v, %q", w, w.String())
	}
	if (Diagnostic{Summary: "unclassified"}).IsError() != true {
		t.Error("a diagnostic without severity must count as an error")
	}
}

func TestDiagnosticsHasErrorAndErr(t *testing.T) {
	cases := []struct {
		name    string
		ds      Diagnostics
		hasErr  bool
		errText string
	}{
		{"nil", nil, false, ""},
		{"warnings only", Diagnostics{Warningf("w1"), Warningf("w2")}, false, ""},
		{"one error", Diagnostics{Errorf("bad").WithAttribute("a")}, true, "a: bad"},
		{"errors and a warning", Diagnostics{Errorf("e1"), Warningf("w"), Errorf("e2").WithDetail("d")}, true, "e1; e2 (d)"},
		{"zero severity", Diagnostics{{Summary: "z"}}, true, "z"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.ds.HasError(); got != c.hasErr {
				t.Errorf("HasError() = %v, want %v", got, c.hasErr)
			}
			err := c.ds.Err()
			if (err != nil) != c.hasErr {
				t.Fatalf("Err() = %v, want error: %v", err, c.hasErr)
			}
			if err != nil && err.Error() != c.errText {
				t.Errorf("Err() = %q, want %q", err.Error(), c.errText)
			}
		})
	}
}

func TestFromErr(t *testing.T) {
	if FromErr(nil) != nil {
		t.Error("FromErr(nil) must be nil")
	}
	ds := FromErr(errors.New("boom"))
	if len(ds) != 1 || !ds.HasError() || ds[0].Summary != "boom" {
		t.Errorf("FromErr = %+v", ds)
	}
}

func TestDiagnosticsProtoRoundTrip(t *testing.T) {
	ds := Diagnostics{
		Errorf("e").WithDetail("d").WithAttribute("cids[0]"),
		Warningf("w"),
	}
	p := ds.Proto()
	if len(p.GetDiagnostics()) != 2 ||
		p.GetDiagnostics()[0].GetSeverity() != pluginpb.Diagnostic_SEVERITY_ERROR ||
		p.GetDiagnostics()[1].GetSeverity() != pluginpb.Diagnostic_SEVERITY_WARNING ||
		p.GetDiagnostics()[0].GetAttribute() != "cids[0]" {
		t.Fatalf("Proto() = %v", p)
	}
	back := DiagnosticsFromProto(p)
	if len(back) != 2 || back[0] != ds[0] || back[1] != ds[1] {
		t.Errorf("round trip = %+v, want %+v", back, ds)
	}
	if got := (Diagnostics)(nil).Proto(); got == nil || len(got.GetDiagnostics()) != 0 {
		t.Errorf("nil.Proto() = %v", got)
	}
	if DiagnosticsFromProto(nil) != nil {
		t.Error("DiagnosticsFromProto(nil) must be nil")
	}
	unspecified := DiagnosticsFromProto(&pluginpb.Diagnostics{Diagnostics: []*pluginpb.Diagnostic{{Summary: "x"}}})
	if !unspecified.HasError() {
		t.Error("an unspecified severity from the wire must count as an error")
	}
}
