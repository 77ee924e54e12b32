package naming

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	lru "github.com/hashicorp/golang-lru/v2"
	ds "github.com/ipfs/go-datastore"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/avnode/avnode/core/names"
)

// A name's key changes only by a chain of rotations hanging off its claim
// (core/names, rotation.go). Owners keeps, beside the claim it binds, the
// best chain it has seen for the name, and applies names.CheckSuccession to
// every zone that enters: the old key's zones are refused once a rotation is
// known, and a recovery replaces a thief's branch.

// KnownLineage is the claim this node binds to n and the key chain it knows
// for it, or nil when it knows no owner.
func (o *Owners) KnownLineage(ctx context.Context, n names.Name) (*names.Lineage, error) {
	held, err := o.Known(ctx, n)
	if err != nil || held == nil {
		return nil, err
	}
	return o.lineageOf(ctx, held), nil
}

// lineageOf reads the chain stored for held's name. A stored chain that no
// longer verifies against held (it cannot, unless the store was altered)
// is dropped with a warning rather than trusted.
func (o *Owners) lineageOf(ctx context.Context, held *names.Claim) *names.Lineage {
	bare := &names.Lineage{Claim: held, Steps: []*names.Rotation{}}
	data, err := o.store.Get(ctx, nameKey(chainPrefix, held.Name))
	if err != nil {
		if !errors.Is(err, ds.ErrNotFound) {
			o.log.Warn("read key chain", "name", held.Name, "err", err)
		}
		return bare
	}
	if l := o.chains.get(held, data); l != nil {
		return l
	}
	steps, ok := decodeSteps(data)
	if !ok {
		o.log.Warn("stored key chain is damaged; ignored", "name", held.Name)
		return bare
	}
	l, err := names.NewLineage(held, steps)
	if err != nil {
		o.log.Warn("stored key chain does not verify; ignored", "name", held.Name, "err", err)
		return bare
	}
	o.chains.put(held, data, l)
	return l
}

// chainCache keeps the verified chains of recent names, so the rule that
// runs on every record that enters does not check a chain's signatures
// again each time (a step to a hybrid key costs about 0.3 ms).
type chainCache struct {
	byName *lru.Cache[string, cachedChain]
}

type cachedChain struct {
	held, stored []byte
	lineage      *names.Lineage
}

// maxCachedChains bounds the cache.
const maxCachedChains = 4096

func newChainCache() chainCache {
	c, _ := lru.New[string, cachedChain](maxCachedChains) // errors only on a size below 1
	return chainCache{byName: c}
}

func (c chainCache) get(held *names.Claim, stored []byte) *names.Lineage {
	hb, _ := held.Marshal()
	e, ok := c.byName.Get(held.Name.String())
	if !ok || !bytes.Equal(e.held, hb) || !bytes.Equal(e.stored, stored) {
		return nil
	}
	return e.lineage
}

func (c chainCache) put(held *names.Claim, stored []byte, l *names.Lineage) {
	hb, _ := held.Marshal()
	c.byName.Add(held.Name.String(), cachedChain{held: hb, stored: bytes.Clone(stored), lineage: l})
}

// CheckLineage applies the ownership and succession rules to a record's
// lineage (a claim value has Steps nil): it refuses another owner, the chain
// a rotation left behind and a losing branch. A valid chain ahead of the
// one known is remembered. With no owner known it accepts: binding is the
// caller's (Bind), after the holders' agreement where that applies.
func (o *Owners) CheckLineage(ctx context.Context, l *names.Lineage) error {
	n := l.Claim.Name
	held, err := o.Known(ctx, n)
	if err != nil || held == nil {
		return err
	}
	mu := o.lock(n)
	mu.Lock()
	defer mu.Unlock()
	known := o.lineageOf(ctx, held)
	if err := names.CheckSuccession(known, l); err != nil {
		return err
	}
	if l.Steps == nil || names.CompareLineages(l, known) <= 0 {
		return nil
	}
	if err := o.store.Put(ctx, nameKey(chainPrefix, n), encodeSteps(l.SignedSteps())); err != nil {
		return fmt.Errorf("names store: remember the key chain of %s: %w", n, err)
	}
	o.log.Info("name key changed", "name", n, "key", names.KeyID(l.Head()), "rotations", len(l.Steps))
	if f := o.chainChanged.Load(); f != nil {
		(*f)(n)
	}
	return nil
}

// onChainChange registers what to do when a name's known key chain moves
// on: the name service drops its cached zone of the name.
func (o *Owners) onChainChange(f func(names.Name)) { o.chainChanged.Store(&f) }

// encodeSteps stores a chain as repeated bytes (field 1).
func encodeSteps(steps [][]byte) []byte {
	var b []byte
	for _, s := range steps {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, s)
	}
	return b
}

func decodeSteps(b []byte) ([][]byte, bool) {
	var steps [][]byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num != 1 || typ != protowire.BytesType {
			return nil, false
		}
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return nil, false
		}
		steps, b = append(steps, v), b[n+m:]
	}
	return steps, true
}
