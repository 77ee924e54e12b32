package bench

import (
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// WritePlot draws the latency distributions of the report, avnode's solid
// and each baseline's dashed in the same colour, as cumulative curves on
// a log scale: how many operations (y) finished within a time (x). The
// file's extension picks the format: .svg, .png or .pdf.
func WritePlot(rep *Report, path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("avnode bench: %d nodes, latency distributions", rep.Nodes)
	p.X.Label.Text = "milliseconds (log scale)"
	p.Y.Label.Text = "share of operations done"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0, 1
	p.Add(plotter.NewGrid())
	p.Legend.Top, p.Legend.Left = false, false
	colour := 0
	for _, r := range rep.Rows {
		if r.Value.Dist == nil || r.Base.Dist == nil {
			continue
		}
		c := plotutil.Color(colour)
		colour++
		if err := addCurve(p, r.Name, r.Value.Dist.Samples, c, false); err != nil {
			return err
		}
		if err := addCurve(p, r.Name+" – "+r.Baseline, r.Base.Dist.Samples, c, true); err != nil {
			return err
		}
	}
	return p.Save(22*vg.Centimeter, 14*vg.Centimeter, path)
}

func addCurve(p *plot.Plot, label string, sorted []float64, c color.Color, dashed bool) error {
	if len(sorted) == 0 {
		return nil
	}
	pts := make(plotter.XYs, len(sorted))
	for i, v := range sorted {
		pts[i].X = math.Max(v, 0.01) // a log scale has no zero
		pts[i].Y = float64(i+1) / float64(len(sorted))
	}
	line, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	line.Color = c
	line.Width = vg.Points(1.5)
	if dashed {
		line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	}
	p.Add(line)
	p.Legend.Add(label, line)
	return nil
}

// WriteFiles writes the report into dir as bench.json, latency.svg and
// latency.png.
func WriteFiles(rep *Report, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.json"), append(data, '\n'), 0o644); err != nil {
		return err
	}
	for _, name := range []string{"latency.svg", "latency.png"} {
		if err := WritePlot(rep, filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
	}
	return nil
}
