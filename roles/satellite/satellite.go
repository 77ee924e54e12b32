package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/avnode/avnode/sdk"
)

type config struct {
	// Timeout bounds one request to the beacon before the node falls back
	// to the DHT; default 5s. A get that fetches content through the
	// beacon gets ten times as long once the beacon answered.
	Timeout string `json:"timeout"`
}

// pairing is the beacon this satellite leans on, saved in its data folder.
type pairing struct {
	Name   string `json:"name"`
	Beacon string `json:"beacon"`
	Since  string `json:"since"`
}

// status is what `avnode satellite status` shows.
type status struct {
	Paired        bool   `json:"paired"`
	Name          string `json:"name,omitempty"`
	Beacon        string `json:"beacon,omitempty"`
	Since         string `json:"since,omitempty"`
	ThroughBeacon int    `json:"through_beacon"` // resolves and gets the beacon answered
	Fallbacks     int    `json:"fallbacks"`      // ones left to the DHT: beacon down, refused or failing
	Offloads      int    `json:"offloads"`
	LastError     string `json:"last_error,omitempty"`
}

type satellite struct {
	timeout time.Duration
	host    sdk.Host
	// open opens a stream to a beacon; nil is the node's OpenStream. Unit
	// tests stand in for the beacon with it.
	open func(ctx context.Context, peer string) (beaconStream, error)

	mu     sync.Mutex
	paired *pairing
	stats  status
}

func (s *satellite) Describe() sdk.Description {
	return sdk.Description{
		Name: "satellite", Version: "0.1.0",
		Summary:      "a light device: resolves, fetches and offloads work through its owner's beacon",
		Capabilities: []string{"satellite", "resolve-ahead"},
		// README.md, "Permissions": why each is needed.
		Permissions: []string{"names.resolve", "content.fetch", "records.put:avtr-zone",
			"config.read:dht.mode", "config.read:content.serve", "streams:" + sdk.SatelliteProtocol},
		ConfigSchema: `{"type":"object","properties":{"timeout":{"type":"string"}},"additionalProperties":false}`,
	}
}

func (s *satellite) ValidateConfig(raw json.RawMessage) sdk.Diagnostics {
	_, diags := parseConfig(raw)
	return diags
}

// parseConfig decodes and checks a config, and returns its timeout.
func parseConfig(raw json.RawMessage) (time.Duration, sdk.Diagnostics) {
	var c config
	if err := sdk.DecodeStrict(raw, &c); err != nil {
		return 0, sdk.Diagnostics{sdk.Errorf("config is not valid: %v", err)}
	}
	if c.Timeout == "" {
		return 5 * time.Second, nil
	}
	d, err := time.ParseDuration(c.Timeout)
	if err != nil || d < 100*time.Millisecond {
		return 0, sdk.Diagnostics{sdk.Errorf("timeout %q is not a duration of at least 100ms", c.Timeout).WithAttribute("timeout")}
	}
	return d, nil
}

func (s *satellite) Start(ctx context.Context, raw json.RawMessage, host sdk.Host) sdk.Diagnostics {
	timeout, diags := parseConfig(raw)
	if diags.HasError() {
		return diags
	}
	s.timeout, s.host = timeout, host
	p, err := s.load()
	if err != nil {
		return sdk.Diagnostics{sdk.Errorf("read the pairing: %v", err).WithDetail("in %s", s.file())}
	}
	s.paired = p
	s.warnIfHeavy(ctx)
	return nil
}

// warnIfHeavy says what to set when the node is not configured as a light
// device; the role still works.
func (s *satellite) warnIfHeavy(ctx context.Context) {
	var mode string
	if err := s.host.NodeConfig(ctx, "dht.mode", &mode); err == nil && mode != "client" {
		s.host.Logger().Warn("a satellite should be a DHT client: set dht.mode: client (configs/phone-satellite.yaml)", "dht.mode", mode)
	}
	var serve bool
	if err := s.host.NodeConfig(ctx, "content.serve", &serve); err == nil && serve {
		s.host.Logger().Warn("a satellite should serve no content: set content.serve: false (configs/phone-satellite.yaml)")
	}
}

func (s *satellite) Stop(context.Context) sdk.Diagnostics { return nil }

