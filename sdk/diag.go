package sdk

import (
	"fmt"
	"strings"

	"github.com/avnode/avnode/sdk/pluginpb"
)

// Severity says whether a Diagnostic stops the operation (SeverityError) or
// is only reported (SeverityWarning).
type Severity int

// The severities match the wire values of pluginpb.Diagnostic_Severity. Any
// other value, the zero value included, counts as an error: a diagnostic
// nobody classified must not pass silently.
const (
	SeverityError   Severity = 1
	SeverityWarning Severity = 2
)

func (s Severity) String() string {
	if s == SeverityWarning {
		return "warning"
	}
	return "error"
}

// Diagnostic is an error or warning with structure: what happened (Summary),
// why and what to do about it (Detail), and the config key it is about
// (Attribute, e.g. "interval" or "cids[2]"; empty when it is about no key).
type Diagnostic struct {
	Severity  Severity
	Summary   string
	Detail    string
	Attribute string
}

// Errorf makes an error diagnostic whose summary is formatted as by fmt.Sprintf.
// Chain WithDetail and WithAttribute to say more:
//
//	sdk.Errorf("%q is not a CID", s).WithAttribute("cids[2]").WithDetail("CIDs look like bafy…")
func Errorf(format string, args ...any) Diagnostic {
	return Diagnostic{Severity: SeverityError, Summary: fmt.Sprintf(format, args...)}
}

// Warningf makes a warning diagnostic whose summary is formatted as by fmt.Sprintf.
func Warningf(format string, args ...any) Diagnostic {
	return Diagnostic{Severity: SeverityWarning, Summary: fmt.Sprintf(format, args...)}
}

// WithDetail returns d with its detail formatted as by fmt.Sprintf.
func (d Diagnostic) WithDetail(format string, args ...any) Diagnostic {
	d.Detail = fmt.Sprintf(format, args...)
	return d
}

// WithAttribute returns d about the config key attr.
func (d Diagnostic) WithAttribute(attr string) Diagnostic {
	d.Attribute = attr
	return d
}

// IsError reports whether d stops the operation.
func (d Diagnostic) IsError() bool { return d.Severity != SeverityWarning }

// message is "attribute: summary (detail)", the shape the node logs too.
func (d Diagnostic) message() string {
	var b strings.Builder
	if d.Attribute != "" {
		b.WriteString(d.Attribute)
		b.WriteString(": ")
	}
	b.WriteString(d.Summary)
	if d.Detail != "" {
		b.WriteString(" (")
		b.WriteString(d.Detail)
		b.WriteString(")")
	}
	return b.String()
}

// String is "error: attribute: summary (detail)".
func (d Diagnostic) String() string { return d.Severity.String() + ": " + d.message() }

// Diagnostics is what ValidateConfig, Start and Stop return. Nil or only
// warnings means success.
type Diagnostics []Diagnostic

// FromErr turns an error into one error diagnostic; nil gives nil.
func FromErr(err error) Diagnostics {
	if err == nil {
		return nil
	}
	return Diagnostics{{Severity: SeverityError, Summary: err.Error()}}
}

// HasError reports whether any diagnostic is an error.
func (ds Diagnostics) HasError() bool {
	for _, d := range ds {
		if d.IsError() {
			return true
		}
	}
	return false
}

// Err returns the error diagnostics as one error, or nil when there are
// none; warnings are left out.
func (ds Diagnostics) Err() error {
	var errs Diagnostics
	for _, d := range ds {
		if d.IsError() {
			errs = append(errs, d)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return diagnosticsError(errs)
}

type diagnosticsError Diagnostics

func (e diagnosticsError) Error() string {
	msgs := make([]string, len(e))
	for i, d := range e {
		msgs[i] = d.message()
	}
	return strings.Join(msgs, "; ")
}

// Proto converts ds to its wire form.
func (ds Diagnostics) Proto() *pluginpb.Diagnostics {
	out := &pluginpb.Diagnostics{Diagnostics: make([]*pluginpb.Diagnostic, 0, len(ds))}
	for _, d := range ds {
		sev := pluginpb.Diagnostic_SEVERITY_ERROR
		if d.Severity == SeverityWarning {
			sev = pluginpb.Diagnostic_SEVERITY_WARNING
		}
		out.Diagnostics = append(out.Diagnostics, &pluginpb.Diagnostic{
			Severity: sev, Summary: d.Summary, Detail: d.Detail, Attribute: d.Attribute,
		})
	}
	return out
}

// DiagnosticsFromProto converts diagnostics from their wire form. An
// unspecified severity becomes an error.
func DiagnosticsFromProto(p *pluginpb.Diagnostics) Diagnostics {
	if len(p.GetDiagnostics()) == 0 {
		return nil
	}
	out := make(Diagnostics, 0, len(p.GetDiagnostics()))
	for _, d := range p.GetDiagnostics() {
		sev := SeverityError
		if d.GetSeverity() == pluginpb.Diagnostic_SEVERITY_WARNING {
			sev = SeverityWarning
		}
		out = append(out, Diagnostic{Severity: sev, Summary: d.GetSummary(), Detail: d.GetDetail(), Attribute: d.GetAttribute()})
	}
	return out
}
