package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/avnode/avnode/sdk"
	"github.com/avnode/avnode/sdk/sdktest"
)

const satellitePeer = "12D3KooWSatellite"

// newBeacon sets a beacon up for config on h, as Start does before its
// work begins (Start itself needs a node's streams).
func newBeacon(t *testing.T, h *sdktest.Host, config string) *beacon {
	t.Helper()
	cfg, interval, diags := parseConfig(json.RawMessage(config))
	if diags.HasError() {
		t.Fatalf("config %s: %v", config, diags)
	}
	b := &beacon{}
	if err := b.init(cfg, interval, h); err != nil {
		t.Fatal(err)
	}
	return b
}

// hostSite gives h a name with content, and returns the content's root.
func hostSite(h *sdktest.Host, res sdk.Resolution) string {
	res.Root = h.AddDir(map[string]string{"index.html": "<h1>Hi</h1>"}, nil)
	h.SetName(res)
	return res.Root
}

func TestValidateConfig(t *testing.T) {
	for _, c := range []struct {
		config, want, attr string
		warning            bool
	}{
		{config: `{"names":[{"name":"a.avtr","key":"a"}]}`},
		{config: `{"names":[{"name":"a.avtr","key":"a"}],"interval":"30s"}`},
		{config: `{}`, want: "no names to host", warning: true},
		{config: `{"names":[{"name":"a.avtr"}]}`, want: "needs a name and the key", attr: "names[0]"},
		{config: `{"names":[{"name":"a.avtr","key":"a"}],"interval":"1ms"}`, want: "at least 1s", attr: "interval"},
		{config: `{"names":[{"name":"a.avtr","key":"a"}],"intervl":"1m"}`, want: "unknown field"},
	} {
		t.Run(c.config, func(t *testing.T) {
			b := &beacon{}
			diags := b.ValidateConfig(json.RawMessage(c.config))
			if b.cfg.Names != nil || b.interval != 0 {
				t.Errorf("ValidateConfig changed the beacon: %+v, %v", b.cfg, b.interval)
			}
			if c.want == "" {
				if len(diags) != 0 {
					t.Errorf("diagnostics = %v, want none", diags)
				}
				return
			}
			if len(diags) != 1 || !strings.Contains(diags[0].Summary, c.want) || diags[0].Attribute != c.attr ||
				diags.HasError() == c.warning {
				t.Errorf("diagnostics = %+v, want one saying %q at %q (warning %v)", diags, c.want, c.attr, c.warning)
			}
		})
	}
}

func TestSchemaAgreesWithConfig(t *testing.T) {
	sdktest.CheckSchema(t, (&beacon{}).Describe().ConfigSchema, config{})
}

func TestCheckClaimsAndListsThisNodeAsHost(t *testing.T) {
	h := sdktest.NewHost(t)
	root := hostSite(h, sdk.Resolution{Name: "site.avtr", Key: "k51site", Seq: 1, SignedZone: []byte("zone")})
	topic, _ := h.SubscribeTopic(t.Context(), sdk.NameTopic("site.avtr"))
	b := newBeacon(t, h, `{"names":[{"name":"site.avtr","key":"site","copies":2}]}`)

	if err := b.check(t.Context(), b.cfg.Names[0]); err != nil {
		t.Fatal(err)
	}
	if got := h.Calls("Claim"); !slices.Equal(got, []string{"site.avtr"}) {
		t.Errorf("claimed %v, want site.avtr", got)
	}
	res, _ := h.Resolve(t.Context(), "site.avtr")
	for _, want := range []sdk.ZoneRecord{{Type: "HOST", Value: sdktest.PeerID}, {Type: "TXT", Value: "copies=2"}} {
		if !slices.Contains(res.Records, want) {
			t.Errorf("zone records %v lack %v", res.Records, want)
		}
	}
	if got := h.Calls("Provide"); !slices.Equal(got, []string{root}) {
		t.Errorf("provided %v, want the root %s", got, root)
	}
	select {
	case msg := <-topic:
		var m sdk.NameMessage
		if err := json.Unmarshal(msg.Data, &m); err != nil || m.Kind != sdk.KindZone || m.Seq != res.Seq || string(m.Zone) != "zone" {
			t.Errorf("announced %s (%v), want the zone of seq %d", msg.Data, err, res.Seq)
		}
	default:
		t.Error("the beacon announced nothing on the name's topic")
	}
	st := b.statusList()
	if len(st) != 1 || st[0].Seq != res.Seq || st[0].Root != root {
		t.Errorf("status = %+v, want seq %d and root %s", st, res.Seq, root)
	}
}

