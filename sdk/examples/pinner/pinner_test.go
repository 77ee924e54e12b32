package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/avnode/avnode/sdk/sdktest"
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

func TestPinsEveryCIDAndRechecks(t *testing.T) {
	f := sdktest.NewHost(t)
	f.AddFileAs(cidA, "content of A") // cidB is nowhere: its fetch fails
	p := &Pinner{}
	cfg := json.RawMessage(`{"cids": ["` + cidA + `", "` + cidB + `"], "interval": "10s"}`)
	if diags := p.Start(context.Background(), cfg, f); diags.HasError() {
		t.Fatal(diags.Err())
	}
	sdktest.Eventually(t, 5*time.Second, "the first pass", func() error {
		if n := len(f.Calls("Fetch")); n < 2 {
			return fmt.Errorf("%d fetches", n)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if diags := p.Stop(ctx); len(diags) != 0 {
		t.Errorf("Stop = %v", diags)
	}
	fetched, pinned := f.Calls("Fetch"), f.Pins()
	if fetched[0] != "/cid/"+cidA || pinned[cidA] != "pinner" {
		t.Errorf("fetched %v, pinned %v", fetched, pinned)
	}
	if _, ok := pinned[cidB]; ok {
		t.Error("pinned a CID whose fetch failed")
	}
	if gauge, _ := f.GaugeValue("pinned"); gauge != 1 {
		t.Errorf("gauge pinned = %v, want 1", gauge)
	}
	if p.Stop(ctx) != nil {
		t.Error("a second Stop should do nothing")
	}
}

func TestStartRefusesABadConfig(t *testing.T) {
	p := &Pinner{}
	if diags := p.Start(context.Background(), json.RawMessage(`{"cids": ["nope"]}`), sdktest.NewHost(t)); !diags.HasError() {
		t.Fatal("Start accepted a bad CID")
	}
	if p.Stop(context.Background()) != nil {
		t.Error("Stop after a failed Start should do nothing")
	}
}
