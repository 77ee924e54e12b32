package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/avnode/avnode/sdk"
)

type config struct {
	Names             []string `json:"names"`              // followed from the config; `avnode mirror add` adds more
	QuotaMB           int64    `json:"quota_mb"`           // bytes all mirrored content may take; default 5120
	ResolveInterval   string   `json:"resolve_interval"`   // re-resolve, when pub/sub says nothing; default 5m
	RepublishInterval string   `json:"republish_interval"` // re-put the owners' records; default 1h
	FollowTopic       *bool    `json:"follow_topic"`       // take new versions from the name's pub/sub topic; default true
	FollowUpdates     *bool    `json:"follow_updates"`     // sync when the node learns of a new version (e.g. stores the zone); default true
	Discover          bool     `json:"discover"`           // also mirror the names the Lua mirror hook allows
}

func (c config) followTopic() bool   { return c.FollowTopic == nil || *c.FollowTopic }
func (c config) followUpdates() bool { return c.FollowUpdates == nil || *c.FollowUpdates }

// nameState is what the mirror knows of one name; it is saved in the role's
// data folder and shown by `avnode mirror ls`.
type nameState struct {
	Name       string   `json:"name"`
	Seq        uint64   `json:"seq"`
	Root       string   `json:"root,omitempty"`
	Bytes      int64    `json:"bytes"`
	LastSync   string   `json:"last_sync,omitempty"`
	Sources    []string `json:"sources,omitempty"` // the zone's hosts when last synced
	Refused    int      `json:"refused"`           // zones offered over pub/sub and refused
	Error      string   `json:"error,omitempty"`
	Added      bool     `json:"added,omitempty"`      // by command, not config
	Discovered bool     `json:"discovered,omitempty"` // allowed by the mirror hook, not listed
}

type mirror struct {
	cfg    settings
	host   sdk.Host
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	state     map[string]*nameState
	followers map[string]*follower
	saveMu    sync.Mutex // one writer of the state file at a time

	// refusalLogs bounds the log lines of zones refused from the topic to
	// one a second: any peer can send them.
	refusalLogs *rate.Limiter
}

func (m *mirror) Describe() sdk.Description {
	return sdk.Description{
		Name: "mirror", Version: "0.1.0",
		Summary:      "keeps copies of other people's names and republishes their signed records",
		Capabilities: []string{"mirror", "attest-copies"},
		// README.md, "Permissions": why each is needed.
		Permissions: []string{"names.resolve", "records.put:avtr-claim", "records.put:avtr-zone",
			"content.fetch", "content.provide", "content.pin", "content.unpin",
			"pubsub:avtr/name/*", "events:name.updated", "policy.decide:mirror"},
		ConfigSchema: `{"type":"object","properties":{"names":{"type":"array","items":{"type":"string"}},` +
			`"quota_mb":{"type":"integer","minimum":0},"resolve_interval":{"type":"string"},"republish_interval":{"type":"string"},` +
			`"follow_topic":{"type":"boolean"},"follow_updates":{"type":"boolean"},"discover":{"type":"boolean"}},"additionalProperties":false}`,
	}
}

func (m *mirror) ValidateConfig(raw json.RawMessage) sdk.Diagnostics {
	_, diags := parseConfig(raw)
	return diags
}

// settings are a config with its defaults applied and its intervals parsed.
type settings struct {
	config
	resolveEvery, republishEvery time.Duration
}

