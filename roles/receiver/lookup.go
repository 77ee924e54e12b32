package main

import (
	"container/list"
	"context"
	"errors"
	"path"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/avnode/avnode/sdk"
)

// errBusy is a lookup that found no free slot before its deadline.
var errBusy = errors.New("no free fetch slot")

// notFoundTTL is how long a name that does not exist is remembered, so
// that the requests a page makes after a 404 (a favicon) do not each wait
// for the node's resolve_timeout, while a name claimed since appears soon.
const notFoundTTL = 10 * time.Second

// resolve answers a name's resolution and how much longer it may be
// cached, from the cache while the zone's TTL lasts. A name that does not
// exist is a NotFound error, remembered for notFoundTTL.
func (g *gateway) resolve(ctx context.Context, name string) (*sdk.Resolution, time.Duration, error) {
	if res, expires, ok := g.names.get(name); ok {
		if res == nil {
			return nil, 0, status.Errorf(codes.NotFound, "%s was not found a moment ago (remembered for %s)", name, notFoundTTL)
		}
		return res, time.Until(expires), nil
	}
	v, err := g.once(ctx, "resolve "+name, func(ctx context.Context) (any, error) {
		res, err := g.host.Resolve(ctx, name)
		return &res, err
	})
	if sdk.IsNotFound(err) {
		g.names.put(name, nil, time.Now().Add(min(notFoundTTL, g.zoneTTL)))
	}
	if err != nil {
		return nil, 0, err
	}
	res := v.(*sdk.Resolution)
	ttl := g.zoneTTL
	if !res.Expires.IsZero() {
		ttl = min(ttl, time.Until(res.Expires))
	}
	if ttl > 0 {
		g.names.put(name, res, time.Now().Add(ttl))
	}
	return res, max(ttl, 0), nil
}

// lookup answers what is at a target's path: from the cache (a root's
// paths never change), from its directory's entries once the directory was
// fetched (the node fetches a whole root at once, so its files are in the
// store), or by a fetch. A name's path is fetched by name, so that the node
// uses the zone's hosts as sources.
func (g *gateway) lookup(ctx context.Context, t target) (*sdk.Fetched, error) {
	key := t.root + t.path
	if res, _, ok := g.paths.get(key); ok {
		return res, nil
	}
	if res := g.fromParent(t); res != nil {
		g.paths.put(key, res, time.Time{})
		return res, nil
	}
	fetchTarget := t.String()
	v, err := g.once(ctx, "fetch "+fetchTarget, func(ctx context.Context) (any, error) {
		res, err := g.fetch(ctx, fetchTarget)
		return &res, err
	})
	if err != nil {
		return nil, err
	}
	res := v.(*sdk.Fetched)
	// Under the root it came from: the name may have moved on since we resolved it.
	g.paths.put(res.Root+t.path, res, time.Time{})
	return res, nil
}

// fromParent finds a file in its directory's cached entries.
func (g *gateway) fromParent(t target) *sdk.Fetched {
	if t.path == "" {
		return nil
	}
	dir, base := path.Split(t.path)
	parent, _, ok := g.paths.get(t.root + strings.TrimSuffix(dir, "/"))
	if !ok {
		return nil
	}
	e, ok := parent.Entry(base)
	if !ok || e.Kind != "file" {
		return nil // a subdirectory's entries need a fetch
	}
	return &sdk.Fetched{Root: parent.Root, CID: e.CID, Kind: "file", Size: e.Size}
}

// flight is one resolve or fetch under way, shared by every request that
// wants it.
type flight struct {
	done chan struct{}
	val  any
	err  error
}

// once runs fn for key unless it is already running, and waits for its
// answer or for ctx. fn runs under the gateway's context, not the request's:
// it is shared, and what it fetches serves the next request too. It gets
// fetch_timeout, waiting for one of max_concurrent_fetches slots included.
func (g *gateway) once(ctx context.Context, key string, fn func(context.Context) (any, error)) (any, error) {
	g.mu.Lock()
	f, ok := g.flights[key]
	if !ok {
		f = &flight{done: make(chan struct{})}
		g.flights[key] = f
		g.calls.Add(1)
		go g.fly(key, f, fn)
	}
	g.mu.Unlock()
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	select {
	case <-f.done:
		return f.val, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (g *gateway) fly(key string, f *flight, fn func(context.Context) (any, error)) {
	defer g.calls.Done()
	ctx, cancel := context.WithTimeout(g.base, g.timeout)
	defer cancel()
	select {
	case g.slots <- struct{}{}:
		g.inFlight.Add(1)
		g.fetches.Add(1)
		f.val, f.err = fn(ctx)
		g.inFlight.Add(-1)
		<-g.slots
	case <-ctx.Done():
		f.err = errBusy
		if g.base.Err() != nil {
			f.err = g.base.Err()
		}
	}
	g.mu.Lock()
	delete(g.flights, key)
	g.mu.Unlock()
	close(f.done)
}

// lru is a map with a size bound that drops the least recently used entry,
// and entries that may expire.
type lru[V any] struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *lruItem[V], most recently used first
	items map[string]*list.Element
}

type lruItem[V any] struct {
	key     string
	val     V
	expires time.Time // zero: never
}

func newLRU[V any](max int) *lru[V] {
	return &lru[V]{max: max, order: list.New(), items: map[string]*list.Element{}}
}

func (c *lru[V]) get(key string) (V, time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero V
	el, ok := c.items[key]
	if !ok {
		return zero, time.Time{}, false
	}
	it := el.Value.(*lruItem[V])
	if !it.expires.IsZero() && !time.Now().Before(it.expires) {
		c.order.Remove(el)
		delete(c.items, key)
		return zero, time.Time{}, false
	}
	c.order.MoveToFront(el)
	return it.val, it.expires, true
}

func (c *lru[V]) put(key string, val V, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.order.MoveToFront(el)
		el.Value = &lruItem[V]{key: key, val: val, expires: expires}
		return
	}
	c.items[key] = c.order.PushFront(&lruItem[V]{key: key, val: val, expires: expires})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*lruItem[V]).key)
	}
}

// removePrefix drops every key starting with prefix.
func (c *lru[V]) removePrefix(prefix string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, el := range c.items {
		if strings.HasPrefix(key, prefix) {
			c.order.Remove(el)
			delete(c.items, key)
		}
	}
}

func (c *lru[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
