package policy

import (
	"fmt"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// The per-peer budget on record hooks: a peer's record may make the scripts
// fail (a Lua error, a bad verdict, an overrun) peerFailureBurst times, and
// then once per peerFailureEvery. Past that, its records take the hook's
// fallback without reaching the worker, until its budget refills; other
// peers are not affected. peerBudgetPeers bounds the memory: the least
// recently seen peers are forgotten first.
const (
	peerFailureBurst = 3
	peerFailureEvery = time.Minute
	peerBudgetPeers  = 4096
)

// peerBudget is a token bucket of failures per peer.
type peerBudget struct {
	peers *lru.Cache[string, *rate.Limiter]
}

func newPeerBudget() *peerBudget {
	peers, _ := lru.New[string, *rate.Limiter](peerBudgetPeers) // errs only on a size <= 0
	return &peerBudget{peers: peers}
}

// spent reports why peer may not use the scripts now, or nil.
func (b *peerBudget) spent(peer string) error {
	l, ok := b.peers.Get(peer)
	if !ok || l.Tokens() >= 1 {
		return nil
	}
	return fmt.Errorf("records from peer %s made the policy fail %d times recently; its records take the fallback for up to %v",
		peer, peerFailureBurst, peerFailureEvery)
}

// failed charges one failure to peer.
func (b *peerBudget) failed(peer string) {
	l := rate.NewLimiter(rate.Every(peerFailureEvery), peerFailureBurst)
	if prev, found, _ := b.peers.PeekOrAdd(peer, l); found {
		l = prev
	}
	l.Allow()
}
