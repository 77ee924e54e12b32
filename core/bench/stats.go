package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Dist is a latency distribution: its percentiles in milliseconds and the
// samples they come from (kept for the plot).
type Dist struct {
	P50     float64   `json:"p50_ms"`
	P90     float64   `json:"p90_ms"`
	P99     float64   `json:"p99_ms"`
	Count   int       `json:"count"`
	Failed  int       `json:"failed"`
	Samples []float64 `json:"samples_ms"`
}

// latencies collects timings, successful or not, from one goroutine.
type latencies struct {
	ok     []time.Duration
	failed int
}

func (l *latencies) add(d time.Duration, err error) {
	if err != nil {
		l.failed++
		return
	}
	l.ok = append(l.ok, d)
}

func (l *latencies) dist() Dist {
	ms := make([]float64, len(l.ok))
	for i, d := range l.ok {
		ms[i] = float64(d.Microseconds()) / 1000
	}
	slices.Sort(ms)
	return Dist{P50: percentile(ms, 50), P90: percentile(ms, 90), P99: percentile(ms, 99),
		Count: len(ms), Failed: l.failed, Samples: ms}
}

// p50Micros is the median of l's successful timings in microseconds; 0
// for none.
func p50Micros(l *latencies) float64 {
	if l == nil || len(l.ok) == 0 {
		return 0
	}
	us := make([]float64, len(l.ok))
	for i, d := range l.ok {
		us[i] = float64(d.Nanoseconds()) / 1e3
	}
	slices.Sort(us)
	return percentile(us, 50)
}

// percentile of sorted values, nearest rank; 0 for none.
func percentile(sorted []float64, p int) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100
	return sorted[max(rank, 1)-1]
}

// Row is one line of the table: what avnode did and what the bare layer
// under it did in the same run.
type Row struct {
	Name     string  `json:"name"`
	Baseline string  `json:"baseline"`
	Unit     string  `json:"unit"`
	Value    Value   `json:"value"`
	Base     Value   `json:"base"`
	Ratio    float64 `json:"ratio"` // value / base: of the p50 for latencies
	Note     string  `json:"note,omitempty"`
}

// Value is either a distribution or one number.
type Value struct {
	Dist   *Dist    `json:"dist,omitempty"`
	Number *float64 `json:"number,omitempty"`
}

func number(v float64) Value { return Value{Number: &v} }

func dist(l *latencies) Value { d := l.dist(); return Value{Dist: &d} }

func (v Value) main() float64 {
	if v.Dist != nil {
		return v.Dist.P50
	}
	if v.Number != nil {
		return *v.Number
	}
	return 0
}

func (v Value) String() string {
	switch {
	case v.Dist != nil:
		d := v.Dist
		s := fmt.Sprintf("%s / %s / %s", ms(d.P50), ms(d.P90), ms(d.P99))
		if d.Failed > 0 {
			s += fmt.Sprintf(" (%d failed)", d.Failed)
		}
		return s
	case v.Number != nil:
		return trimFloat(*v.Number)
	}
	return "-"
}

func ms(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func trimFloat(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// row builds a row and its ratio.
func row(name, unit string, value Value, baseline string, base Value, note string) Row {
	r := Row{Name: name, Unit: unit, Value: value, Baseline: baseline, Base: base, Note: note}
	if b := base.main(); b != 0 {
		r.Ratio = value.main() / b
	}
	return r
}

// PrintTable writes the rows as an aligned table.
func PrintTable(w io.Writer, rep *Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "MEASURE\tUNIT\tAVNODE\tBASELINE\tBASE VALUE\tRATIO\tNOTE\n")
	for _, r := range rep.Rows {
		ratio := "-"
		if r.Ratio != 0 {
			ratio = fmt.Sprintf("%.2f", r.Ratio)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Unit, r.Value, r.Baseline, r.Base, ratio, r.Note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%d nodes on 127.0.0.1 (TCP), %s; latencies are p50 / p90 / p99 in ms; ratio = avnode / baseline (of the p50).\n",
		rep.Nodes, strings.TrimSpace(rep.Machine))
	return err
}

// Problems lists what makes the report incomplete: a row without both of
// its values or their ratio, a distribution with nothing measured or with
// failures. A sound run has none.
func (r *Report) Problems() []string {
	var out []string
	for _, row := range r.Rows {
		if row.Value.missing() || row.Base.missing() || row.Ratio <= 0 {
			out = append(out, fmt.Sprintf("%s: avnode %s, baseline %s, ratio %v: a row needs both and their ratio", row.Name, row.Value, row.Base, row.Ratio))
		}
		if d := row.Value.Dist; d != nil && (d.Count == 0 || d.Failed != 0) {
			out = append(out, fmt.Sprintf("%s: %d measured, %d failed", row.Name, d.Count, d.Failed))
		}
	}
	return out
}

func (v Value) missing() bool { return v.Dist == nil && v.Number == nil }
