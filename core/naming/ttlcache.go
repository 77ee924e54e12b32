package naming

import (
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// ttlCache is an LRU whose entries also expire after ttl. golang-lru's own
// expirable LRU starts a goroutine per cache that never ends: one leaked
// per node started, which a network of nodes in one process (the bench,
// the tests) piles up. Here an entry past its time is dropped when read.
type ttlCache[K comparable, V any] struct {
	entries *lru.Cache[K, ttlEntry[V]]
	ttl     time.Duration
}

type ttlEntry[V any] struct {
	value V
	until time.Time
}

func newTTLCache[K comparable, V any](size int, ttl time.Duration) *ttlCache[K, V] {
	entries, err := lru.New[K, ttlEntry[V]](size)
	if err != nil {
		panic(err) // only for a size below 1, a constant here
	}
	return &ttlCache[K, V]{entries: entries, ttl: ttl}
}

func (c *ttlCache[K, V]) Add(key K, value V) {
	c.entries.Add(key, ttlEntry[V]{value: value, until: time.Now().Add(c.ttl)})
}

// Get returns the value for key if it is there and has not expired.
func (c *ttlCache[K, V]) Get(key K) (V, bool) {
	e, ok := c.entries.Get(key)
	if ok && time.Now().Before(e.until) {
		return e.value, true
	}
	if ok {
		c.entries.Remove(key)
	}
	var zero V
	return zero, false
}

// Purge forgets every entry.
func (c *ttlCache[K, V]) Purge() { c.entries.Purge() }
