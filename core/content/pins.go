package content

import (
	"context"
	"errors"
	"fmt"

	cid "github.com/ipfs/go-cid"
	datastore "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
)

// pinPrefix is where pins live in the node's datastore: /pins/<CID> → reason.
var pinPrefix = datastore.NewKey("/pins")

// ErrNotPinned is wrapped by Pins.Remove for a CID that has no pin.
var ErrNotPinned = errors.New("not pinned")

// Pins is the set of roots whose DAGs GC keeps. A CID has at most one pin; it
// carries a reason for people ("published coolblog.code", "mirror einstein.avtr").
type Pins struct {
	d datastore.Datastore
}

// NewPins keeps pins in d (the node's datastore) under /pins.
func NewPins(d datastore.Datastore) *Pins { return &Pins{d: d} }

func pinKey(c cid.Cid) datastore.Key { return pinPrefix.ChildString(c.String()) }

// Add pins c, replacing the reason of an existing pin. It returns once the pin
// is durable.
func (p *Pins) Add(ctx context.Context, c cid.Cid, reason string) error {
	if err := checkCID(c); err != nil {
		return fmt.Errorf("pin: %w", err)
	}
	if err := p.d.Put(ctx, pinKey(c), []byte(reason)); err != nil {
		return fmt.Errorf("pin %s: %w", c, err)
	}
	if err := p.d.Sync(ctx, pinPrefix); err != nil {
		return fmt.Errorf("pin %s: sync: %w", c, err)
	}
	return nil
}

// Reason is why c is pinned; pinned is false if it is not.
func (p *Pins) Reason(ctx context.Context, c cid.Cid) (reason string, pinned bool, err error) {
	v, err := p.d.Get(ctx, pinKey(c))
	if errors.Is(err, datastore.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("pin %s: %w", c, err)
	}
	return string(v), true, nil
}

// Remove unpins c. Its blocks stay until the next GC.
func (p *Pins) Remove(ctx context.Context, c cid.Cid) error {
	k := pinKey(c)
	has, err := p.d.Has(ctx, k)
	if err != nil {
		return fmt.Errorf("unpin %s: %w", c, err)
	}
	if !has {
		return fmt.Errorf("unpin %s: %w", c, ErrNotPinned)
	}
	if err := p.d.Delete(ctx, k); err != nil {
		return fmt.Errorf("unpin %s: %w", c, err)
	}
	if err := p.d.Sync(ctx, pinPrefix); err != nil {
		return fmt.Errorf("unpin %s: sync: %w", c, err)
	}
	return nil
}

// List returns every pin with its reason.
func (p *Pins) List(ctx context.Context) (map[cid.Cid]string, error) {
	res, err := p.d.Query(ctx, query.Query{Prefix: pinPrefix.String()})
	if err != nil {
		return nil, fmt.Errorf("list pins: %w", err)
	}
	defer res.Close()
	out := make(map[cid.Cid]string)
	for {
		r, ok := res.NextSync()
		if !ok {
			return out, nil
		}
		if r.Error != nil {
			return nil, fmt.Errorf("list pins: %w", r.Error)
		}
		k := datastore.RawKey(r.Key)
		if !k.Parent().Equal(pinPrefix) {
			continue
		}
		c, err := cid.Decode(k.BaseNamespace())
		if err != nil {
			return nil, fmt.Errorf("list pins: key %s is not a CID (%v); delete it from the datastore", r.Key, err)
		}
		out[c] = string(r.Value)
	}
}

// GCResult reports what GC did.
type GCResult struct {
	Removed int   `json:"removed"`
	Freed   int64 `json:"freed_bytes"`
	Kept    int   `json:"kept"`
}

// GC removes every block not reachable from a pin. It never removes a block
// reachable from a pin: a pinned DAG with missing blocks keeps all it has, and a
// pinned DAG it cannot read (a malformed node, a store error) stops GC before
// anything is removed. Imports wait while GC runs, and GC waits for running
// imports; pin an import's root before the next GC, or it is collected.
// GC keeps the DAGs under held as it keeps pinned ones: content being read.
func GC(ctx context.Context, bs *Blockstore, pins *Pins, held ...cid.Cid) (GCResult, error) {
	var res GCResult
	bs.gcMu.Lock()
	defer bs.gcMu.Unlock()
	pinned, err := pins.List(ctx)
	if err != nil {
		return res, fmt.Errorf("gc: %w; nothing was removed", err)
	}
	for _, root := range held {
		if _, ok := pinned[root]; !ok {
			pinned[root] = "held by a read"
		}
	}
	keep := make(map[string]struct{})
	seen := make(map[string]struct{})
	for root, reason := range pinned {
		err := walk(ctx, root, bs, seen, func(c cid.Cid) error {
			keep[c.KeyString()] = struct{}{}
			return nil
		}, nil)
		if err != nil {
			return res, fmt.Errorf("gc: reading pin %s (%s): %w; nothing was removed", root, reason, err)
		}
	}
	all, err := bs.AllKeys(ctx)
	if err != nil {
		return res, fmt.Errorf("gc: %w; nothing was removed", err)
	}
	for _, c := range all {
		if _, ok := keep[c.KeyString()]; ok {
			res.Kept++
			continue
		}
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("gc: stopped after removing %d blocks: %w", res.Removed, err)
		}
		size, err := bs.GetSize(c)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err == nil {
			err = bs.Delete(c)
		}
		if err != nil {
			return res, fmt.Errorf("gc: stopped after removing %d blocks: %w", res.Removed, err)
		}
		res.Removed++
		res.Freed += int64(size)
	}
	return res, nil
}
