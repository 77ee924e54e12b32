package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avnode/avnode/sdk"
	"github.com/avnode/avnode/sdk/pluginpb"
)

const (
	cidA = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
	cidB = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
)

func TestValidateConfig(t *testing.T) {
	cases := []struct {
		name   string
		config string
		errors []string // attributes of the error diagnostics, in order
		warns  []string // attributes of the warnings
	}{
		{"good", `{"cids": ["` + cidA + `", "` + cidB + `"], "interval": "1h"}`, nil, nil},
		{"defaults", `{"cids": ["` + cidA + `"]}`, nil, nil},
		{"empty", `{}`, nil, []string{"cids"}},
		{"bad CID at index 2", `{"cids": ["` + cidA + `", "` + cidB + `", "bafy-nope"]}`, []string{"cids[2]"}, nil},
		{"duplicate", `{"cids": ["` + cidA + `", "` + cidA + `"]}`, nil, []string{"cids[1]"}},
		{"unknown key", `{"cids": [], "intervall": "1m"}`, []string{"intervall"}, nil},
		{"cids not a list", `{"cids": "` + cidA + `"}`, []string{"cids"}, nil},
		{"bad interval", `{"cids": ["` + cidA + `"], "interval": "often"}`, []string{"interval"}, nil},
		{"interval too short", `{"cids": ["` + cidA + `"], "interval": "1s"}`, []string{"interval"}, nil},
		{"not JSON", `{"cids": [`, []string{""}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			diags := (&Pinner{}).ValidateConfig(json.RawMessage(c.config))
			var errs, warns []string
			for _, d := range diags {
				if d.IsError() {
					errs = append(errs, d.Attribute)
				} else {
					warns = append(warns, d.Attribute)
				}
			}
			if strings.Join(errs, ",") != strings.Join(c.errors, ",") || strings.Join(warns, ",") != strings.Join(c.warns, ",") {
				t.Errorf("diagnostics %v: errors at %q, warnings at %q; want %q and %q", diags, errs, warns, c.errors, c.warns)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	d := (&Pinner{}).Describe()
	if d.Name != "pinner" || !json.Valid([]byte(d.ConfigSchema)) || strings.Contains(d.ConfigSchema, "\n") {
		t.Errorf("Describe = %+v", d)
	}
}

// fakeHost is the node as far as the pinner uses it.
type fakeHost struct {
	sdk.Host // calls the pinner does not make panic
	mu       sync.Mutex
	fetched  []string
	pinned   map[string]string
	gauge    float64
	fail     map[string]bool // Fetch of these fails with NotFound
}

func (f *fakeHost) Fetch(_ context.Context, target string) (*pluginpb.FetchResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fetched = append(f.fetched, target)
	if f.fail[strings.TrimPrefix(target, "/cid/")] {
		return nil, errors.New("not found")
	}
	return &pluginpb.FetchResult{}, nil
}

func (f *fakeHost) Pin(_ context.Context, cid, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pinned[cid] = reason
	return nil
}

func (f *fakeHost) Logger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func (f *fakeHost) Gauge(name, _ string, v float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if name == "pinned" {
		f.gauge = v
	}
}

func (f *fakeHost) fetches() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.fetched)
}

func TestPinsEveryCIDAndRechecks(t *testing.T) {
	f := &fakeHost{pinned: map[string]string{}, fail: map[string]bool{cidB: true}}
	p := &Pinner{}
	cfg := json.RawMessage(`{"cids": ["` + cidA + `", "` + cidB + `"], "interval": "10s"}`)
	if diags := p.Start(context.Background(), cfg, f); diags.HasError() {
		t.Fatal(diags.Err())
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.fetches() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the first pass did not run")
		}
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if diags := p.Stop(ctx); len(diags) != 0 {
		t.Errorf("Stop = %v", diags)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fetched[0] != "/cid/"+cidA || f.pinned[cidA] != "pinner" {
		t.Errorf("fetched %v, pinned %v", f.fetched, f.pinned)
	}
	if _, ok := f.pinned[cidB]; ok {
		t.Error("pinned a CID whose fetch failed")
	}
	if f.gauge != 1 {
		t.Errorf("gauge pinned = %v, want 1", f.gauge)
	}
	if p.Stop(ctx) != nil {
		t.Error("a second Stop should do nothing")
	}
}

func TestStartRefusesABadConfig(t *testing.T) {
	p := &Pinner{}
	if diags := p.Start(context.Background(), json.RawMessage(`{"cids": ["nope"]}`), &fakeHost{}); !diags.HasError() {
		t.Fatal("Start accepted a bad CID")
	}
	if p.Stop(context.Background()) != nil {
		t.Error("Stop after a failed Start should do nothing")
	}
}
