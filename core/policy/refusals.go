package policy

import (
	"sync"
	"time"
)

// maxRefusals is how many recent refusals a Policy remembers for the
// dashboard; older ones are counted in the metrics only.
const maxRefusals = 100

// Refusal is one allow/deny hook call that said no.
type Refusal struct {
	At     time.Time
	Hook   string
	Peer   string // the peer whose input it was, when the caller said
	Script string // the script that decided ("" for a fallback without one)
	Reason string
}

// refusals is a ring of the latest refusals.
type refusals struct {
	mu   sync.Mutex
	ring []Refusal
	next int
}

func (r *refusals) add(x Refusal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ring) < maxRefusals {
		r.ring = append(r.ring, x)
		return
	}
	r.ring[r.next] = x
	r.next = (r.next + 1) % maxRefusals
}

// latest lists them newest first.
func (r *refusals) latest() []Refusal {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Refusal, 0, len(r.ring))
	for i := range r.ring {
		out = append(out, r.ring[(r.next+len(r.ring)-1-i)%len(r.ring)])
	}
	return out
}

// Refusals are the latest allow/deny hook calls that refused, newest
// first: scripts' denials and deny fallbacks alike.
func (p *Policy) Refusals() []Refusal {
	if p == nil {
		return nil
	}
	return p.refused.latest()
}

// noteRefusal remembers v when it refused.
func (p *Policy) noteRefusal(hook, peer string, v Verdict) {
	if !v.Decided || v.Allow || hookSpecs[hook].order {
		return
	}
	p.refused.add(Refusal{At: time.Now(), Hook: hook, Peer: peer, Script: v.Script, Reason: v.Reason})
}