func TestCheckLeavesAHostedNameAsItIs(t *testing.T) {
	h := sdktest.NewHost(t)
	hostSite(h, sdk.Resolution{Name: "site.avtr", Seq: 4, CopiesWanted: 2, Hosts: []sdk.PeerInfo{{ID: sdktest.PeerID}}})
	b := newBeacon(t, h, `{"names":[{"name":"site.avtr","key":"site","copies":2}]}`)

	if err := b.check(t.Context(), b.cfg.Names[0]); err != nil {
		t.Fatal(err)
	}
	if got := append(h.Calls("SetZoneRecord"), h.Calls("RemoveZoneRecord")...); len(got) != 0 {
		t.Errorf("changed the zone of a name it hosts with its target: %v", got)
	}
	st := b.statusList()[0]
	if !st.UnderReplicated || st.Wanted != 2 || st.Copies != 0 {
		t.Errorf("status = %+v, want under-replicated: 0 of 2 copies", st)
	}
	if v, _ := h.GaugeValue("under_replicated_names"); v != 1 {
		t.Errorf("under_replicated_names = %v, want 1", v)
	}
}

func TestBeaconRefusesASatelliteTheOwnerDidNotDelegateTo(t *testing.T) {
	h := sdktest.NewHost(t)
	hostSite(h, sdk.Resolution{Name: "site.avtr", Seq: 1, SignedZone: []byte("zone")})
	b := newBeacon(t, h, `{"names":[{"name":"site.avtr","key":"site"}]}`)
	ctx := t.Context()

	if _, err := b.admit(ctx, satellitePeer); err == nil || !strings.Contains(err.Error(), "delegate site.avtr "+satellitePeer) {
		t.Errorf("admit of a stranger = %v, want a refusal saying how to delegate", err)
	}
	resp := b.answer(ctx, satellitePeer, sdk.SatelliteRequest{Op: sdk.SatPair, Name: "site.avtr"})
	if !strings.Contains(resp.Error, "has not delegated") {
		t.Errorf("pair without a SAT record = %+v, want refused", resp)
	}
	resp = b.answer(ctx, satellitePeer, sdk.SatelliteRequest{Op: sdk.SatResolve, Name: "site.avtr"})
	if !strings.Contains(resp.Error, "not paired") || resp.Zone != nil {
		t.Errorf("resolve of an unpaired peer = %+v, want refused", resp)
	}
	if v, _ := h.CounterValue("satellite_refused"); v != 3 {
		t.Errorf("satellite_refused = %v, want 3", v)
	}
	// The status counts the refusals it can name: the stranger's (for every
	// name) and the pair; a resolve of a peer paired for no name is not.
	if st := b.statusList()[0]; st.SatelliteRefused != 2 || len(st.Paired) != 0 {
		t.Errorf("status = %+v, want 2 refused and none paired", st)
	}
}

func TestDelegatedSatellitePairsAndIsServedUntilRevoked(t *testing.T) {
	h := sdktest.NewHost(t)
	hostSite(h, sdk.Resolution{Name: "site.avtr", Seq: 1, SignedZone: []byte("zone")})
	b := newBeacon(t, h, `{"names":[{"name":"site.avtr","key":"site"}]}`)
	ctx := t.Context()

	out, diags := b.Command(ctx, "delegate", []string{"site.avtr", satellitePeer})
	if diags.HasError() || !slices.Equal(out.(map[string]any)["satellites"].([]string), []string{satellitePeer}) {
		t.Fatalf("delegate = %v, %v", out, diags)
	}
	if limit, err := b.admit(ctx, satellitePeer); err != nil || limit != maxPairRequest {
		t.Errorf("admit of a delegated peer = %d, %v; want a pair request's %d bytes", limit, err, maxPairRequest)
	}
	if resp := b.answer(ctx, satellitePeer, sdk.SatelliteRequest{Op: sdk.SatPair, Name: "site.avtr"}); resp.Error != "" || resp.Beacon != sdktest.PeerID {
		t.Fatalf("pair = %+v, want this beacon", resp)
	}
	if limit, err := b.admit(ctx, satellitePeer); err != nil || limit != sdk.MaxSatelliteMessage {
		t.Errorf("admit of a paired peer = %d, %v; want %d bytes", limit, err, sdk.MaxSatelliteMessage)
	}
	if again, err := loadPairings(h.DataDir()); err != nil || !slices.Equal(again.paired("site.avtr"), []string{satellitePeer}) {
		t.Errorf("pairings after a restart = %v, %v; want the satellite", again, err)
	}
	resp := b.answer(ctx, satellitePeer, sdk.SatelliteRequest{Op: sdk.SatResolve, Name: "site.avtr"})
	if resp.Error != "" || string(resp.Zone) != "zone" || resp.ZoneName != "site.avtr" {
		t.Errorf("resolve = %+v, want the signed zone", resp)
	}

	if _, diags := b.Command(ctx, "revoke", []string{"site.avtr", satellitePeer}); diags.HasError() {
		t.Fatal(diags)
	}
	resp = b.answer(ctx, satellitePeer, sdk.SatelliteRequest{Op: sdk.SatResolve, Name: "site.avtr"})
	if !strings.Contains(resp.Error, "unpaired") || resp.Zone != nil {
		t.Errorf("resolve after revoke = %+v, want unpaired", resp)
	}
	if _, ok := b.pairs.name(satellitePeer); ok {
		t.Error("a revoked satellite is still paired")
	}
	st := b.statusList()[0]
	if st.SatelliteRequests != 1 || st.SatelliteRefused != 1 || len(st.Paired) != 0 || len(st.Satellites) != 0 {
		t.Errorf("status = %+v, want 1 served, 1 refused, none paired or delegated", st)
	}
}

