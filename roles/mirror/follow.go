package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"time"

	"github.com/avnode/avnode/sdk"
)

// follower keeps one name mirrored: on start, on every zone announced on
// the name's topic, every resolve interval; and it republishes the owner's
// records every republish interval.
type follower struct {
	m      *mirror
	name   string
	cancel context.CancelFunc
	done   chan struct{}
	kick   chan struct{} // the node learned of a new version: sync now
}

func (m *mirror) follow(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.followers[name]; ok {
		return
	}
	ctx, cancel := context.WithCancel(m.ctx)
	f := &follower{m: m, name: name, cancel: cancel, done: make(chan struct{}), kick: make(chan struct{}, 1)}
	m.followers[name] = f
	m.wg.Add(1)
	go f.run(ctx)
}

// wake asks the follower to sync soon; it never blocks.
func (f *follower) wake() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

func (f *follower) stop() {
	f.cancel()
	<-f.done
}

func (f *follower) run(ctx context.Context) {
	defer f.m.wg.Done()
	defer close(f.done)
	var msgs <-chan sdk.TopicMessage
	if f.m.cfg.followTopic() {
		var err error
		if msgs, err = f.m.host.SubscribeTopic(ctx, sdk.NameTopic(f.name)); err != nil {
			f.m.host.Logger().Warn("subscribe to name topic; re-resolving only", "name", f.name, "err", err)
		}
	}
	var retry retrier
	retry.after(f.sync(ctx, nil), f.m.cfg.resolveEvery)
	resolve := time.NewTicker(f.m.cfg.resolveEvery)
	defer resolve.Stop()
	republish := time.NewTicker(f.m.cfg.republishEvery)
	defer republish.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-msgs:
			if !ok {
				msgs = nil // the node went; the tickers go on
				continue
			}
			retry.after(f.onMessage(ctx, msg), f.m.cfg.resolveEvery)
		case <-f.kick:
			retry.after(f.sync(ctx, nil), f.m.cfg.resolveEvery)
		case <-retry.due:
			retry.after(f.sync(ctx, nil), f.m.cfg.resolveEvery)
		case <-resolve.C:
			retry.after(f.sync(ctx, nil), f.m.cfg.resolveEvery)
		case <-republish.C:
			f.republish(ctx)
		}
	}
}

// retrier schedules another sync soon after a failed one (the content's
// providers may not be announced yet, a host may be restarting), backing
// off from 2 s up to the resolve interval.
type retrier struct {
	due  <-chan time.Time
	wait time.Duration
}

const firstRetry = 2 * time.Second

func (r *retrier) after(err error, longest time.Duration) {
	if err == nil {
		r.due, r.wait = nil, 0
		return
	}
	r.wait = min(max(2*r.wait, firstRetry), longest)
	r.due = time.After(r.wait)
}

// onMessage takes a zone announced on the topic, through the node's checks;
// it returns a failed sync's error.
func (f *follower) onMessage(ctx context.Context, msg sdk.TopicMessage) error {
	var nm sdk.NameMessage
	if json.Unmarshal(msg.Data, &nm) != nil {
		return nil
	}
	if nm.Kind == sdk.KindLeaving {
		f.onLeaving(ctx, msg.From)
		return nil
	}
	if nm.Kind != sdk.KindZone {
		return nil
	}
	res, err := f.m.host.OfferZone(ctx, sdk.ZoneKeyPrefix+f.name, nm.Zone)
	if err != nil {
		if f.m.refusalLogs.Allow() {
			f.m.host.Logger().Warn("zone refused", "name", f.name, "from", msg.From, "err", err)
		}
		f.m.host.CounterAdd("zones_refused", "zones offered over pub/sub that failed the node's checks", 1)
		f.m.update(f.name, func(st *nameState) { st.Refused++ })
		return nil
	}
	return f.sync(ctx, &res)
}

// onLeaving takes over at once when one of the name's hosts says it is going
// offline (messages are signed by their sender, so From is that host): the
// mirror puts the owner's records now rather than at its next republish.
func (f *follower) onLeaving(ctx context.Context, from string) {
	st, _ := f.m.get(f.name)
	if !slices.Contains(st.Sources, from) {
		return
	}
	f.m.host.Logger().Info("a host of the name is leaving; republishing now", "name", f.name, "host", from)
	f.republish(ctx)
}

// sync brings the mirror to the name's current version: res if given (an
// accepted zone), else a fresh resolve. The error is also kept in the
// name's status.
func (f *follower) sync(ctx context.Context, res *sdk.Resolution) error {
	err := f.syncErr(ctx, res)
	f.m.update(f.name, func(st *nameState) { st.Error = errText(err) })
	if err != nil {
		f.m.host.Logger().Warn("mirror sync", "name", f.name, "err", err)
	}
	return err
}

