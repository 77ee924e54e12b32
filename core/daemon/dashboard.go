package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/config"
	"github.com/avnode/avnode/core/dashboard"
	"github.com/avnode/avnode/core/fault"
	"github.com/avnode/avnode/core/naming"
	"github.com/avnode/avnode/core/policy"
)

// dashboardPins bounds the pins the dashboard lists; it counts them all.
const dashboardPins = 50

// startDashboard serves the local dashboard on dashboard.listen. The
// default port taken moves on to the next free one; with all of those
// taken the node runs without a dashboard and says so, since nothing else
// depends on it. A port the operator chose is kept or refused.
func (d *Daemon) startDashboard(reg *prometheus.Registry) error {
	want := d.Config.Dashboard.Listen
	if want == "" {
		return nil
	}
	isDefault := want == shippedConfig().Dashboard.Listen
	s, err := dashboard.Start(dashboard.Options{Listen: want, MoveOn: isDefault, Log: d.Log,
		State: func(ctx context.Context) (any, error) { return d.dashboardState(ctx) }, Sample: newSampler(reg)})
	if err != nil && isDefault {
		d.Log.Warn("no dashboard: its default port and the ones after it are taken; set dashboard.listen to a free port", "wanted", want, "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("dashboard.listen %s: %w; choose another with --dashboard.listen, or empty to turn the dashboard off", want, err)
	}
	d.dashboard = s
	d.Log.Info("dashboard", "url", s.URL(), "open", "avnode dashboard")
	return nil
}

// handleDashboardLogin answers `avnode dashboard`: the page's address with
// a fresh one-time code.
func (d *Daemon) handleDashboardLogin(context.Context, api.Request) (any, error) {
	if d.dashboard == nil {
		return nil, fault.New(fault.Unavailable, "the dashboard is off on this node: set dashboard.listen (`avnode config set dashboard.listen 127.0.0.1:5180`) and restart the node")
	}
	url, expires := d.dashboard.NewCode()
	return api.DashboardLogin{URL: url, Expires: expires}, nil
}

// dashboardState is the node now, as the dashboard shows it.
func (d *Daemon) dashboardState(ctx context.Context) (api.Dashboard, error) {
	state := api.Dashboard{Version: Version().Version, Node: d.info(), Peers: d.peers(),
		Roles: []api.RoleStatus{}, Refusals: convert(d.Policy.Refusals(), refusalOf)}
	if state.Refusals == nil {
		state.Refusals = []api.Refusal{}
	}
	owned, err := d.Names.OwnedNames(ctx)
	if err != nil {
		return api.Dashboard{}, fmt.Errorf("list owned names: %w", err)
	}
	state.Names = make([]api.OwnedName, 0, len(owned))
	for _, o := range owned {
		state.Names = append(state.Names, d.ownedNameOf(o))
	}
	if d.Roles != nil {
		state.Roles = d.Roles.Statuses()
		if roleRunning(state.Roles, "mirror") {
			// The role's answer goes into the page's JSON: only if it is JSON.
			if out, err := d.Roles.Command(ctx, "mirror", "ls", nil); err == nil && json.Valid(out) {
				state.Mirror = out
			}
		}
	}
	state.Content, err = d.contentSeen.get(ctx, d.contentStats)
	return state, err
}

func roleRunning(roles []api.RoleStatus, name string) bool {
	for _, r := range roles {
		if r.Name == name && r.State == "running" {
			return true
		}
	}
	return false
}

// ownedNameOf adds the copies other nodes attested, as far as the last
// lookup knew: the lookup runs in the background, at most one per name at
// a time, so the page never waits on the DHT.
func (d *Daemon) ownedNameOf(o naming.OwnedName) api.OwnedName {
	out := api.OwnedName{Name: o.Name, Key: o.Key, Seq: o.Seq, Expires: o.Expires, Published: o.Published,
		Error: o.Err, Health: o.Health, Copies: d.copiesSeen.get(o.Name)}
	if o.Seq > 0 {
		d.copiesSeen.refresh(d.Names, o.Name, o.Seq)
	}
	return out
}

func (d *Daemon) contentStats(ctx context.Context) (api.ContentStats, error) {
	blocks, size, err := d.Hosting.Blocks.Usage(ctx)
	if err != nil {
		return api.ContentStats{}, fmt.Errorf("block store usage: %w", err)
	}
	pins, err := d.Hosting.Pins.List(ctx)
	if err != nil {
		return api.ContentStats{}, fmt.Errorf("list pins: %w", err)
	}
	stats := api.ContentStats{Blocks: blocks, Bytes: size, PinCount: len(pins), Pins: []api.Pin{}}
	for c, reason := range pins {
		stats.Pins = append(stats.Pins, api.Pin{CID: c.String(), Reason: reason})
	}
	slices.SortFunc(stats.Pins, func(a, b api.Pin) int { return strings.Compare(a.CID, b.CID) })
	if len(stats.Pins) > dashboardPins {
		stats.Pins = stats.Pins[:dashboardPins]
	}
	return stats, nil
}

func refusalOf(r policy.Refusal) api.Refusal {
	return api.Refusal{At: r.At, Hook: r.Hook, Peer: r.Peer, Script: r.Script, Reason: r.Reason}
}

// copiesSeen keeps the last answer of naming's Copies for each owned
// name, refreshed in the background until close.
type copiesSeen struct {
	mu      sync.Mutex
	byName  map[string][]string
	running map[string]bool
	checked map[string]time.Time
	closed  bool
	life    context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// close ends the lookups under way and waits for them: they use the DHT,
// which closes after.
func (c *copiesSeen) close() {
	c.mu.Lock()
	c.closed = true
	if c.cancel != nil {
		c.cancel()
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// copiesEvery is how often the dashboard asks the DHT for a name's copies.
const copiesEvery = 30 * time.Second

func (c *copiesSeen) get(name string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string{}, c.byName[name]...)
}

func (c *copiesSeen) refresh(names *naming.Service, name string, seq uint64) {
	c.mu.Lock()
	if c.byName == nil {
		c.byName, c.running, c.checked = map[string][]string{}, map[string]bool{}, map[string]time.Time{}
		c.life, c.cancel = context.WithCancel(context.Background())
	}
	if c.closed || c.running[name] || time.Since(c.checked[name]) < copiesEvery {
		c.mu.Unlock()
		return
	}
	c.running[name] = true
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(c.life, 10*time.Second)
		defer cancel()
		copies := names.Copies(ctx, name, seq)
		c.mu.Lock()
		c.byName[name], c.running[name], c.checked[name] = copies, false, time.Now()
		c.mu.Unlock()
	}()
}

// contentSeen keeps the block store's usage and the pins for
// contentEvery: counting walks every block file.
type contentSeen struct {
	mu    sync.Mutex
	stats api.ContentStats
	at    time.Time
}

const contentEvery = 15 * time.Second

func (c *contentSeen) get(ctx context.Context, read func(context.Context) (api.ContentStats, error)) (api.ContentStats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && time.Since(c.at) < contentEvery {
		return c.stats, nil
	}
	stats, err := read(ctx)
	if err != nil {
		return api.ContentStats{}, err
	}
	c.stats, c.at = stats, time.Now()
	return stats, nil
}

// newSampler reads the charted numbers from the node's own metrics, so the
// charts and a Prometheus scrape never disagree. Counters become rates
// between two samples.
func newSampler(reg *prometheus.Registry) func() map[string]float64 {
	if reg == nil {
		return nil
	}
	var last map[string]float64
	var lastAt time.Time
	return func() map[string]float64 {
		families, _ := reg.Gather()
		now := time.Now()
		raw := map[string]float64{}
		for _, f := range families {
			raw[f.GetName()] = sumOf(f)
		}
		out := map[string]float64{
			"peers":         raw["avnode_node_connected_peers"],
			"routing_table": raw["avnode_dht_routing_table_peers"],
			"heap_mib":      raw["go_memstats_heap_alloc_bytes"] / (1 << 20),
			"goroutines":    raw["go_goroutines"],
		}
		if last != nil {
			secs := now.Sub(lastAt).Seconds()
			out["served_kib_per_s"] = max(0, raw["avnode_blocks_served_read_bytes_total"]-last["avnode_blocks_served_read_bytes_total"]) / 1024 / secs
			out["resolves_per_s"] = max(0, raw["avnode_names_resolves_total"]-last["avnode_names_resolves_total"]) / secs
		}
		last, lastAt = raw, now
		return out
	}
}

// sumOf adds a family's series (a counter by result, say) into one number.
func sumOf(f *dto.MetricFamily) float64 {
	var sum float64
	for _, m := range f.GetMetric() {
		switch {
		case m.GetGauge() != nil:
			sum += m.GetGauge().GetValue()
		case m.GetCounter() != nil:
			sum += m.GetCounter().GetValue()
		case m.GetUntyped() != nil:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum
}

// shippedConfig is the config as shipped, to tell a default port from
// one the operator chose.
var shippedConfig = sync.OnceValue(func() *config.Config {
	def, err := config.Load(config.Sources{})
	if err != nil {
		return &config.Config{}
	}
	return def
})