// The name of a get is resolved once, and the zone answered is the one
// whose root was fetched.
func TestSatelliteGetResolvesTheNameOnce(t *testing.T) {
	h := sdktest.NewHost(t)
	root := hostSite(h, sdk.Resolution{Name: "site.avtr", Seq: 1, SignedZone: []byte("zone")})
	b := newBeacon(t, h, `{"names":[{"name":"site.avtr","key":"site"}]}`)

	resp, err := b.work(t.Context(), sdk.SatelliteRequest{Op: sdk.SatGet, Target: "site.avtr/index.html"})
	if err != nil || resp.Root != root || string(resp.Zone) != "zone" || resp.ZoneName != "site.avtr" {
		t.Fatalf("get = %+v, %v; want root %s and the zone", resp, err, root)
	}
	// A fetch of a name resolves it inside the node: the beacon fetches the
	// root it resolved instead.
	if got := h.Calls("Resolve"); !slices.Equal(got, []string{"site.avtr"}) {
		t.Errorf("resolved %v, want site.avtr once", got)
	}
	if got := h.Calls("Fetch"); !slices.Equal(got, []string{"/cid/" + root + "/index.html"}) {
		t.Errorf("fetched %v, want the resolved root's /index.html", got)
	}

	resp, err = b.work(t.Context(), sdk.SatelliteRequest{Op: sdk.SatGet, Target: "/cid/" + root})
	if err != nil || resp.Root != root || resp.Zone != nil {
		t.Errorf("get of a CID = %+v, %v; want its root and no zone", resp, err)
	}
}

func TestOffloadCallsTheRoleAsked(t *testing.T) {
	h := sdktest.NewHost(t)
	h.HandleRole("chat", func(_ context.Context, command string, args []string) (any, error) {
		return map[string]string{"command": command, "payload": args[0]}, nil
	})
	b := newBeacon(t, h, `{"names":[{"name":"site.avtr","key":"site"}]}`)

	resp, err := b.work(t.Context(), sdk.SatelliteRequest{Op: sdk.SatOffload, Service: "chat", Payload: json.RawMessage(`{"prompt":"hi"}`)})
	if err != nil || string(resp.Output) != `{"command":"offload","payload":"{\"prompt\":\"hi\"}"}` {
		t.Errorf("offload = %s, %v", resp.Output, err)
	}
	if _, err := b.work(t.Context(), sdk.SatelliteRequest{Op: sdk.SatOffload, Service: "absent"}); err == nil {
		t.Error("an offload to a role that does not run succeeded")
	}
}

func TestCommands(t *testing.T) {
	h := sdktest.NewHost(t)
	b := newBeacon(t, h, `{"names":[{"name":"b.avtr","key":"b"},{"name":"a.avtr","key":"a","copies":3}]}`)

	out, diags := b.Command(t.Context(), "status", nil)
	st, _ := out.([]nameStatus)
	if diags.HasError() || len(st) != 2 || st[0].Name != "b.avtr" || st[1].Name != "a.avtr" || st[1].Wanted != 3 {
		t.Errorf("status = %+v, %v; want both names in config order", out, diags)
	}
	if _, diags := b.Command(t.Context(), "delegate", []string{"other.avtr", satellitePeer}); !diags.HasError() ||
		!strings.Contains(diags[0].Summary, "does not host other.avtr") {
		t.Errorf("delegate for a name not hosted = %v, want refused", diags)
	}
	if _, diags := b.Command(t.Context(), "stats", nil); !diags.HasError() || !strings.Contains(diags[0].Summary, "status, delegate") {
		t.Errorf("unknown command = %v, want the commands listed", diags)
	}
}

func TestStopRepublishesAndSaysItIsLeaving(t *testing.T) {
	h := sdktest.NewHost(t)
	hostSite(h, sdk.Resolution{Name: "site.avtr", Seq: 1, SignedZone: []byte("zone"), SignedClaim: []byte("claim")})
	topic, _ := h.SubscribeTopic(t.Context(), sdk.NameTopic("site.avtr"))
	b := newBeacon(t, h, `{"names":[{"name":"site.avtr","key":"site"}]}`)
	b.cancel = func() {}

	b.Stop(t.Context())
	for key, want := range map[string]string{sdk.ZoneKeyPrefix + "site.avtr": "zone", sdk.ClaimKeyPrefix + "site.avtr": "claim"} {
		if got, _ := h.Record(key); string(got) != want {
			t.Errorf("record %s = %q, want %q", key, got, want)
		}
	}
	select {
	case msg := <-topic:
		var m sdk.NameMessage
		if json.Unmarshal(msg.Data, &m) != nil || m.Kind != sdk.KindLeaving {
			t.Errorf("message = %s, want leaving", msg.Data)
		}
	default:
		t.Error("the beacon did not say it is leaving")
	}
}
