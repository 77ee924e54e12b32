package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/avnode/avnode/sdk"
	"github.com/avnode/avnode/sdk/sdktest"
)

// ownerPeer is the host that serves every name the tests give a Host.
const ownerPeer = "12D3KooWOwnerBeacon"

// within bounds every wait for the mirror's background work.
const within = 5 * time.Second

// site gives h version seq of name, a page saying body with the owner's
// signed claim and zone, and returns the content's root.
func site(h *sdktest.Host, name string, seq uint64, body string) string {
	root := h.AddDir(map[string]string{"index.html": body}, nil)
	h.SetName(sdk.Resolution{Name: name, Key: "k51" + name, Seq: seq, Root: root,
		Hosts:      []sdk.PeerInfo{{ID: ownerPeer}},
		SignedZone: zone(name, seq), SignedClaim: []byte("claim of " + name)})
	return root
}

// zone is the signed zone site gives version seq of name.
func zone(name string, seq uint64) []byte { return fmt.Appendf(nil, "zone %d of %s", seq, name) }

// start starts a mirror with config on h and stops it when the test ends.
func start(t *testing.T, h *sdktest.Host, config string) *mirror {
	t.Helper()
	m := &mirror{}
	if diags := m.Start(t.Context(), json.RawMessage(config), h); diags.HasError() {
		t.Fatalf("Start(%s): %v", config, diags)
	}
	t.Cleanup(func() { m.Stop(context.Background()) })
	return m
}

// ls is what `avnode mirror ls` shows, by name.
func ls(t *testing.T, m *mirror) map[string]nameState {
	t.Helper()
	out, diags := m.Command(t.Context(), "ls", nil)
	if diags.HasError() {
		t.Fatalf("ls: %v", diags)
	}
	return byName(t, out)
}

func byName(t *testing.T, out any) map[string]nameState {
	t.Helper()
	list, ok := out.([]nameState)
	if !ok {
		t.Fatalf("the command answered %T, want the list of names", out)
	}
	states := map[string]nameState{}
	for _, st := range list {
		states[st.Name] = st
	}
	return states
}

// waitMirrored waits until ls shows name synced at version seq, with root,
// and no error.
func waitMirrored(t *testing.T, m *mirror, name string, seq uint64, root string) nameState {
	t.Helper()
	var st nameState
	sdktest.Eventually(t, within, name+" mirrored at seq "+strconv.FormatUint(seq, 10), func() error {
		var ok bool
		if st, ok = ls(t, m)[name]; !ok {
			return errors.New("not listed")
		}
		if st.Seq != seq || st.Root != root || st.LastSync == "" || st.Error != "" {
			return fmt.Errorf("ls shows %+v, want seq %d, root %s, synced without error", st, seq, root)
		}
		return nil
	})
	return st
}

// updated is the node's event for a new version of a name it learned of.
func updated(h *sdktest.Host, name string, seq uint64) {
	h.Emit(sdk.Event{Kind: "name.updated", Attrs: map[string]string{"name": name, "seq": strconv.FormatUint(seq, 10)}})
}

// announce delivers msg on name's topic, as from peer.
func announce(h *sdktest.Host, name, from string, msg sdk.NameMessage) {
	data, _ := json.Marshal(msg)
	h.Deliver(sdk.TopicMessage{Topic: sdk.NameTopic(name), Data: data, From: from})
}

func count(list []string, v string) int {
	n := 0
	for _, s := range list {
		if s == v {
			n++
		}
	}
	return n
}

