package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/keystore"
	"github.com/avnode/avnode/core/names"
	"github.com/avnode/avnode/core/naming"
)

func (d *Daemon) registerNameHandlers(s *api.Server) {
	s.Handle("POST /v1/name/claim", d.handleClaim)
	s.Handle("POST /v1/record/set", d.handleRecordChange(false))
	s.Handle("POST /v1/record/rm", d.handleRecordChange(true))
	s.Handle("GET /v1/record/ls", d.handleRecordList)
	s.Handle("GET /v1/resolve", d.handleResolve)
}

// nameError sorts name-system errors into the API's kinds.
func nameError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, naming.ErrNotFound), errors.Is(err, keystore.ErrNotFound):
		return api.NotFound("%v", err)
	case errors.Is(err, names.ErrBadName), errors.Is(err, names.ErrBadRecord):
		return api.Invalid("%v", err)
	case errors.Is(err, names.ErrNameTaken):
		return api.BadRequest("%v", err)
	}
	return err
}

func (d *Daemon) handleClaim(ctx context.Context, req api.Request) (any, error) {
	key := req.Query("key")
	if key == "" {
		key = "default"
	}
	res, err := d.Names.Claim(ctx, req.Query("name"), key)
	if err != nil {
		return nil, nameError(err)
	}
	return res, nil
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
				return nil, api.Invalid("--ttl %q: give a duration of a second or more, like 5m", t)
			}
			ch.TTL = ttl
		}
		info, err := d.Names.ChangeRecord(ctx, ch)
		return info, nameError(err)
	}
}

func (d *Daemon) handleRecordList(ctx context.Context, req api.Request) (any, error) {
	info, err := d.Names.ListRecords(ctx, req.Query("name"))
	return info, nameError(err)
}

// copiesWait bounds the lookup of attested copies in a resolve.
const copiesWait = 2 * time.Second

func (d *Daemon) handleResolve(ctx context.Context, req api.Request) (any, error) {
	through := d.resolveAhead(ctx, "resolve", req.Query("name"))
	res, err := d.Names.Resolve(ctx, req.Query("name"))
	if err != nil {
		return nil, nameError(err)
	}
	res.Through = through
	reg := res.Name
	if n, err := names.Parse(res.Name); err == nil {
		reg = n.Registered().String()
	}
	res.Copies = d.copies(ctx, reg, res.Seq)
	return res, nil
}

// copies lists the peers that attested to holding a name's version.
func (d *Daemon) copies(ctx context.Context, name string, seq uint64) []string {
	ctx, cancel := context.WithTimeout(ctx, copiesWait)
	defer cancel()
	out := []string{}
	for info := range d.Node.DHT.FindProvidersAsync(ctx, naming.CopyCID(name, seq), 0) {
		out = append(out, info.ID.String())
	}
	return out
}