func (f *follower) syncErr(ctx context.Context, given *sdk.Resolution) error {
	var res sdk.Resolution
	if given != nil {
		res = *given
	} else {
		var err error
		if res, err = f.m.host.Resolve(ctx, f.name); err != nil {
			return fmt.Errorf("resolve: %w", err)
		}
	}
	have, _ := f.m.get(f.name)
	if res.Seq < have.Seq {
		return nil // never an older version over a newer one
	}
	if res.Seq == have.Seq && res.Root == have.Root && have.LastSync != "" {
		return nil
	}
	if v, err := f.m.host.Decide(ctx, "mirror", policyInput(f.name, res, have.Bytes)); err == nil && v.Decided && !v.Allow {
		return fmt.Errorf("the mirror policy refuses it: %s", v.Reason)
	}
	// Until the new version is taken, the pins stay those of the version
	// the state shows: a sync that fails unpins what it pinned, and the old
	// root is unpinned only once the new one is in. Otherwise a failed sync
	// would leave a root pinned that no name's state holds (neither rm nor
	// a later version unpins it), or the shown one unpinned.
	root, size := res.Root, have.Bytes
	fresh := root != "" && root != have.Root
	undo := func() {
		if fresh {
			f.m.host.Unpin(context.WithoutCancel(ctx), root)
		}
	}
	if fresh {
		fetched, err := f.m.host.Fetch(ctx, "/cid/"+root)
		if err != nil {
			return fmt.Errorf("fetch %s: %w", root, err)
		}
		size = fetched.Size
		if quota := f.m.cfg.QuotaMB << 20; f.m.usedBytes(f.name)+size > quota {
			return fmt.Errorf("version %d takes %d bytes: over the quota of %d MiB", res.Seq, size, f.m.cfg.QuotaMB)
		}
		if err := f.m.host.Pin(ctx, root, "mirror "+f.name); err != nil {
			return fmt.Errorf("pin: %w", err)
		}
		if err := f.m.host.Provide(ctx, root); err != nil {
			undo()
			return fmt.Errorf("provide: %w", err)
		}
	} else if root == "" {
		size = 0
	}
	if err := f.m.keepSigned(f.name, res); err != nil {
		undo()
		return fmt.Errorf("keep the owner's signed records: %w", err)
	}
	if have.Root != "" && have.Root != root {
		f.m.host.Unpin(ctx, have.Root)
	}
	if err := f.m.host.AttestCopy(ctx, f.name, res.Seq); err != nil {
		f.m.host.Logger().Warn("attest copy", "name", f.name, "err", err)
	}
	f.m.update(f.name, func(st *nameState) {
		st.Seq, st.Root, st.Bytes, st.Sources = res.Seq, res.Root, size, resolutionHosts(res)
		st.LastSync = time.Now().UTC().Format(time.RFC3339)
	})
	f.m.host.Logger().Info("mirrored", "name", f.name, "seq", res.Seq, "root", res.Root)
	return nil
}

// republish puts the owner's signed claim and zone, as kept at the last
// sync, to the closest peers, so that the name outlives both its owner's
// absence and the DHT's record lifetime: the copy is the mirror's own, not
// one looked up in the network, which may have dropped it. The mirror only
// carries the owner's signatures; the node validates them again (a zone
// past its signed expiry is refused) and holders keep a newer version over
// this one.
func (f *follower) republish(ctx context.Context) {
	records, err := f.m.loadSigned(f.name)
	if errors.Is(err, fs.ErrNotExist) {
		// Never synced: the sync's own error says why, once per attempt.
		f.m.host.Logger().Debug("republish: nothing kept to put yet", "name", f.name)
		return
	} else if err != nil {
		f.m.host.Logger().Warn("republish: cannot read the kept records", "name", f.name, "err", err)
		return
	}
	// A lookup stalls on peers that vanished without closing their
	// connections; the next tick tries again.
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, r := range records {
		if err := f.m.host.PutRecord(ctx, r.key, r.value); err != nil {
			f.m.host.Logger().Warn("republish", "key", r.key, "err", err)
			continue
		}
		f.m.host.Logger().Info("republished", "key", r.key)
	}
}

// isPublic reads the zone's TXT "public=yes" (or "public").
func isPublic(res sdk.Resolution) bool {
	for _, r := range res.Records {
		if r.Type == "TXT" && (r.Value == "public" || r.Value == "public=yes") {
			return true
		}
	}
	return false
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