func TestValidateConfig(t *testing.T) {
	for _, c := range []struct{ config, want, attr string }{
		{config: `{}`},
		{config: `{"quota_mb":0}`},
		{config: `{"names":["a.avtr","b.code"],"quota_mb":10,"resolve_interval":"1s","republish_interval":"2h",` +
			`"follow_topic":false,"follow_updates":false,"discover":true}`},
		{config: `{"nmes":["a.avtr"]}`, want: "unknown field"},
		{config: `{"names":"a.avtr"}`, want: "config is not valid"},
		{config: `{"quota_mb":-1}`, want: "0 or more", attr: "quota_mb"},
		{config: `{"resolve_interval":"500ms"}`, want: "at least 1s", attr: "resolve_interval"},
		{config: `{"republish_interval":"hourly"}`, want: "at least 1s", attr: "republish_interval"},
	} {
		t.Run(c.config, func(t *testing.T) {
			m := &mirror{}
			diags := m.ValidateConfig(json.RawMessage(c.config))
			if !reflect.DeepEqual(m.cfg, settings{}) || m.host != nil || m.state != nil || m.cancel != nil {
				t.Errorf("ValidateConfig changed the mirror: %+v", m.cfg)
			}
			h := sdktest.NewHost(t)
			if c.want == "" {
				if len(diags) != 0 {
					t.Errorf("diagnostics = %v, want none", diags)
				}
				start(t, h, c.config)
				return
			}
			if len(diags) != 1 || !diags.HasError() || !strings.Contains(diags[0].Summary, c.want) || diags[0].Attribute != c.attr {
				t.Errorf("diagnostics = %+v, want one error at %q saying %q", diags, c.attr, c.want)
			}
			if diags := (&mirror{}).Start(t.Context(), json.RawMessage(c.config), h); !diags.HasError() {
				t.Error("Start took a config ValidateConfig refuses")
			}
			if got := h.Calls("Subscribe"); len(got) != 0 {
				t.Errorf("a mirror refused its config and still watched %v", got)
			}
		})
	}
}

func TestSchemaAgreesWithConfig(t *testing.T) {
	sdktest.CheckSchema(t, (&mirror{}).Describe().ConfigSchema, config{})
}

func TestStartTakesTheConfigItIsGiven(t *testing.T) {
	h := sdktest.NewHost(t)
	root := site(h, "given.avtr", 1, "given")
	m := &mirror{}
	if diags := m.ValidateConfig(json.RawMessage(`{"names":["validated.avtr"]}`)); len(diags) != 0 {
		t.Fatal(diags)
	}
	m.Start(t.Context(), json.RawMessage(`{"names":["given.avtr"]}`), h)
	t.Cleanup(func() { m.Stop(context.Background()) })

	waitMirrored(t, m, "given.avtr", 1, root)
	if names := slices.Sorted(func(yield func(string) bool) {
		for n := range ls(t, m) {
			yield(n)
		}
	}); !slices.Equal(names, []string{"given.avtr"}) {
		t.Errorf("mirrors %v, want Start's given.avtr only", names)
	}
}

func TestFollowedNameIsFetchedPinnedAndProvided(t *testing.T) {
	h := sdktest.NewHost(t)
	root := site(h, "a.avtr", 3, "<h1>A</h1>")
	m := start(t, h, `{"names":["a.avtr"]}`)

	st := waitMirrored(t, m, "a.avtr", 3, root)
	if !slices.Equal(st.Sources, []string{ownerPeer}) || st.Added || st.Discovered {
		t.Errorf("ls shows %+v, want the owner's host as source, listed by config", st)
	}
	if got := h.Calls("Fetch"); !slices.Equal(got, []string{"/cid/" + root}) {
		t.Errorf("fetched %v, want the root once", got)
	}
	if got := h.Pins(); got[root] != "mirror a.avtr" || len(got) != 1 {
		t.Errorf("pins = %v, want the root pinned for a.avtr", got)
	}
	if got := h.Calls("Provide"); !slices.Equal(got, []string{root}) {
		t.Errorf("provided %v, want the root", got)
	}
	if got := h.Calls("AttestCopy"); !slices.Equal(got, []string{"a.avtr@3"}) {
		t.Errorf("attested %v, want a copy of version 3", got)
	}
	if got := h.Calls("SubscribeTopic"); !slices.Equal(got, []string{sdk.NameTopic("a.avtr")}) {
		t.Errorf("subscribed to %v, want the name's topic", got)
	}
}

