package daemon

import (
	"context"
	"encoding/json"
	"time"
)

// aheadTimeout bounds a role's resolve-ahead; past it the node goes on by
// itself, through the DHT.
const aheadTimeout = 15 * time.Second

// resolveAhead lets the roles that declare the "resolve-ahead" capability
// (the satellite) bring a name's zone or a target's content into the node
// first, from a peer they trust (the beacon), before the node resolves or
// fetches as usual and finds it there. It returns the peer that answered,
// or "" when none did.
//
// The role's command is `resolve-ahead KIND TARGET` (KIND resolve or get)
// and answers {"through": PEER_ID}.
func (d *Daemon) resolveAhead(ctx context.Context, kind, target string) string {
	if d.Roles == nil {
		return ""
	}
	for _, role := range d.Roles.WithCapability("resolve-ahead") {
		out, err := d.askAhead(ctx, role, kind, target)
		if err != nil {
			d.Log.Info("resolve-ahead failed; the node goes by the DHT", "role", role, "target", target, "err", err)
			continue
		}
		var answer struct {
			Through string `json:"through"`
		}
		if json.Unmarshal(out, &answer) == nil && answer.Through != "" {
			return answer.Through
		}
	}
	return ""
}

func (d *Daemon) askAhead(ctx context.Context, role, kind, target string) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, aheadTimeout)
	defer cancel()
	return d.Roles.Command(ctx, role, "resolve-ahead", []string{kind, target})
}
