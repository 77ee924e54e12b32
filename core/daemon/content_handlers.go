package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/ipfs/go-cid"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/fault"
	"github.com/avnode/avnode/core/hosting"
)

func (d *Daemon) registerContentHandlers(s *api.Server) {
	s.HandleStream("POST /v1/publish", d.handlePublish)
	s.HandleStream("POST /v1/get", d.handleGet)
	s.HandleRaw("GET /v1/cat", d.handleCat)
	s.Handle("POST /v1/repo/gc", d.handleGC)
}

// absPath refuses relative paths: the daemon's working directory is not the caller's.
func absPath(what, p string) (string, error) {
	if p == "" || !filepath.IsAbs(p) {
		return "", fault.Errorf(fault.Invalid, "%s %q must be an absolute path", what, p)
	}
	return filepath.Clean(p), nil
}

func reportTo(progress func(any)) func(hosting.Progress) {
	return func(p hosting.Progress) { progress(progressOf(p)) }
}

func (d *Daemon) handlePublish(ctx context.Context, req api.Request, progress func(any)) (any, error) {
	dir, err := absPath("publish", req.Query("path"))
	if err != nil {
		return nil, err
	}
	res, err := d.Hosting.Publish(ctx, dir, req.Query("name"), req.Query("estate"), reportTo(progress))
	if err != nil {
		return nil, err
	}
	return publishOf(res), nil
}

func (d *Daemon) handleGet(ctx context.Context, req api.Request, progress func(any)) (any, error) {
	out := req.Query("out")
	if out != "" {
		var err error
		if out, err = absPath("output", out); err != nil {
			return nil, err
		}
	}
	through := d.resolveAhead(ctx, "get", req.Query("target"))
	res, err := d.Hosting.Fetch(ctx, req.Query("target"), reportTo(progress), func(res *hosting.GetResult) error {
		if out == "" {
			return nil
		}
		c, _ := cid.Decode(res.CID)
		if err := d.Hosting.Export(ctx, c, out); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fault.Errorf(fault.NotFound, "write %s: %w", out, err)
			}
			return fmt.Errorf("write %s: %w", out, err)
		}
		res.Output = out
		return nil
	})
	if err != nil {
		return nil, err
	}
	answer := getResultOf(res)
	answer.Through = through
	return answer, nil
}

// handleCat fetches a file and streams its bytes.
func (d *Daemon) handleCat(w http.ResponseWriter, r *http.Request) {
	started := false
	_, err := d.Hosting.Fetch(r.Context(), r.URL.Query().Get("target"), nil, func(res *hosting.GetResult) error {
		if res.Kind != "file" {
			return fault.Errorf(fault.Invalid, "%s is a directory (%d entries); write it out with -o DIR", res.Target, len(res.Entries))
		}
		c, _ := cid.Decode(res.CID)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Trailer", "X-Avnode-Error")
		started = true
		if _, err := d.Hosting.WriteFile(r.Context(), c, w); err != nil {
			w.Header().Set("X-Avnode-Error", err.Error())
		}
		return nil
	})
	if err != nil && !started {
		api.WriteError(w, err)
	}
}

func (d *Daemon) handleGC(ctx context.Context, _ api.Request) (any, error) {
	res, err := d.Hosting.GC(ctx)
	if err != nil {
		return nil, err
	}
	return gcOf(res), nil
}
