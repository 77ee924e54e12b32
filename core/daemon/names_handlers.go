package daemon

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/fault"
	"github.com/avnode/avnode/core/names"
	"github.com/avnode/avnode/core/naming"
)

func (d *Daemon) registerNameHandlers(s *api.Server) {
	s.HandleStream("POST /v1/name/claim", d.handleClaim)
	s.Handle("POST /v1/record/set", d.handleRecordChange(false))
	s.Handle("POST /v1/record/rm", d.handleRecordChange(true))
	s.Handle("GET /v1/record/ls", d.handleRecordList)
	s.Handle("GET /v1/resolve", d.handleResolve)
	s.Handle("POST /v1/key/rotate", d.handleKeyChange(func(ctx context.Context, req api.Request) (*naming.KeyChain, error) {
		return d.Names.RotateKey(ctx, req.Query("name"), req.Query("to"))
	}))
	s.Handle("POST /v1/key/recovery/set", d.handleKeyChange(func(ctx context.Context, req api.Request) (*naming.KeyChain, error) {
		return d.Names.SetRecovery(ctx, req.Query("name"), req.Query("recovery_key"), req.Query("current_recovery_key"))
	}))
	s.Handle("GET /v1/key/recovery/show", d.handleKeyChange(func(ctx context.Context, req api.Request) (*naming.KeyChain, error) {
		return d.Names.KeyChainOf(ctx, req.Query("name"))
	}))
	s.Handle("POST /v1/name/recover", d.handleKeyChange(func(ctx context.Context, req api.Request) (*naming.KeyChain, error) {
		after := -1
		if a := req.Query("after"); a != "" {
			n, err := strconv.Atoi(a)
			if err != nil || n < 0 {
				return nil, fault.Errorf(fault.Invalid, "--after %q: give the number of the last step to keep (0: right after the claim)", a)
			}
			after = n
		}
		return d.Names.Recover(ctx, req.Query("name"), req.Query("recovery_key"), req.Query("to"), after)
	}))
}

// handleKeyChange answers a key chain change or listing.
func (d *Daemon) handleKeyChange(run func(context.Context, api.Request) (*naming.KeyChain, error)) api.Handler {
	return func(ctx context.Context, req api.Request) (any, error) {
		k, err := run(ctx, req)
		if err != nil {
			return nil, err
		}
		return keyChainOf(k), nil
	}
}

// claimProgressEvery is how often a claim reports its proof of work.
const claimProgressEvery = 250 * time.Millisecond

// handleClaim mints and publishes a claim, reporting the proof of work as
// it goes: hashes tried of the number expected on average.
func (d *Daemon) handleClaim(ctx context.Context, req api.Request, progress func(any)) (any, error) {
	key := req.Query("key")
	if key == "" {
		key = "default"
	}
	meter := &names.WorkMeter{}
	expected := names.Expected(d.Config.Names.ClaimDifficulty)
	report := func() { progress(api.Progress{Phase: "work", Tried: meter.Tried(), Expected: expected}) }
	done := make(chan struct{})
	var ticking sync.WaitGroup
	defer ticking.Wait() // no report once the answer is sent
	defer close(done)
	report() // at once: the user sees the work start
	ticking.Go(func() {
		tick := time.NewTicker(claimProgressEvery)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				report()
			case <-done:
				return
			}
		}
	})
	res, err := d.Names.ClaimWithRecovery(names.WithWorkMeter(ctx, meter), req.Query("name"), key, req.Query("recovery_key"))
	if err != nil {
		return nil, err
	}
	return claimOf(res), nil
}

func (d *Daemon) handleRecordChange(remove bool) api.Handler {
	return func(ctx context.Context, req api.Request) (any, error) {
		ch := naming.RecordChange{
			Name: req.Query("name"), Type: req.Query("type"), Label: req.Query("label"),
			Value: req.Query("value"), Remove: remove,
		}
		if t := req.Query("ttl"); t != "" {
			ttl, err := time.ParseDuration(t)
			if err != nil || ttl < time.Second {
				return nil, fault.Errorf(fault.Invalid, "--ttl %q: give a duration of a second or more, like 5m", t)
			}
			ch.TTL = ttl
		}
		info, err := d.Names.ChangeRecord(ctx, ch)
		if err != nil {
			return nil, err
		}
		return zoneOf(info), nil
	}
}

func (d *Daemon) handleRecordList(ctx context.Context, req api.Request) (any, error) {
	info, err := d.Names.ListRecords(ctx, req.Query("name"))
	if err != nil {
		return nil, err
	}
	return zoneOf(info), nil
}

// handleResolve resolves ?name=, after the roles that resolve ahead (a
// satellite's beacon) had their turn. With ?copies=1 it also lists the
// attested copies: a DHT search of its own, so only when asked.
func (d *Daemon) handleResolve(ctx context.Context, req api.Request) (any, error) {
	through := d.resolveAhead(ctx, "resolve", req.Query("name"))
	res, err := d.Names.Resolve(ctx, req.Query("name"))
	if err != nil {
		return nil, err
	}
	out := resolutionOf(res)
	out.Through = through
	if req.Query("copies") == "1" {
		out.Copies = d.Names.Copies(ctx, res.Name, res.Seq)
	}
	return out, nil
}