// A new version is taken from the name's topic at once, from the node's
// name.updated event, or, with neither, from a re-resolve.
func TestNewVersionIsPickedUp(t *testing.T) {
	for _, c := range []struct {
		name, config string
		tell         func(h *sdktest.Host)
		resolves     bool // the new version comes from a Resolve, not from the message
		topic        bool // the mirror listens on the name's topic
	}{
		{name: "topic message", config: `{"names":["a.avtr"]}`, topic: true, tell: func(h *sdktest.Host) {
			announce(h, "a.avtr", ownerPeer, sdk.NameMessage{Kind: sdk.KindZone, Zone: zone("a.avtr", 2), Seq: 2})
		}},
		{name: "name.updated event", config: `{"names":["a.avtr"]}`, resolves: true, topic: true, tell: func(h *sdktest.Host) {
			updated(h, "a.avtr", 2)
		}},
		{name: "re-resolve", config: `{"names":["a.avtr"],"follow_topic":false,"follow_updates":false,"resolve_interval":"1s"}`,
			resolves: true, tell: func(h *sdktest.Host) {
				updated(h, "a.avtr", 2) // not followed: the interval finds it
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := sdktest.NewHost(t)
			old := site(h, "a.avtr", 1, "v1")
			m := start(t, h, c.config)
			waitMirrored(t, m, "a.avtr", 1, old)

			root := site(h, "a.avtr", 2, "v2")
			c.tell(h)
			waitMirrored(t, m, "a.avtr", 2, root)

			if pins := h.Pins(); len(pins) != 1 || pins[root] == "" {
				t.Errorf("pins = %v, want the new root only", pins)
			}
			if got := h.Calls("Provide"); !slices.Equal(got, []string{old, root}) {
				t.Errorf("provided %v, want both versions' roots in turn", got)
			}
			if got := h.Calls("AttestCopy"); !slices.Contains(got, "a.avtr@2") {
				t.Errorf("attested %v, want a copy of version 2", got)
			}
			if n := len(h.Calls("Resolve")); c.resolves != (n > 1) {
				t.Errorf("resolved %d times; want a resolve for the new version: %v", n, c.resolves)
			}
			if got := h.Calls("OfferZone"); c.resolves == (len(got) > 0) {
				t.Errorf("offered %v; want the topic's zone offered: %v", got, !c.resolves)
			}
			if subscribed := len(h.Calls("SubscribeTopic")) > 0; subscribed != c.topic {
				t.Errorf("subscribed to the topic: %v, want %v", subscribed, c.topic)
			}
		})
	}
}