// Command serves `avnode satellite pair|unpair|status|offload` and the
// node's resolve-ahead.
func (s *satellite) Command(ctx context.Context, name string, args []string) (any, sdk.Diagnostics) {
	var out any
	var err error
	switch {
	case name == "status" && len(args) == 0:
		return s.status(), nil
	case name == "pair" && len(args) == 1:
		out, err = s.pair(ctx, args[0])
	case name == "unpair" && len(args) == 0:
		out, err = s.unpair()
	case name == "resolve-ahead" && len(args) == 2:
		out, err = s.resolveAhead(ctx, args[0], args[1])
	case name == "offload" && (len(args) == 1 || len(args) == 2):
		payload := "{}"
		if len(args) == 2 {
			payload = args[1]
		}
		out, err = s.offload(ctx, args[0], payload)
	default:
		return nil, sdk.Diagnostics{sdk.Errorf("unknown command %q %v; the satellite takes: status, pair NAME, unpair, offload SERVICE [JSON]", name, args)}
	}
	if err != nil {
		return nil, sdk.Diagnostics{sdk.Errorf("%s: %v", name, err)}
	}
	return out, nil
}

// pair asks the name's hosts in turn until one, the beacon, accepts: it
// does if the owner delegated to this node (a SAT record in the zone).
func (s *satellite) pair(ctx context.Context, name string) (status, error) {
	res, err := s.host.Resolve(ctx, name)
	if err != nil {
		return status{}, fmt.Errorf("resolve %s: %w", name, err)
	}
	// The beacon decides, from the zone it signs: a satellite not delegated
	// to hears why from it.
	var tried []string
	for _, h := range res.Hosts {
		resp, err := s.ask(ctx, h.ID, sdk.SatelliteRequest{Op: sdk.SatPair, Name: name}, s.timeout)
		if err == nil {
			p := &pairing{Name: name, Beacon: resp.Beacon, Since: time.Now().UTC().Format(time.RFC3339)}
			if err := s.save(p); err != nil {
				return status{}, fmt.Errorf("save the pairing: %w", err)
			}
			s.host.Logger().Info("paired", "name", name, "beacon", resp.Beacon)
			return s.status(), nil
		}
		tried = append(tried, fmt.Sprintf("%s: %v", h.ID, err))
	}
	if len(tried) == 0 {
		return status{}, fmt.Errorf("%s has no HOST to pair with", name)
	}
	return status{}, fmt.Errorf("no host of %s paired with this satellite: %s", name, strings.Join(tried, "; "))
}

func (s *satellite) unpair() (status, error) {
	if err := os.Remove(s.file()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return status{}, err
	}
	s.mu.Lock()
	s.paired = nil
	s.mu.Unlock()
	return s.status(), nil
}

// resolveAhead brings a name's zone (resolve) or a target's content (get)
// into the node through the beacon. Any error makes the node go by the DHT.
func (s *satellite) resolveAhead(ctx context.Context, kind, target string) (map[string]string, error) {
	p := s.pairing()
	if p == nil {
		return nil, errors.New("not paired: the node resolves by itself (`avnode satellite pair NAME` to lean on a beacon)")
	}
	err := s.throughBeacon(ctx, p.Beacon, kind, target)
	s.count(err)
	if err != nil {
		return nil, err
	}
	return map[string]string{"through": p.Beacon}, nil
}

func (s *satellite) throughBeacon(ctx context.Context, beacon, kind, target string) error {
	switch kind {
	case "resolve":
		resp, err := s.ask(ctx, beacon, sdk.SatelliteRequest{Op: sdk.SatResolve, Name: target}, s.timeout)
		if err != nil {
			return err
		}
		return s.takeZone(ctx, resp)
	case "get":
		resp, err := s.ask(ctx, beacon, sdk.SatelliteRequest{Op: sdk.SatGet, Target: target}, 10*s.timeout)
		if err != nil {
			return err
		}
		if err := s.takeZone(ctx, resp); err != nil {
			return err
		}
		if _, err := s.host.FetchFrom(ctx, "/cid/"+resp.Root, []string{beacon}); err != nil {
			return fmt.Errorf("fetch %s from the beacon: %w", resp.Root, err)
		}
		return nil
	}
	return fmt.Errorf("unknown kind %q: resolve or get", kind)
}

