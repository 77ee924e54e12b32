package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/fault"
	"github.com/avnode/avnode/core/naming"
)

func (d *Daemon) registerEstateHandlers(s *api.Server) {
	s.Handle("POST /v1/estate/create", d.handleEstateCreate)
	s.Handle("GET /v1/estate/ls", d.handleEstateList)
	s.Handle("POST /v1/estate/export", d.handleEstateExport)
	s.Handle("POST /v1/estate/import", d.handleEstateImport)
}

func (d *Daemon) handleEstateCreate(ctx context.Context, req api.Request) (any, error) {
	var ttl time.Duration
	if t := req.Query("ttl"); t != "" {
		var err error
		if ttl, err = time.ParseDuration(t); err != nil || ttl < time.Second {
			return nil, fault.Errorf(fault.Invalid, "--ttl %q: give a duration of a second or more, like 1m", t)
		}
	}
	h, err := d.Names.CreateEstate(ctx, req.Query("label"), req.Query("provider"), ttl)
	if err != nil {
		return nil, err
	}
	return estateOf(*h), nil
}

func (d *Daemon) handleEstateList(ctx context.Context, req api.Request) (any, error) {
	hosted, err := d.Names.HostedEstates(ctx)
	if err != nil {
		return nil, err
	}
	out := convert(hosted, estateOf)
	if req.Query("replication") == "true" {
		d.countReplication(ctx, out)
	}
	return out, nil
}

// countReplication fills each estate's Replication: for each name, its
// hosts and the mirrors that attest a copy of its current zone, looked up
// 16 names at a time.
func (d *Daemon) countReplication(ctx context.Context, estates []api.Estate) {
	var mu sync.Mutex
	slots := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range estates {
		estates[i].Replication = map[string]int{}
		for _, name := range estates[i].Names {
			wg.Go(func() {
				slots <- struct{}{}
				defer func() { <-slots }()
				count := 0
				if res, err := d.Names.Resolve(ctx, name); err == nil {
					count = len(res.Hosts) + len(d.Names.Copies(ctx, res.Name, res.Seq))
				}
				mu.Lock()
				estates[i].Replication[name] = count
				mu.Unlock()
			})
		}
	}
	wg.Wait()
}

func readSealing(body io.Reader) (api.EstateSealing, error) {
	var s api.EstateSealing
	if err := json.NewDecoder(io.LimitReader(body, 2<<20)).Decode(&s); err != nil {
		return s, fault.Errorf(fault.Invalid, "estate: the request body is not valid JSON: %v", err)
	}
	return s, nil
}

func (d *Daemon) handleEstateExport(ctx context.Context, req api.Request) (any, error) {
	s, err := readSealing(req.Body)
	if err != nil {
		return nil, err
	}
	sealed, h, err := d.Names.ExportEstate(ctx, req.Query("id"),
		naming.Sealing{Passphrase: s.Passphrase, Recipient: s.Recipient})
	if err != nil {
		return nil, err
	}
	return api.EstateExport{Estate: estateOf(*h), Sealed: sealed}, nil
}

// handleEstateImport takes the estate over, then fetches and pins the
// content of the names it carries, so this machine serves them before
// resolvers come.
func (d *Daemon) handleEstateImport(ctx context.Context, req api.Request) (any, error) {
	s, err := readSealing(req.Body)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	h, err := d.Names.ImportEstate(ctx, s.Sealed, naming.Sealing{Passphrase: s.Passphrase, Identity: s.Identity})
	if err != nil {
		return nil, err
	}
	published := time.Since(start)
	out := estateOf(*h)
	for _, name := range h.Names {
		if err := d.pinEstateName(ctx, h.ID, name); err != nil {
			out.Problems = append(out.Problems, err.Error())
			continue
		}
		out.Pinned++
	}
	d.Log.Info("estate imported", "estate", h.ID, "seq", h.Seq, "published_in", published.Round(time.Millisecond),
		"names", len(h.Names), "pinned", out.Pinned, "took", time.Since(start).Round(time.Millisecond))
	return out, nil
}

// pinEstateName fetches and pins a name the estate file lists, if the
// name's zone does put it on the estate: the file's sender cannot make
// this node host other content.
func (d *Daemon) pinEstateName(ctx context.Context, estate, name string) error {
	on, err := d.Names.Resolve(ctx, name)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", name, err)
	}
	if !slices.ContainsFunc(on.Estates, func(e naming.EstateInfo) bool { return e.ID == estate }) {
		return fmt.Errorf("%s is not on estate %s (its zone has no HOST estate:%s); not fetched", name, estate, estate)
	}
	res, err := d.Hosting.Fetch(ctx, name, nil, nil)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", name, err)
	}
	root, err := cid.Decode(res.Root)
	if err != nil {
		return fmt.Errorf("fetch %s: root %q: %w", name, res.Root, err)
	}
	if err := d.Hosting.Pins.Add(ctx, root, "estate "+estate+": "+name); err != nil {
		return fmt.Errorf("pin %s: %w", name, err)
	}
	return nil
}