// A sync that fails shows in ls, leaves the other names mirrored, and
// succeeds once its cause is gone.
func TestFailedSyncShowsAndTheRoleGoesOn(t *testing.T) {
	for _, c := range []struct {
		name, config string
		setup        func(h *sdktest.Host) // before start; bad.avtr is set unless setup sets it
		want         string                // in bad.avtr's error
		blocksAll    bool                  // ok.avtr fails too
		heal         func(h *sdktest.Host) uint64
	}{
		{
			name: "fetch fails", config: `{"names":["bad.avtr","ok.avtr"]}`,
			setup: func(h *sdktest.Host) {
				root := site(h, "bad.avtr", 1, "bad")
				h.Fail("Fetch", "/cid/"+root, status.Error(codes.Unavailable, "no provider found"))
			},
			want: "no provider found",
			heal: func(h *sdktest.Host) uint64 {
				res, _ := h.Resolve(context.Background(), "bad.avtr")
				h.Fail("Fetch", "/cid/"+res.Root, nil)
				return 1
			},
		},
		{
			name: "name not found", config: `{"names":["bad.avtr","ok.avtr"]}`,
			setup: func(*sdktest.Host) {},
			want:  "resolve: ",
			heal:  func(h *sdktest.Host) uint64 { site(h, "bad.avtr", 1, "bad"); return 1 },
		},
		{
			name: "no signed records", config: `{"names":["bad.avtr","ok.avtr"]}`,
			setup: func(h *sdktest.Host) {
				h.SetName(sdk.Resolution{Name: "bad.avtr", Seq: 1, Root: h.AddDir(map[string]string{"a": "bad"}, nil)})
			},
			want: "no signed zone and claim",
			heal: func(h *sdktest.Host) uint64 { site(h, "bad.avtr", 2, "bad"); return 2 },
		},
		{
			name: "over the quota", config: `{"names":["bad.avtr","ok.avtr"],"quota_mb":1}`,
			setup: func(h *sdktest.Host) {
				root := h.AddFile(strings.Repeat("x", 1<<20+1))
				h.SetName(sdk.Resolution{Name: "bad.avtr", Seq: 1, Root: root, SignedZone: zone("bad.avtr", 1), SignedClaim: []byte("c")})
			},
			want: "over the quota of 1 MiB",
			heal: func(h *sdktest.Host) uint64 { site(h, "bad.avtr", 2, "smaller"); return 2 },
		},
		{
			name: "policy refuses", config: `{"names":["bad.avtr","ok.avtr"]}`,
			setup: func(h *sdktest.Host) {
				site(h, "bad.avtr", 1, "bad")
				h.SetVerdict("mirror", sdk.Verdict{Decided: true, Reason: "not public"})
			},
			want: "the mirror policy refuses it: not public", blocksAll: true,
			heal: func(h *sdktest.Host) uint64 {
				h.SetVerdict("mirror", sdk.Verdict{Decided: true, Allow: true})
				return 1
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := sdktest.NewHost(t)
			okRoot := site(h, "ok.avtr", 1, "fine")
			c.setup(h)
			m := start(t, h, c.config)

			sdktest.Eventually(t, within, "bad.avtr's error in ls", func() error {
				if st := ls(t, m)["bad.avtr"]; !strings.Contains(st.Error, c.want) || st.LastSync != "" {
					return fmt.Errorf("ls shows %+v, want never synced, error saying %q", st, c.want)
				}
				return nil
			})
			if !c.blocksAll {
				waitMirrored(t, m, "ok.avtr", 1, okRoot)
			}
			if pins := h.Pins(); len(pins) > 1 || (len(pins) == 1 && pins[okRoot] == "") {
				t.Errorf("pins = %v, want nothing of bad.avtr", pins)
			}

			seq := c.heal(h)
			res, _ := h.Resolve(t.Context(), "bad.avtr")
			updated(h, "bad.avtr", seq)
			updated(h, "ok.avtr", 1)
			waitMirrored(t, m, "bad.avtr", seq, res.Root)
			waitMirrored(t, m, "ok.avtr", 1, okRoot)
		})
	}
}

// A new version whose sync fails leaves the one ls shows pinned, and pins
// nothing of its own, until it is taken.
func TestFailedSyncKeepsThePreviousVersion(t *testing.T) {
	h := sdktest.NewHost(t)
	old := site(h, "a.avtr", 1, "v1")
	m := start(t, h, `{"names":["a.avtr"]}`)
	waitMirrored(t, m, "a.avtr", 1, old)

	root := site(h, "a.avtr", 2, "v2")
	h.Fail("Provide", root, status.Error(codes.Unavailable, "no peers to provide to"))
	updated(h, "a.avtr", 2)
	sdktest.Eventually(t, within, "the failed sync in ls", func() error {
		if st := ls(t, m)["a.avtr"]; st.Seq != 1 || st.Root != old || !strings.Contains(st.Error, "no peers to provide to") {
			return fmt.Errorf("ls shows %+v, want version 1 and the provide error", st)
		}
		return nil
	})
	if pins := h.Pins(); len(pins) != 1 || pins[old] == "" {
		t.Errorf("pins = %v, want version 1's root only", pins)
	}

	h.Fail("Provide", root, nil)
	updated(h, "a.avtr", 2)
	waitMirrored(t, m, "a.avtr", 2, root)
	if pins := h.Pins(); len(pins) != 1 || pins[root] == "" {
		t.Errorf("pins = %v, want version 2's root only", pins)
	}
}

