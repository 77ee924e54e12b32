package daemon

import (
	"context"
	"time"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/fault"
	"github.com/avnode/avnode/core/naming"
)

func (d *Daemon) registerNameHandlers(s *api.Server) {
	s.Handle("POST /v1/name/claim", d.handleClaim)
	s.Handle("POST /v1/record/set", d.handleRecordChange(false))
	s.Handle("POST /v1/record/rm", d.handleRecordChange(true))
	s.Handle("GET /v1/record/ls", d.handleRecordList)
	s.Handle("GET /v1/resolve", d.handleResolve)
}

func (d *Daemon) handleClaim(ctx context.Context, req api.Request) (any, error) {
	key := req.Query("key")
	if key == "" {
		key = "default"
	}
	res, err := d.Names.Claim(ctx, req.Query("name"), key)
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
// satellite's beacon) had their turn, and adds the attested copies.
func (d *Daemon) handleResolve(ctx context.Context, req api.Request) (any, error) {
	through := d.resolveAhead(ctx, "resolve", req.Query("name"))
	res, err := d.Names.Resolve(ctx, req.Query("name"))
	if err != nil {
		return nil, err
	}
	out := resolutionOf(res)
	out.Through = through
	out.Copies = d.Names.Copies(ctx, res.Name, res.Seq)
	return out, nil
}
