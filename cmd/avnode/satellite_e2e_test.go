package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/avnode/avnode/core/api"
)

// satelliteNet is a beacon B hosting a name with a site, a full node F that
// fetched it, and a satellite S: a DHT client that serves no content.
type satelliteNet struct {
	nodes      []*proc
	beacon     *proc
	full, sat  *proc
	name, site string
	root       string
}

func startSatelliteNet(t testing.TB, fullNodes int) *satelliteNet {
	t.Helper()
	const name = "phone.avtr"
	nodes := startNetwork(t, fullNodes)
	join := append(append([]string{}, lowWork...), "--bootstrap", nodes[0].addr)
	cfg := writeConfig(t, map[string]any{"role_config": map[string]any{
		"beacon": map[string]any{"names": []map[string]any{{"name": name, "key": "k"}}, "interval": "2s"}}})
	b := startDaemon(t, filepath.Join(t.TempDir(), "beacon"), append(join, "--roles", "beacon,chat", "--config", cfg)...)
	mustCLI(t, b.repo, "key", "gen", "k")
	eventually(t, 30*time.Second, "the beacon hosts the name", func() error {
		if r := cli(t, b.repo, nil, "resolve", name, "--json"); r.code != 0 || !strings.Contains(r.stdout, b.peerID) {
			return fmt.Errorf("%s%s", r.stdout, r.stderr)
		}
		return nil
	})
	site := writeSite(t)
	var pub api.PublishResult
	cliJSON(t, b.repo, &pub, "publish", site, "--name", name)
	full := nodes[len(nodes)-1]
	mustCLI(t, full.repo, "get", name, "-o", filepath.Join(t.TempDir(), "full-copy"))
	// The phone's config as shipped: DHT client, no content served, few connections.
	phone, err := filepath.Abs("../../configs/phone-satellite.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sat := startDaemon(t, filepath.Join(t.TempDir(), "sat"), append(join, "--config", phone)...)
	waitRoleNamed(t, sat.repo, "satellite", "running", 30*time.Second) // a role starts after the node is ready
	return &satelliteNet{nodes: nodes, beacon: b, full: full, sat: sat, name: name, site: site, root: pub.Root}
}

type satStatus struct {
	Paired        bool
	Beacon        string
	ThroughBeacon int `json:"through_beacon"`
	Fallbacks     int
	LastError     string `json:"last_error"`
}

type beaconSatStatus struct {
	Paired            []string
	SatelliteRequests int `json:"satellite_requests"`
	SatelliteRefused  int `json:"satellite_refused"`
}

// resolveOn resolves name on d; each call decodes into a fresh value, as
// fields left out (through) must read empty.
func resolveOn(t testing.TB, d *proc, name string) api.Resolution {
	t.Helper()
	var res api.Resolution
	cliJSON(t, d.repo, &res, "resolve", name)
	return res
}

func beaconSatellites(t testing.TB, b *proc) beaconSatStatus {
	t.Helper()
	var list []beaconSatStatus
	cliJSON(t, b.repo, &list, "roles", "call", "beacon", "status")
	if len(list) != 1 {
		t.Fatalf("beacon status: %+v", list)
	}
	return list[0]
}

// A satellite pairs with the beacon its owner delegated to; resolve, get
// and offload go through the beacon; with the beacon gone they fall back to
// the DHT; a satellite not delegated, or revoked, is refused by the beacon.
func TestSatelliteLeansOnItsBeacon(t *testing.T) {
	t.Parallel()
	n := startSatelliteNet(t, 4)
	b, s := n.beacon, n.sat
	var id struct {
		DHTMode string `json:"dht_mode"`
	}
	cliJSON(t, s.repo, &id, "id")
	if id.DHTMode != "client" {
		t.Fatalf("the satellite's DHT mode is %q", id.DHTMode)
	}

	// Not delegated yet: the beacon refuses to pair, and says what to run.
	r := cli(t, s.repo, nil, "satellite", "pair", n.name)
	if r.code == 0 || !strings.Contains(r.stderr, "has not delegated") || !strings.Contains(r.stderr, "beacon delegate") {
		t.Fatalf("pairing without delegation: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := beaconSatellites(t, b); got.SatelliteRefused != 1 || len(got.Paired) != 0 {
		t.Fatalf("the beacon did not count the refusal: %+v", got)
	}
	// Unpaired, resolve goes by the DHT.
	res := resolveOn(t, s, n.name)
	if res.Through != "" || res.Root != n.root {
		t.Fatalf("unpaired resolve: %+v", res)
	}

	mustCLI(t, b.repo, "roles", "call", "beacon", "delegate", n.name, s.peerID)
	var st satStatus
	cliJSON(t, s.repo, &st, "satellite", "pair", n.name)
	if !st.Paired || st.Beacon != b.peerID {
		t.Fatalf("pair: %+v", st)
	}

	res = resolveOn(t, s, n.name)
	if res.Through != b.peerID || res.Root != n.root {
		t.Fatalf("resolve through the beacon: through %q root %q, want %q %q", res.Through, res.Root, b.peerID, n.root)
	}
	out := filepath.Join(t.TempDir(), "copy")
	var got api.GetResult
	cliJSON(t, s.repo, &got, "get", n.name, "-o", out)
	if got.Through != b.peerID {
		t.Fatalf("get through the beacon: %+v\n%s", got, grepLog(s.log.String(), "satellite", "resolve-ahead"))
	}
	sameTree(t, n.site, out)
	if r := cli(t, s.repo, nil, "publish", n.site); r.code == 0 || !strings.Contains(r.stderr, "serves no content") {
		t.Fatalf("publish on a satellite: %d %s", r.code, r.stderr)
	}
	if got := beaconSatellites(t, b); got.SatelliteRequests != 2 || len(got.Paired) != 1 || got.Paired[0] != s.peerID {
		t.Fatalf("beacon status after a resolve and a get: %+v", got)
	}

	var answer struct{ Reply, By string }
	cliJSON(t, s.repo, &answer, "satellite", "offload", "chat", `{"prompt": "hello from the phone"}`)
	if answer.By != b.peerID || answer.Reply != "you said, backwards: phone the from hello" {
		t.Fatalf("offload: %+v", answer)
	}
	r = cli(t, s.repo, nil, "satellite", "offload", "nosuchrole", "{}")
	if r.code == 0 || !strings.Contains(r.stderr, "nosuchrole") {
		t.Fatalf("offload to a role the beacon does not run: %d %s", r.code, r.stderr)
	}

	// Revoked: the beacon refuses and unpairs; the node goes by the DHT.
	mustCLI(t, b.repo, "roles", "call", "beacon", "revoke", n.name, s.peerID)
	res = resolveOn(t, s, n.name)
	cliJSON(t, s.repo, &st, "satellite", "status")
	if res.Through != "" || res.Root != n.root || !strings.Contains(st.LastError, "refused") {
		t.Fatalf("after revoke: resolve through %q, status %+v", res.Through, st)
	}
	if got := beaconSatellites(t, b); got.SatelliteRefused != 2 || len(got.Paired) != 0 {
		t.Fatalf("beacon status after revoke: %+v", got)
	}

	// Delegated and paired again, then the beacon goes: resolve and get
	// still work, from the DHT and the full node that holds the site.
	mustCLI(t, b.repo, "roles", "call", "beacon", "delegate", n.name, s.peerID)
	cliJSON(t, s.repo, &st, "satellite", "pair", n.name)
	mustCLI(t, s.repo, "repo", "gc") // the satellite's copy is not pinned: gone
	b.stop()
	res = resolveOn(t, s, n.name)
	if res.Through != "" || res.Root != n.root {
		t.Fatalf("resolve with the beacon down: %+v", res)
	}
	out2 := filepath.Join(t.TempDir(), "copy2")
	got = api.GetResult{}
	cliJSON(t, s.repo, &got, "get", n.name, "-o", out2)
	if got.Through != "" || got.Stats.Sources[n.full.peerID] == 0 {
		t.Fatalf("get with the beacon down: %+v", got)
	}
	sameTree(t, n.site, out2)
	cliJSON(t, s.repo, &st, "satellite", "status")
	if st.ThroughBeacon != 2 || st.Fallbacks < 3 {
		t.Fatalf("satellite status: %+v", st)
	}
}
