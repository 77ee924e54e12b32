package main

import (
	"context"
	"strconv"
	"time"

	"github.com/avnode/avnode/sdk"
)

// The node says when it learns of a new version of a name (it resolved it,
// or stored its zone as a DHT holder: the name.updated event). A followed
// name then syncs at once (unless `follow_updates: false`), so a mirror that
// holds the zone keeps up without the owner's beacon.
//
// With `discover: true`, the mirror also follows names it was not told
// about: each new version of another name is offered to the Lua `mirror`
// hook, and the names it allows are mirrored like listed ones (for example,
// every public name up to a size: scripts/mirror-public.lua). Without a
// script nothing is discovered: the hook's fallback is deny. A version the
// hook refused is not asked again.

// watchUpdates handles name updates until ctx ends.
func (m *mirror) watchUpdates(ctx context.Context, events <-chan sdk.Event) {
	defer m.wg.Done()
	refused := map[string]uint64{} // the last seq the hook refused, per name
	for e := range events {
		name := e.Attrs["name"]
		seq, _ := strconv.ParseUint(e.Attrs["seq"], 10, 64)
		if f := m.follower(name); f != nil {
			if m.cfg.followUpdates() {
				f.wake()
			}
			continue
		}
		last, asked := refused[name]
		if name == "" || !m.cfg.Discover || (asked && seq <= last) {
			continue
		}
		refused[name] = seq
		if m.allowedByPolicy(ctx, name, !asked) {
			delete(refused, name)
			m.ensureState(name, false)
			m.update(name, func(st *nameState) { st.Discovered = true })
			m.follow(name)
			m.host.Logger().Info("discovered a name to mirror", "name", name)
		}
	}
}

// allowedByPolicy resolves name and asks the mirror hook; only an explicit
// yes counts. A no is logged the first time only: a holder stores many zones.
func (m *mirror) allowedByPolicy(ctx context.Context, name string, first bool) bool {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := m.host.Resolve(ctx, name)
	if err != nil {
		return false
	}
	v, err := m.host.Decide(ctx, "mirror", policyInput(name, res, 0))
	if err != nil || !v.Decided {
		return false
	}
	if !v.Allow && first {
		m.host.Logger().Info("not mirroring a discovered name", "name", name, "reason", v.Reason)
	}
	return v.Allow
}

func (m *mirror) follower(name string) *follower {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.followers[name]
}

// policyInput is what the mirror hook gets (core/policy/README.md).
func policyInput(name string, res sdk.Resolution, sizeBytes int64) map[string]any {
	return map[string]any{"name": name, "owner_key": res.Key, "public": isPublic(res),
		"size_bytes": sizeBytes, "seq": res.Seq, "copies_wanted": res.CopiesWanted}
}