// A zone the node refuses is counted, in ls and in the zones_refused
// metric, and the mirror keeps what it had and takes the next good one.
func TestRefusedZoneIsCountedAndTheNextIsTaken(t *testing.T) {
	h := sdktest.NewHost(t)
	old := site(h, "a.avtr", 1, "v1")
	m := start(t, h, `{"names":["a.avtr"]}`)
	waitMirrored(t, m, "a.avtr", 1, old)

	h.Deliver(sdk.TopicMessage{Topic: sdk.NameTopic("a.avtr"), Data: []byte("junk"), From: "12D3KooWJunk"})
	h.Fail("OfferZone", sdk.ZoneKeyPrefix+"a.avtr", status.Error(codes.PermissionDenied, "bad signature"))
	announce(h, "a.avtr", "12D3KooWForger", sdk.NameMessage{Kind: sdk.KindZone, Zone: []byte("forged"), Seq: 9})
	sdktest.Eventually(t, within, "the refused zone counted", func() error {
		if v, _ := h.CounterValue("zones_refused"); v != 1 {
			return fmt.Errorf("zones_refused = %v, want 1", v)
		}
		if st := ls(t, m)["a.avtr"]; st.Refused != 1 || st.Seq != 1 || st.Root != old || st.Error != "" {
			return fmt.Errorf("ls shows %+v, want 1 refused and version 1 kept", st)
		}
		return nil
	})

	h.Fail("OfferZone", sdk.ZoneKeyPrefix+"a.avtr", nil)
	root := site(h, "a.avtr", 2, "v2")
	announce(h, "a.avtr", ownerPeer, sdk.NameMessage{Kind: sdk.KindZone, Zone: zone("a.avtr", 2), Seq: 2})
	if st := waitMirrored(t, m, "a.avtr", 2, root); st.Refused != 1 {
		t.Errorf("ls shows %d refused, want still 1", st.Refused)
	}
	if v, _ := h.CounterValue("zones_refused"); v != 1 {
		t.Errorf("zones_refused = %v, want still 1", v)
	}
}

// When one of the name's hosts says it is leaving, the mirror puts the
// owner's records at once; a peer that is not a host is not listened to.
func TestLeavingHostMakesTheMirrorRepublish(t *testing.T) {
	h := sdktest.NewHost(t)
	root := site(h, "a.avtr", 1, "v1")
	m := start(t, h, `{"names":["a.avtr"]}`)
	waitMirrored(t, m, "a.avtr", 1, root)

	// Messages on the topic are taken in order: the stranger's first.
	announce(h, "a.avtr", "12D3KooWStranger", sdk.NameMessage{Kind: sdk.KindLeaving})
	announce(h, "a.avtr", ownerPeer, sdk.NameMessage{Kind: sdk.KindLeaving})
	claimKey, zoneKey := sdk.ClaimKeyPrefix+"a.avtr", sdk.ZoneKeyPrefix+"a.avtr"
	sdktest.Eventually(t, within, "the owner's records put", func() error {
		if got := h.Calls("PutRecord"); len(got) < 2 {
			return fmt.Errorf("put %v, want the claim and the zone", got)
		}
		return nil
	})
	if got := h.Calls("PutRecord"); !slices.Equal(got, []string{claimKey, zoneKey}) {
		t.Errorf("put %v, want the claim and the zone once: the stranger is not a host", got)
	}
	claim, _ := h.Record(claimKey)
	z, _ := h.Record(zoneKey)
	if string(claim) != "claim of a.avtr" || string(z) != string(zone("a.avtr", 1)) {
		t.Errorf("put claim %q and zone %q, want the owner's", claim, z)
	}
}