// takeZone hands the node the zone the beacon sent; the node checks the
// owner's signatures, so a beacon cannot forge a name.
func (s *satellite) takeZone(ctx context.Context, resp sdk.SatelliteResponse) error {
	if len(resp.Zone) == 0 {
		return nil // a /cid/ target
	}
	if _, err := s.host.OfferZone(ctx, sdk.ZoneKeyPrefix+resp.ZoneName, resp.Zone); err != nil {
		return fmt.Errorf("the zone from the beacon: %w", err)
	}
	return nil
}

// offload hands work to a role on the beacon; other plugins on this node
// call it with CallRole("satellite", "offload", SERVICE, JSON).
func (s *satellite) offload(ctx context.Context, service, payload string) (json.RawMessage, error) {
	p := s.pairing()
	if p == nil {
		return nil, errors.New("not paired: run `avnode satellite pair NAME` first")
	}
	if !json.Valid([]byte(payload)) {
		return nil, fmt.Errorf("the payload is not JSON: %q", payload)
	}
	resp, err := s.ask(ctx, p.Beacon, sdk.SatelliteRequest{Op: sdk.SatOffload, Service: service, Payload: json.RawMessage(payload)}, 10*s.timeout)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.stats.Offloads++
	s.mu.Unlock()
	return resp.Output, nil
}

// beaconStream is what a request to the beacon uses of an *sdk.Stream.
type beaconStream interface {
	io.ReadWriteCloser
	CloseWrite() error
	Reset()
}

// openBeacon opens a stream of the satellite protocol to peer.
func (s *satellite) openBeacon(ctx context.Context, peer string) (beaconStream, error) {
	if s.open != nil {
		return s.open(ctx, peer)
	}
	st, err := s.host.OpenStream(ctx, peer, sdk.SatelliteProtocol)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// ask sends one request to peer and reads the answer, within timeout.
func (s *satellite) ask(ctx context.Context, peer string, req sdk.SatelliteRequest, timeout time.Duration) (sdk.SatelliteResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := s.openBeacon(ctx, peer)
	if err != nil {
		return sdk.SatelliteResponse{}, fmt.Errorf("beacon %s unreachable: %w", peer, err)
	}
	// The stream does not watch ctx: reset it when ctx ends so a silent
	// beacon cannot hold the caller.
	stop := context.AfterFunc(ctx, st.Reset)
	defer stop()
	defer st.Close()
	var resp sdk.SatelliteResponse
	if err := sdk.WriteSatelliteMessage(st, req); err != nil {
		return resp, fmt.Errorf("beacon %s: %w", peer, err)
	}
	if err := st.CloseWrite(); err != nil {
		return resp, fmt.Errorf("beacon %s: %w", peer, err)
	}
	if err := sdk.ReadSatelliteMessage(st, &resp); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return resp, fmt.Errorf("beacon %s: %w", peer, err)
	}
	if resp.Error != "" {
		return resp, fmt.Errorf("beacon %s refused: %s", peer, resp.Error)
	}
	return resp, nil
}

func (s *satellite) count(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.stats.Fallbacks++
		s.stats.LastError = err.Error()
		s.host.CounterAdd("fallbacks", "resolves and gets left to the DHT", 1)
		return
	}
	s.stats.ThroughBeacon++
	s.host.CounterAdd("through_beacon", "resolves and gets answered by the beacon", 1)
}

func (s *satellite) status() status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.stats
	if p := s.paired; p != nil {
		out.Paired, out.Name, out.Beacon, out.Since = true, p.Name, p.Beacon, p.Since
	}
	return out
}

func (s *satellite) pairing() *pairing {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paired
}

func (s *satellite) file() string { return filepath.Join(s.host.DataDir(), "pairing.json") }

func (s *satellite) load() (*pairing, error) {
	data, err := os.ReadFile(s.file())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p pairing
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

func (s *satellite) save(p *pairing) error {
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	if err := sdk.WriteFileAtomic(s.file(), data); err != nil {
		return err
	}
	s.mu.Lock()
	s.paired = p
	s.mu.Unlock()
	return nil
}

// A signature slip in a method fails the build, not the role: sdk.Serve
// finds Command by a type assertion.
var (
	_ sdk.Role      = (*satellite)(nil)
	_ sdk.Commander = (*satellite)(nil)
)
