package naming

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestTTLCacheForgetsAfterItsTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTTLCache[string, int](2, time.Second)
		c.Add("a", 1)
		if v, ok := c.Get("a"); !ok || v != 1 {
			t.Fatalf("Get(a) = %v, %v just after Add; want 1, true", v, ok)
		}
		time.Sleep(time.Second)
		if _, ok := c.Get("a"); ok {
			t.Error("Get(a) found the entry after its ttl")
		}
		c.Add("a", 1)
		c.Add("b", 2)
		c.Add("c", 3)
		if _, ok := c.Get("a"); ok {
			t.Error("a cache of 2 kept the oldest of 3 entries")
		}
	})
	// No goroutine outlives the bubble: synctest.Test fails if one does.
}