// The signed records kept at a sync are put every republish interval, from
// the mirror's own copy, after a restart and while the name does not
// resolve.
func TestRecordsAreRepublishedWhileTheOwnerIsAway(t *testing.T) {
	h := sdktest.NewHost(t)
	root := site(h, "a.avtr", 1, "v1")
	first := &mirror{}
	if diags := first.Start(t.Context(), json.RawMessage(`{"names":["a.avtr"]}`), h); diags.HasError() {
		t.Fatal(diags)
	}
	waitMirrored(t, first, "a.avtr", 1, root)
	if diags := first.Stop(t.Context()); diags.HasError() {
		t.Fatal(diags)
	}
	if got := h.Calls("PutRecord"); len(got) != 0 {
		t.Fatalf("put %v before any republish", got)
	}

	h.Fail("Resolve", "a.avtr", status.Error(codes.NotFound, "the DHT forgot the name"))
	m := start(t, h, `{"names":["a.avtr"],"republish_interval":"1s"}`)
	sdktest.Eventually(t, within, "the kept records put", func() error {
		claim, _ := h.Record(sdk.ClaimKeyPrefix + "a.avtr")
		z, _ := h.Record(sdk.ZoneKeyPrefix + "a.avtr")
		if string(claim) != "claim of a.avtr" || string(z) != string(zone("a.avtr", 1)) {
			return fmt.Errorf("records are %q and %q, want the owner's claim and zone", claim, z)
		}
		return nil
	})
	if st := ls(t, m)["a.avtr"]; st.Seq != 1 || st.Root != root {
		t.Errorf("ls shows %+v after a restart, want version 1 kept", st)
	}
}

func TestCommands(t *testing.T) {
	h := sdktest.NewHost(t)
	listedRoot := site(h, "listed.avtr", 1, "listed")
	addedRoot := site(h, "added.avtr", 1, "added")
	m := start(t, h, `{"names":["listed.avtr"]}`)
	ctx := t.Context()

	out, diags := m.Command(ctx, "add", []string{"added.avtr"})
	if st, ok := byName(t, out)["added.avtr"]; diags.HasError() || !ok || !st.Added {
		t.Fatalf("add = %+v, %v; want added.avtr listed as added", out, diags)
	}
	waitMirrored(t, m, "added.avtr", 1, addedRoot)
	waitMirrored(t, m, "listed.avtr", 1, listedRoot)
	// The same name in its Alternet spelling is the same name.
	if out, diags := m.Command(ctx, "add", []string{"an://Added:avtr"}); diags.HasError() || len(byName(t, out)) != 2 {
		t.Errorf("add again as an://Added:avtr: %+v, %v; want the two names, nothing new", out, diags)
	}
	if got := h.Calls("SubscribeTopic"); count(got, sdk.NameTopic("added.avtr")) != 1 {
		t.Errorf("subscribed to %v, want added.avtr's topic once", got)
	}

	for _, c := range []struct {
		command string
		args    []string
		want    string
	}{
		{"rm", []string{"listed.avtr"}, "remove it there"},
		{"rm", []string{"nobody.avtr"}, "not mirrored here"},
		{"add", nil, "takes: ls, add NAME, rm NAME"},
		{"rm", []string{"a.avtr", "b.avtr"}, "takes: ls, add NAME, rm NAME"},
		{"status", nil, "takes: ls, add NAME, rm NAME"},
	} {
		if _, diags := m.Command(ctx, c.command, c.args); !diags.HasError() || !strings.Contains(diags[0].Summary, c.want) {
			t.Errorf("%s %v = %v, want an error saying %q", c.command, c.args, diags, c.want)
		}
	}

	out, diags = m.Command(ctx, "rm", []string{"added.avtr"})
	if states := byName(t, out); diags.HasError() || len(states) != 1 || states["listed.avtr"].Name == "" {
		t.Errorf("rm = %+v, %v; want listed.avtr left", out, diags)
	}
	if pins := h.Pins(); pins[addedRoot] != "" || pins[listedRoot] == "" {
		t.Errorf("pins = %v, want added.avtr's root unpinned, listed.avtr's kept", pins)
	}
	for _, kind := range []string{"claim", "zone"} {
		if _, err := os.Stat(filepath.Join(h.DataDir(), "records", "added.avtr."+kind)); !os.IsNotExist(err) {
			t.Errorf("the kept %s of a removed name: %v, want it gone", kind, err)
		}
	}
}

