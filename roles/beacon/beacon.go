package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/avnode/avnode/sdk"
)

// hostedName is one name the beacon hosts.
type hostedName struct {
	Name   string `json:"name"`
	Key    string `json:"key"`    // the identity key's name in the node's keystore
	Copies int    `json:"copies"` // copies wanted on mirrors, written into the zone; 0: as the zone says
}

type config struct {
	Names    []hostedName `json:"names"`
	Interval string       `json:"interval"` // how often to check claim, HOST and provide; default 10m
}

// beacon is the role. Its state lives in memory: everything it does is
// derived again from the node at each start.
type beacon struct {
	cfg      config
	interval time.Duration
	host     sdk.Host
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	pairs       *pairings // satellites paired with this beacon
	refusalLogs *rate.Limiter

	mu     sync.Mutex
	status map[string]*nameStatus
}

// nameStatus is what `avnode roles call beacon status` shows of a name.
type nameStatus struct {
	Name            string   `json:"name"`
	Seq             uint64   `json:"seq"`
	Root            string   `json:"root,omitempty"`
	Copies          int      `json:"copies"`
	Wanted          int      `json:"wanted"`
	UnderReplicated bool     `json:"under_replicated"`
	Satellites      []string `json:"satellites,omitempty"` // delegated to by the owner (SAT records)
	Paired          []string `json:"paired,omitempty"`     // satellites that paired (`avnode satellite pair`)
	// Requests of satellites answered and refused since start.
	SatelliteRequests int    `json:"satellite_requests"`
	SatelliteRefused  int    `json:"satellite_refused"`
	LastCheck         string `json:"last_check,omitempty"`
	Error             string `json:"error,omitempty"`
}

func (b *beacon) Describe() sdk.Description {
	return sdk.Description{
		Name: "beacon", Version: "0.1.0",
		Summary:      "hosts this node's own names: claim, HOST record, content, pub/sub updates",
		Capabilities: []string{"host-names", "pubsub-updates", "replication-report", "satellites"},
		// README.md, "Permissions": why each is needed.
		Permissions: []string{"names.resolve", "names.claim:*", "keys.use:*", "zone.write:*",
			"records.put:avtr-claim", "records.put:avtr-zone", "content.fetch", "content.provide",
			"pubsub:avtr/name/*", "events:name.updated", "streams:" + sdk.SatelliteProtocol, "roles.call:*"},
		ConfigSchema: `{"type":"object","properties":{"names":{"type":"array","items":{"type":"object","required":["name","key"],` +
			`"properties":{"name":{"type":"string"},"key":{"type":"string"},"copies":{"type":"integer","minimum":0}}}},` +
			`"interval":{"type":"string"}},"additionalProperties":false}`,
	}
}

func (b *beacon) ValidateConfig(raw json.RawMessage) sdk.Diagnostics {
	_, _, diags := parseConfig(raw)
	return diags
}

// parseConfig decodes and checks a config, and returns it with its interval.
func parseConfig(raw json.RawMessage) (config, time.Duration, sdk.Diagnostics) {
	var c config
	if err := sdk.DecodeStrict(raw, &c); err != nil {
		return c, 0, sdk.Diagnostics{sdk.Errorf("config is not valid: %v", err)}
	}
	var diags sdk.Diagnostics
	interval := 10 * time.Minute
	if c.Interval != "" {
		d, err := time.ParseDuration(c.Interval)
		if err != nil || d < time.Second {
			diags = append(diags, sdk.Errorf("interval %q is not a duration of at least 1s", c.Interval).WithAttribute("interval"))
		}
		interval = d
	}
	for i, n := range c.Names {
		if n.Name == "" || n.Key == "" {
			diags = append(diags, sdk.Errorf("names[%d] needs a name and the key that owns it", i).WithAttribute(fmt.Sprintf("names[%d]", i)))
		}
	}
	if len(c.Names) == 0 {
		diags = append(diags, sdk.Warningf("no names to host").WithDetail(`add role_config.beacon.names: [{name: einstein.avtr, key: einstein}]`))
	}
	return c, interval, diags
}

