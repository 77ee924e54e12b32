// Package backoff is the node's restart delay: it doubles from a first
// delay up to a cap while something keeps failing, and starts over once it
// did not. It is a leaf: it imports nothing of this repository, so plugins/
// may use it as well as core/.
package backoff

import "time"

// Doubling is a delay that doubles on every Grow up to Max and goes back to
// First on Reset. The zero value is not usable: build it with New. It is not
// safe for concurrent use.
type Doubling struct {
	first, max, cur time.Duration
}

// New starts a delay at first, never above max.
func New(first, max time.Duration) *Doubling {
	return &Doubling{first: first, max: max, cur: first}
}

// Current is the delay as it stands.
func (d *Doubling) Current() time.Duration { return d.cur }

// Grow doubles the delay, up to max, and returns it.
func (d *Doubling) Grow() time.Duration {
	d.cur = min(2*d.cur, d.max)
	return d.cur
}

// Reset puts the delay back to first and returns it.
func (d *Doubling) Reset() time.Duration {
	d.cur = d.first
	return d.cur
}
