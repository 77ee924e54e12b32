package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/avnode/avnode/sdk"
)

// Version is the pinner's own version.
const Version = "0.1.0"

const (
	defaultInterval = 10 * time.Minute
	minInterval     = 10 * time.Second
	// fetchTimeout bounds one CID's fetch and pin in a pass.
	fetchTimeout = 5 * time.Minute
)

// Config is the pinner's section of the node's config, role_config.pinner.
type Config struct {
	// CIDs to keep pinned.
	CIDs []string `json:"cids"`
	// Interval between checks, a Go duration ("10m"); default 10m.
	Interval string `json:"interval"`
}

// configSchema is the JSON Schema of Config, sent compact by Describe.
const configSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "cids": {"type": "array", "items": {"type": "string"}, "description": "CIDs to keep fetched and pinned"},
    "interval": {"type": "string", "description": "how often to check, a Go duration such as 10m (default 10m, at least 10s)"}
  }
}`

// cidPattern accepts CIDv0 (base58btc, Qm…) and base32 CIDv1 (b…), the two
// forms avnode prints. It is a shape check, not a parse: the node rejects a
// CID that only looks right when the pinner fetches it.
var cidPattern = regexp.MustCompile(`^(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{58,})$`)

// Pinner keeps its configured CIDs fetched and pinned, checking again every
// interval.
type Pinner struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// Describe says who the pinner is.
func (p *Pinner) Describe() sdk.Description {
	return sdk.Description{
		Name:         "pinner",
		Version:      Version,
		Summary:      "keeps a configured list of CIDs fetched and pinned",
		Capabilities: []string{"pin"},
		// What the operator grants with `avnode plugins grant pinner ...`.
		Permissions:  []string{"content.fetch", "content.pin"},
		ConfigSchema: compactJSON(configSchema),
	}
}

// ValidateConfig checks the pinner's config section.
func (p *Pinner) ValidateConfig(raw json.RawMessage) sdk.Diagnostics {
	_, _, diags := parseConfig(raw)
	return diags
}

func parseConfig(raw json.RawMessage) (Config, time.Duration, sdk.Diagnostics) {
	var c Config
	var diags sdk.Diagnostics
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, 0, append(diags, decodeDiagnostic(err))
	}
	interval := defaultInterval
	if c.Interval != "" {
		d, err := time.ParseDuration(c.Interval)
		switch {
		case err != nil:
			diags = append(diags, sdk.Errorf("%q is not a duration", c.Interval).
				WithAttribute("interval").WithDetail("write it as 30s, 10m or 1h"))
		case d < minInterval:
			diags = append(diags, sdk.Errorf("interval %s is shorter than %s", d, minInterval).
				WithAttribute("interval").WithDetail("checking more often only loads the node"))
		default:
			interval = d
		}
	}
	if len(c.CIDs) == 0 {
		diags = append(diags, sdk.Warningf("no CIDs to pin").WithAttribute("cids").
			WithDetail("list them under role_config.pinner.cids"))
	}
	seen := map[string]int{}
	for i, cid := range c.CIDs {
		attr := fmt.Sprintf("cids[%d]", i)
		if !cidPattern.MatchString(cid) {
			diags = append(diags, sdk.Errorf("%q is not a CID", cid).WithAttribute(attr).
				WithDetail("use a CIDv1 in base32 (bafy…) or a CIDv0 (Qm…), as `avnode publish` prints them"))
			continue
		}
		if j, dup := seen[cid]; dup {
			diags = append(diags, sdk.Warningf("%s is listed twice", cid).WithAttribute(attr).
				WithDetail("also at cids[%d]", j))
		}
		seen[cid] = i
	}
	return c, interval, diags
}

// decodeDiagnostic names the key a JSON decoding error is about.
func decodeDiagnostic(err error) sdk.Diagnostic {
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typeErr):
		return sdk.Errorf("%s must be a %s, not a JSON %s", typeErr.Field, expected(typeErr.Field), typeErr.Value).
			WithAttribute(typeErr.Field)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return sdk.Errorf("unknown key %q", field).WithAttribute(field).
			WithDetail("the pinner knows cids and interval; check the spelling")
	default:
		return sdk.Errorf("the config is not valid JSON: %v", err)
	}
}

func expected(field string) string {
	if field == "cids" {
		return "list of CID strings"
	}
	return "string"
}

// Start fetches and pins every CID now and again every interval, until Stop.
func (p *Pinner) Start(_ context.Context, raw json.RawMessage, host sdk.Host) sdk.Diagnostics {
	c, interval, diags := parseConfig(raw)
	if diags.HasError() {
		return diags
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	p.mu.Lock()
	p.cancel, p.done = cancel, done
	p.mu.Unlock()
	go func() {
		defer close(done)
		run(ctx, host, c.CIDs, interval)
	}()
	host.Logger().Info("pinner started", "cids", len(c.CIDs), "interval", interval)
	return diags
}

// Stop ends the loop and waits for the pass in progress to give up.
func (p *Pinner) Stop(ctx context.Context) sdk.Diagnostics {
	p.mu.Lock()
	cancel, done := p.cancel, p.done
	p.cancel, p.done = nil, nil
	p.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return sdk.Diagnostics{sdk.Warningf("the pinner's last pass did not end before the stop deadline")}
	}
}

func run(ctx context.Context, host sdk.Host, cids []string, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		pass(ctx, host, cids)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pass fetches and pins each CID once and reports how many are pinned.
func pass(ctx context.Context, host sdk.Host, cids []string) {
	log := host.Logger()
	pinned := 0
	for _, cid := range cids {
		if ctx.Err() != nil {
			return
		}
		if err := pinOne(ctx, host, cid); err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("pinner could not pin", "cid", cid, "err", err)
			continue
		}
		pinned++
	}
	host.Gauge("pinned", "CIDs the pinner has fetched and pinned in its last pass", float64(pinned))
	log.Info("pinner pass done", "pinned", pinned, "of", len(cids))
}

func pinOne(ctx context.Context, host sdk.Host, cid string) error {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	if _, err := host.Fetch(ctx, "/cid/"+cid); err != nil {
		return err
	}
	return host.Pin(ctx, cid, "pinner")
}

func compactJSON(s string) string {
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		panic(err) // a constant: a test catches it
	}
	return b.String()
}

var _ sdk.Role = (*Pinner)(nil)