func (b *beacon) Start(_ context.Context, raw json.RawMessage, host sdk.Host) sdk.Diagnostics {
	cfg, interval, diags := parseConfig(raw)
	if diags.HasError() {
		return diags
	}
	if err := b.init(cfg, interval, host); err != nil {
		return sdk.Diagnostics{sdk.Errorf("read the paired satellites: %v", err)}
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	updates, err := host.Subscribe(ctx, "name.updated")
	if err != nil {
		cancel()
		return sdk.Diagnostics{sdk.Errorf("subscribe to name updates: %v", err)}
	}
	if err := host.HandleProtocol(ctx, sdk.SatelliteProtocol, func(s *sdk.Stream) { b.serveSatellite(ctx, s) }); err != nil {
		cancel()
		return sdk.Diagnostics{sdk.Errorf("serve satellites on %s: %v", sdk.SatelliteProtocol, err)}
	}
	for _, n := range b.cfg.Names {
		b.wg.Add(1)
		go b.keep(ctx, n)
	}
	b.wg.Add(1)
	go b.announceUpdates(ctx, updates)
	return nil
}

// init sets the beacon up for a config and a host: its state, before any
// work starts.
func (b *beacon) init(cfg config, interval time.Duration, host sdk.Host) error {
	pairs, err := loadPairings(host.DataDir())
	if err != nil {
		return err
	}
	b.cfg, b.interval, b.host, b.pairs = cfg, interval, host, pairs
	b.refusalLogs = rate.NewLimiter(satelliteRefusalsLogs, 5)
	b.status = map[string]*nameStatus{}
	for _, n := range cfg.Names {
		b.status[n.Name] = &nameStatus{Name: n.Name, Wanted: n.Copies, Paired: pairs.paired(n.Name)}
	}
	return nil
}

// keep checks the name now and then every interval.
func (b *beacon) keep(ctx context.Context, n hostedName) {
	defer b.wg.Done()
	for {
		err := b.check(ctx, n)
		b.update(n.Name, func(st *nameStatus) {
			st.LastCheck, st.Error = time.Now().UTC().Format(time.RFC3339), errText(err)
		})
		if err != nil {
			b.host.Logger().Warn("beacon check", "name", n.Name, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(b.interval):
		}
	}
}

// check makes sure the name is claimed, lists this node as a HOST, its
// content is provided and followers have the current zone; and counts copies.
func (b *beacon) check(ctx context.Context, n hostedName) error {
	res, err := b.host.Claim(ctx, n.Name, n.Key)
	if err != nil {
		return fmt.Errorf("claim: %w", err)
	}
	if !hasHost(res, b.host.PeerID()) {
		if _, err := b.host.SetZoneRecord(ctx, n.Name, "HOST", "", b.host.PeerID()); err != nil {
			return fmt.Errorf("add HOST record: %w", err)
		}
		if res, err = b.host.Resolve(ctx, n.Name); err != nil {
			return err
		}
	}
	if res, err = b.ensureTarget(ctx, n, res); err != nil {
		return err
	}
	if res.Root != "" {
		if err := b.host.Provide(ctx, res.Root); err != nil {
			return fmt.Errorf("provide %s: %w", res.Root, err)
		}
	}
	if err := b.announce(ctx, n.Name); err != nil {
		return err
	}
	copies, _ := b.host.FindCopies(ctx, n.Name, res.Seq)
	b.update(n.Name, func(st *nameStatus) {
		st.Seq, st.Root, st.Copies, st.Wanted = res.Seq, res.Root, len(copies), res.CopiesWanted
		st.Satellites = sdk.Satellites(res)
		st.UnderReplicated = st.Wanted > 0 && st.Copies < st.Wanted
	})
	b.reportReplication()
	return nil
}

// ensureTarget writes the configured replication target into the zone as
// TXT copies=N, replacing another, so that mirrors and resolvers see what
// the owner asks for.
func (b *beacon) ensureTarget(ctx context.Context, n hostedName, res sdk.Resolution) (sdk.Resolution, error) {
	if n.Copies == 0 || res.CopiesWanted == n.Copies {
		return res, nil
	}
	for _, r := range res.Records {
		if r.Type == "TXT" && r.Label == "" && strings.HasPrefix(r.Value, copiesPrefix) {
			if _, err := b.host.RemoveZoneRecord(ctx, n.Name, "TXT", "", r.Value); err != nil {
				return sdk.Resolution{}, fmt.Errorf("replace the copies target: %w", err)
			}
		}
	}
	if _, err := b.host.SetZoneRecord(ctx, n.Name, "TXT", "", fmt.Sprintf("%s%d", copiesPrefix, n.Copies)); err != nil {
		return sdk.Resolution{}, fmt.Errorf("set the copies target: %w", err)
	}
	return b.host.Resolve(ctx, n.Name)
}

// copiesPrefix starts the zone's TXT record that holds the replication target.
const copiesPrefix = "copies="

func hasHost(res sdk.Resolution, self string) bool {
	return slices.ContainsFunc(res.Hosts, func(h sdk.PeerInfo) bool { return h.ID == self })
}

// announce publishes the name's signed zone on its topic: the one the node
// signed last, not a copy looked up in the DHT, which may lag behind.
func (b *beacon) announce(ctx context.Context, name string) error {
	res, err := b.host.Resolve(ctx, name)
	if err != nil {
		return fmt.Errorf("read own zone: %w", err)
	}
	return publish(ctx, b.host, name, sdk.NameMessage{Kind: sdk.KindZone, Zone: res.SignedZone, Seq: res.Seq})
}

// announceUpdates tells followers of a new version as soon as the node signs it.
func (b *beacon) announceUpdates(ctx context.Context, updates <-chan sdk.Event) {
	defer b.wg.Done()
	for e := range updates {
		name := e.Attrs["name"]
		if !b.hosts(name) {
			continue
		}
		if err := b.announce(ctx, name); err != nil {
			b.host.Logger().Warn("announce update", "name", name, "err", err)
		}
	}
}

func (b *beacon) hosts(name string) bool {
	return slices.ContainsFunc(b.cfg.Names, func(n hostedName) bool { return n.Name == name })
}

func publish(ctx context.Context, host sdk.Host, name string, m sdk.NameMessage) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return host.Publish(ctx, sdk.NameTopic(name), data)
}

func (b *beacon) update(name string, f func(*nameStatus)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if st, ok := b.status[name]; ok {
		f(st)
	}
}

func (b *beacon) reportReplication() {
	b.mu.Lock()
	under := 0
	for _, st := range b.status {
		if st.UnderReplicated {
			under++
		}
	}
	b.mu.Unlock()
	b.host.Gauge("under_replicated_names", "names with fewer mirror copies than their target", float64(under))
}

// Command answers `avnode roles call beacon status|delegate|revoke`.
func (b *beacon) Command(ctx context.Context, name string, args []string) (any, sdk.Diagnostics) {
	switch {
	case name == "status" && len(args) == 0:
		return b.statusList(), nil
	case (name == "delegate" || name == "revoke") && len(args) == 2:
		sats, err := b.delegate(ctx, name == "delegate", args[0], args[1])
		if err != nil {
			return nil, sdk.Diagnostics{sdk.Errorf("%s %s %s: %v", name, args[0], args[1], err)}
		}
		return map[string]any{"name": args[0], "satellites": sats}, nil
	}
	return nil, sdk.Diagnostics{sdk.Errorf("unknown command %q %v; the beacon takes: status, delegate NAME PEER_ID, revoke NAME PEER_ID", name, args)}
}

// delegate authorizes a satellite (or revokes it) by a SAT record in the
// name's zone, which the node signs with the identity key.
func (b *beacon) delegate(ctx context.Context, add bool, name, peerID string) ([]string, error) {
	if !b.hosts(name) {
		return nil, fmt.Errorf("this beacon does not host %s", name)
	}
	var err error
	if add {
		_, err = b.host.SetZoneRecord(ctx, name, "SAT", "", peerID)
	} else {
		_, err = b.host.RemoveZoneRecord(ctx, name, "SAT", "", peerID)
	}
	if err != nil {
		return nil, err
	}
	res, err := b.host.Resolve(ctx, name)
	if err != nil {
		return nil, err
	}
	sats := sdk.Satellites(res)
	b.update(name, func(st *nameStatus) { st.Satellites = sats })
	return sats, nil
}

func (b *beacon) statusList() []nameStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]nameStatus, 0, len(b.status))
	for _, n := range b.cfg.Names {
		out = append(out, *b.status[n.Name])
	}
	return out
}

// Stop hands the records to the current closest peers and tells followers
// the beacon is leaving, so that mirrors take over serving at once.
func (b *beacon) Stop(ctx context.Context) sdk.Diagnostics {
	for _, n := range b.cfg.Names {
		if res, err := b.host.Resolve(ctx, n.Name); err == nil {
			b.host.PutRecord(ctx, sdk.ClaimKeyPrefix+n.Name, res.SignedClaim)
			b.host.PutRecord(ctx, sdk.ZoneKeyPrefix+n.Name, res.SignedZone)
		}
		publish(ctx, b.host, n.Name, sdk.NameMessage{Kind: sdk.KindLeaving})
	}
	b.cancel()
	b.wg.Wait()
	return nil
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// A signature slip in a method fails the build, not the role: sdk.Serve
// finds Command by a type assertion.
var (
	_ sdk.Role      = (*beacon)(nil)
	_ sdk.Commander = (*beacon)(nil)
)