// parseConfig decodes and checks a config.
func parseConfig(raw json.RawMessage) (settings, sdk.Diagnostics) {
	var set settings
	if err := sdk.DecodeStrict(raw, &set.config); err != nil {
		return set, sdk.Diagnostics{sdk.Errorf("config is not valid: %v", err)}
	}
	var diags sdk.Diagnostics
	parse := func(attr, s string, def time.Duration) time.Duration {
		if s == "" {
			return def
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < time.Second {
			diags = append(diags, sdk.Errorf("%q is not a duration of at least 1s", s).WithAttribute(attr))
		}
		return d
	}
	for i, n := range set.Names {
		set.Names[i] = sdk.NameSpelling(n) // an://einstein:avtr is einstein.avtr
	}
	set.resolveEvery = parse("resolve_interval", set.ResolveInterval, 5*time.Minute)
	set.republishEvery = parse("republish_interval", set.RepublishInterval, time.Hour)
	if set.QuotaMB < 0 {
		diags = append(diags, sdk.Errorf("quota_mb must be 0 or more, not %d", set.QuotaMB).
			WithAttribute("quota_mb").WithDetail("0, or leaving it out, is the default: 5120 MiB"))
	}
	if set.QuotaMB == 0 {
		set.QuotaMB = 5120
	}
	return set, diags
}

func (m *mirror) Start(ctx context.Context, raw json.RawMessage, host sdk.Host) sdk.Diagnostics {
	set, diags := parseConfig(raw)
	if diags.HasError() {
		return diags
	}
	m.cfg = set
	m.host, m.followers = host, map[string]*follower{}
	m.refusalLogs = rate.NewLimiter(1, 5)
	if err := m.load(); err != nil {
		return sdk.Diagnostics{sdk.Errorf("read the mirror's state: %v", err).WithDetail("in %s", m.stateFile())}
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	// Before any follower starts: a Start that fails leaves nothing running.
	events, err := host.Subscribe(m.ctx, "name.updated")
	if err != nil {
		m.cancel()
		return sdk.Diagnostics{sdk.Errorf("watch name updates: %v", err)}
	}
	m.dropUnlisted(ctx)
	for _, n := range m.cfg.Names {
		m.ensureState(n, false)
	}
	m.mu.Lock()
	names := make([]string, 0, len(m.state))
	for n := range m.state {
		names = append(names, n)
	}
	m.mu.Unlock()
	for _, n := range names {
		m.follow(n)
	}
	m.wg.Add(1)
	go m.watchUpdates(m.ctx, events)
	return nil
}

func (m *mirror) Stop(context.Context) sdk.Diagnostics {
	m.cancel()
	m.wg.Wait()
	if err := m.save(); err != nil {
		return sdk.Diagnostics{sdk.Errorf("save state: %v", err)}
	}
	return nil
}

// Command serves `avnode mirror add|rm|ls`.
func (m *mirror) Command(_ context.Context, name string, args []string) (any, sdk.Diagnostics) {
	switch {
	case name == "ls":
		return m.list(), nil
	case (name == "add" || name == "rm") && len(args) == 1:
		target := sdk.NameSpelling(args[0]) // an://einstein:avtr is einstein.avtr
		if name == "add" {
			m.ensureState(target, true)
			m.follow(target)
		} else if err := m.remove(target); err != nil {
			return nil, sdk.Diagnostics{sdk.Errorf("%v", err)}
		}
		if err := m.save(); err != nil {
			return nil, sdk.Diagnostics{sdk.Errorf("save state: %v", err)}
		}
		return m.list(), nil
	}
	return nil, sdk.Diagnostics{sdk.Errorf("unknown command %q %v; the mirror takes: ls, add NAME, rm NAME", name, args)}
}

func (m *mirror) list() []nameState {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]nameState, 0, len(m.state))
	for _, st := range m.state {
		out = append(out, *st)
	}
	slices.SortFunc(out, func(a, b nameState) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (m *mirror) ensureState(name string, added bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.state[name]; !ok {
		m.state[name] = &nameState{Name: name, Added: added}
	}
}

// remove stops following a name and unpins its content. A name the config
// lists stays: it would come back at the next start.
func (m *mirror) remove(name string) error {
	if slices.Contains(m.cfg.Names, name) {
		return fmt.Errorf("%s is listed in role_config.mirror.names: remove it there, then restart the node", name)
	}
	m.mu.Lock()
	st, ok := m.state[name]
	f := m.followers[name]
	delete(m.state, name)
	delete(m.followers, name)
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("%s is not mirrored here", name)
	}
	if f != nil {
		f.stop()
	}
	m.dropSigned(name)
	if st.Root != "" {
		return m.host.Unpin(m.ctx, st.Root)
	}
	return nil
}

// dropUnlisted stops mirroring the names the config listed once and lists
// no more (neither added by command nor discovered), as `mirror rm` of a
// listed name says: remove it from the config and restart. Their content
// is unpinned, so that the next gc frees it.
func (m *mirror) dropUnlisted(ctx context.Context) {
	for name, st := range m.state {
		if st.Added || st.Discovered || slices.Contains(m.cfg.Names, name) {
			continue
		}
		delete(m.state, name)
		m.dropSigned(name)
		if st.Root != "" {
			if err := m.host.Unpin(ctx, st.Root); err != nil {
				m.host.Logger().Warn("unpin a name no longer listed", "name", name, "root", st.Root, "err", err)
			}
		}
		m.host.Logger().Info("no longer mirrored: not in the config", "name", name)
	}
}

func (m *mirror) stateFile() string { return filepath.Join(m.host.DataDir(), "mirror.json") }

func (m *mirror) load() error {
	m.state = map[string]*nameState{}
	data, err := os.ReadFile(m.stateFile())
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var list []*nameState
	if err := json.Unmarshal(data, &list); err != nil {
		return err
	}
	for _, st := range list {
		m.state[st.Name] = st
	}
	return nil
}

// save writes the state atomically: a crash leaves the old or the new file.
func (m *mirror) save() error {
	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	data, err := json.MarshalIndent(m.list(), "", "  ")
	if err != nil {
		return err
	}
	return sdk.WriteFileAtomic(m.stateFile(), data)
}

func (m *mirror) usedBytes(except string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for name, st := range m.state {
		if name != except {
			n += st.Bytes
		}
	}
	return n
}

func (m *mirror) get(name string) (nameState, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.state[name]
	if !ok {
		return nameState{}, false
	}
	return *st, true
}

func (m *mirror) update(name string, f func(*nameState)) {
	m.mu.Lock()
	if st, ok := m.state[name]; ok {
		f(st)
	}
	m.mu.Unlock()
	if err := m.save(); err != nil {
		m.host.Logger().Warn("save mirror state", "err", err)
	}
}

func resolutionHosts(res sdk.Resolution) []string {
	var out []string
	for _, h := range res.Hosts {
		out = append(out, h.ID)
	}
	return out
}

// A signature slip in a method fails the build, not the role: sdk.Serve
// finds Command by a type assertion.
var (
	_ sdk.Role      = (*mirror)(nil)
	_ sdk.Commander = (*mirror)(nil)
)
