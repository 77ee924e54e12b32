package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The relay's Lua relay_reserve hook decides who may reserve: a private node
// whose peer ID the script refuses gets no slot, the relay counts and logs
// the refusal with the script's reason, and the node holds no relay address.
func TestRelayPolicyRefusesReservations(t *testing.T) {
	t.Parallel()
	script := writeScript(t, "relay.lua", `
return {
  relay_reserve = function(p)
    return { allow = false, reason = "closed to " .. p.peer }
  end,
}`)
	cfg := writeConfig(t, map[string]any{"roles": []string{"relay"}})
	relay := startDaemon(t, filepath.Join(t.TempDir(), "r"), append(append([]string{}, lowWork...),
		"--config", cfg, "--nat.reachability", "public", "--policy.scripts", script)...)
	eventually(t, 20*time.Second, "the relay runs", func() error {
		var st struct{ Running bool }
		if r := cli(t, relay.repo, nil, "roles", "call", "relay", "status", "--json"); r.code != 0 {
			return fmt.Errorf("%s", r.stderr)
		}
		cliJSON(t, relay.repo, &st, "roles", "call", "relay", "status")
		if !st.Running {
			return fmt.Errorf("not running")
		}
		return nil
	})
	private := startDaemon(t, filepath.Join(t.TempDir(), "p"), append(append([]string{}, lowWork...),
		"--nat.reachability", "private", "--nat.relays", relay.addr, "--bootstrap", relay.addr)...)
	eventually(t, 30*time.Second, "the relay refuses the reservation", func() error {
		var st struct{ Reservations, Refused int }
		cliJSON(t, relay.repo, &st, "roles", "call", "relay", "status")
		if st.Refused < 1 || st.Reservations != 0 {
			return fmt.Errorf("relay status %+v", st)
		}
		return nil
	})
	if !strings.Contains(relay.log.String(), "closed to "+private.peerID) {
		t.Fatalf("the script's reason is not logged:\n%s", grepLog(relay.log.String(), "relay"))
	}
	var id struct {
		Reachability string
		RelayAddrs   []string `json:"relay_addrs"`
	}
	cliJSON(t, private.repo, &id, "id")
	if id.Reachability != "private" || len(id.RelayAddrs) != 0 {
		t.Fatalf("private node: %+v", id)
	}
}