// Names added by command come back after a restart; a name the config no
// longer lists goes, as `mirror rm` of a listed name says it will.
func TestRestartKeepsAddedNamesAndDropsUnlistedOnes(t *testing.T) {
	h := sdktest.NewHost(t)
	oldRoot := site(h, "old.avtr", 1, "old")
	addedRoot := site(h, "added.avtr", 1, "added")
	first := &mirror{}
	if diags := first.Start(t.Context(), json.RawMessage(`{"names":["old.avtr"]}`), h); diags.HasError() {
		t.Fatal(diags)
	}
	if _, diags := first.Command(t.Context(), "add", []string{"added.avtr"}); diags.HasError() {
		t.Fatal(diags)
	}
	waitMirrored(t, first, "old.avtr", 1, oldRoot)
	waitMirrored(t, first, "added.avtr", 1, addedRoot)
	if diags := first.Stop(t.Context()); diags.HasError() {
		t.Fatal(diags)
	}

	m := start(t, h, `{}`)
	states := ls(t, m)
	if st, ok := states["added.avtr"]; !ok || !st.Added || st.Root != addedRoot {
		t.Errorf("ls after a restart shows added.avtr as %+v, want it kept", st)
	}
	if _, ok := states["old.avtr"]; ok {
		t.Error("old.avtr, no longer in the config, is still mirrored after a restart")
	}
	if pins := h.Pins(); pins[oldRoot] != "" || pins[addedRoot] == "" {
		t.Errorf("pins = %v, want old.avtr's root unpinned, added.avtr's kept", pins)
	}
	sdktest.Eventually(t, within, "added.avtr followed again", func() error {
		if got := h.Calls("SubscribeTopic"); count(got, sdk.NameTopic("added.avtr")) != 2 {
			return fmt.Errorf("subscribed to %v, want added.avtr's topic again", got)
		}
		return nil
	})
	if got := h.Calls("SubscribeTopic"); count(got, sdk.NameTopic("old.avtr")) != 1 {
		t.Errorf("subscribed to %v, want old.avtr's topic no more", got)
	}
}

// With discover, a name the node learns of is mirrored when the Lua mirror
// hook allows it; a version it did not allow is not asked again.
func TestDiscoverAsksTheMirrorHook(t *testing.T) {
	h := sdktest.NewHost(t)
	site(h, "x.avtr", 1, "x")
	yRoot := site(h, "y.avtr", 1, "y")
	m := start(t, h, `{"discover":true}`)

	updated(h, "x.avtr", 1) // no script: the hook has no opinion, so no
	sdktest.Eventually(t, within, "the hook asked about x.avtr", func() error {
		if len(h.Calls("Decide")) == 0 {
			return errors.New("not asked")
		}
		return nil
	})
	h.SetVerdict("mirror", sdk.Verdict{Decided: true, Allow: true})
	updated(h, "x.avtr", 1) // the same version: not asked again
	updated(h, "y.avtr", 1)
	if st := waitMirrored(t, m, "y.avtr", 1, yRoot); !st.Discovered || st.Added {
		t.Errorf("ls shows %+v, want y.avtr discovered", st)
	}
	// Events are taken in order: x.avtr's second came before y.avtr's.
	if _, ok := ls(t, m)["x.avtr"]; ok {
		t.Error("x.avtr is mirrored though the hook did not allow it")
	}
	if got := h.Calls("Resolve"); count(got, "x.avtr") != 1 {
		t.Errorf("resolved %v, want x.avtr once: its version was refused", got)
	}

	xRoot := site(h, "x.avtr", 2, "x2")
	updated(h, "x.avtr", 2)
	waitMirrored(t, m, "x.avtr", 2, xRoot)
}

