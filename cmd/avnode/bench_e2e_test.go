package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/avnode/avnode/core/bench"
)

// TestBenchCommand runs `avnode bench` as a user would, on a small network,
// and reads what it writes: every row measured beside its baseline, the
// JSON and the plots in --out.
func TestBenchCommand(t *testing.T) {
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, avnodeBin, "bench", "--nodes", "10", "--fetch-mib", "2", "--restart-for", "2s", "--idle-for", "2s",
		"--ready-trials", "1", "--dir", t.TempDir(), "--out", out, "--json")
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("avnode bench: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "bench: avnode: 10 nodes up") {
		t.Errorf("no progress on stderr:\n%s", stderr.String())
	}
	var rep bench.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, stdout.String())
	}
	want := []string{"resolve cold", "resolve cold, baseline waiting for a majority", "resolve warm", "resolve warm, in the daemon", "publish", "resolve cold, in-process", "resolve warm, in-process",
		"publish, in-process", "fetch 2 MiB, 1 source", "fetch 2 MiB, 1 source, vs memory", "fetch 2 MiB, 3 sources",
		"resolve cold through an estate", "resolve warm through an estate", "estate move → resolve elsewhere",
		"resolve cold, rotated name", "resolve cold, hybrid name", "zone check, hybrid key",
		"churn: resolve after 30 % killed", "churn: resolve while 10 % restarting", "time to ready", "memory per node", "goroutines per node",
		"idle CPU per node"}
	for _, name := range want {
		if rep.Row(name) == nil {
			t.Errorf("no row %q", name)
		}
	}
	for _, p := range rep.Problems() {
		t.Error(p)
	}
	for _, name := range []string{"resolve cold", "resolve warm", "publish", "resolve cold, in-process", "publish, in-process"} {
		if d := rep.Row(name).Value.Dist; d == nil || d.Count != 10 || d.Failed != 0 {
			t.Errorf("%s: %+v; want 10 done, none failed", name, d)
		}
	}
	if r := rep.Row("churn: resolve after 30 % killed"); r != nil && *r.Value.Number < 99.9 {
		t.Errorf("%.1f %% of resolves ok after killing 30 %% of the nodes", *r.Value.Number)
	}

	var saved bench.Report
	data, err := os.ReadFile(filepath.Join(out, "bench.json"))
	if err != nil || json.Unmarshal(data, &saved) != nil || len(saved.Rows) != len(rep.Rows) {
		t.Errorf("--out bench.json: %v, %d rows; want the %d rows printed", err, len(saved.Rows), len(rep.Rows))
	}
	f, err := os.Open(filepath.Join(out, "latency.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if img, err := png.Decode(f); err != nil || img.Bounds().Dx() < 100 {
		t.Errorf("latency.png is not a picture: %v", err)
	}
	if svg, err := os.ReadFile(filepath.Join(out, "latency.svg")); err != nil || !bytes.Contains(svg, []byte("<svg")) {
		t.Errorf("latency.svg: %v", err)
	}
}

func TestBenchRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--nodes", "3"}, {"--kill", "0.95"}, {"--fetch-mib", "0"}, {"--idle-for", "10ms"}} {
		r := cli(t, t.TempDir(), nil, append([]string{"bench"}, args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, args[0]) {
			t.Errorf("avnode bench %v: exit %d, %q; want exit 2 naming %s", args, r.code, r.stderr, args[0])
		}
	}
}