func TestNoDiscoverWithoutTheOption(t *testing.T) {
	h := sdktest.NewHost(t)
	aRoot := site(h, "a.avtr", 1, "a")
	site(h, "x.avtr", 1, "x")
	h.SetVerdict("mirror", sdk.Verdict{Decided: true, Allow: true})
	m := start(t, h, `{"names":["a.avtr"]}`)
	waitMirrored(t, m, "a.avtr", 1, aRoot)

	updated(h, "x.avtr", 1)
	updated(h, "a.avtr", 1) // taken after x.avtr's: a resync of a.avtr
	sdktest.Eventually(t, within, "a.avtr resolved again", func() error {
		if got := h.Calls("Resolve"); count(got, "a.avtr") != 2 {
			return fmt.Errorf("resolved %v, want a.avtr twice", got)
		}
		return nil
	})
	if _, ok := ls(t, m)["x.avtr"]; ok || slices.Contains(h.Calls("Resolve"), "x.avtr") {
		t.Error("x.avtr was discovered without discover: true")
	}
}

// Stop ends a sync under way and saves the state, without waiting for the
// fetch to finish.
func TestStopReturnsPromptly(t *testing.T) {
	h := sdktest.NewHost(t)
	root := site(h, "a.avtr", 1, "v1")
	started, release := h.HoldFetches()
	defer release()
	m := &mirror{}
	if diags := m.Start(t.Context(), json.RawMessage(`{"names":["a.avtr"],"discover":true}`), h); diags.HasError() {
		t.Fatal(diags)
	}
	if target := <-started; target != "/cid/"+root {
		t.Fatalf("fetching %s, want the root", target)
	}

	stopped := make(chan sdk.Diagnostics, 1)
	go func() { stopped <- m.Stop(context.Background()) }()
	var diags sdk.Diagnostics
	sdktest.Eventually(t, within, "Stop returned", func() error {
		select {
		case diags = <-stopped:
			return nil
		default:
			return errors.New("still stopping")
		}
	})
	if diags.HasError() {
		t.Errorf("Stop = %v", diags)
	}
	if pins := h.Pins(); len(pins) != 0 {
		t.Errorf("pins = %v, want none: the fetch did not finish", pins)
	}
	if _, err := os.Stat(filepath.Join(h.DataDir(), "mirror.json")); err != nil {
		t.Errorf("state not saved at Stop: %v", err)
	}
}

// A Start that fails has started nothing.
func TestStartThatCannotWatchUpdatesStartsNothing(t *testing.T) {
	h := sdktest.NewHost(t)
	site(h, "a.avtr", 1, "v1")
	h.Fail("Subscribe", "name.updated", status.Error(codes.Unavailable, "node shutting down"))
	diags := (&mirror{}).Start(t.Context(), json.RawMessage(`{"names":["a.avtr"]}`), h)
	if !diags.HasError() || !strings.Contains(diags[0].Summary, "watch name updates") {
		t.Fatalf("Start = %v, want an error saying it cannot watch name updates", diags)
	}
	if got := append(h.Calls("SubscribeTopic"), h.Calls("Resolve")...); len(got) != 0 {
		t.Errorf("a failed Start left a follower behind: it called %v", got)
	}
}
