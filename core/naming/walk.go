package naming

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"sort"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	kb "github.com/libp2p/go-libp2p-kbucket"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/avnode/avnode/core/names"
)

// pollHolders walks the DHT toward key with GET_VALUE, as kad-dht's own
// lookup does, but keeps every peer's answer: the DHT's lookup returns one
// value chosen by the record's own ranking, and a node that knows no owner
// has nothing better to rank by than who holds what. It asks the closest
// peers it knows (pollAlpha at a time), learns closer ones from their
// answers, and stops when the k closest it knows of have all answered (a
// peer that fails to answer drops out), or when their answers so far decide
// the poll. The votes are those of the k closest that answered. A peer of
// the k that has not answered within lateAfter still counts as pending, but
// the next closest peer beyond the k is asked beside it (one per late
// peer): if the late one then fails, the answer that replaces it is already
// in, so dead peers cost a poll one pollWait, not one per round of
// replacements. Such an answer counts, and the peers it names are learned,
// only once its peer is among the k, as when it was asked only then. A
// poll that
// runs out of time or of its query budget before that is not settled, and
// decides nothing. The peer skip (the one asking this node to take a
// record) is neither asked nor counted.
func (s *Service) pollHolders(ctx context.Context, key string, skip peer.ID, decode func(string, []byte) (*names.Claim, error)) (*poll, error) {
	messenger, err := pb.NewProtocolMessenger(s.dht.MessageSender())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // the answers no longer needed once the poll is decided
	w := &walk{target: kb.ConvertKey(key), k: s.dht.BucketSize(), self: s.host.ID(), skip: skip,
		known: map[peer.ID]*candidate{}, decoded: map[string]decodedValue{}, quorum: max(1, s.cfg.Names.ClaimQuorum),
		silent: s.silent}
	for _, id := range s.dht.RoutingTable().NearestPeers(w.target, w.k) {
		w.add(id)
	}
	answers := make(chan answer, maxPollQueries)
	for launched, inflight := 0, 0; ; {
		ranked, top := w.learnFromAnswers(s.host)
		p := w.poll(key, top)
		if p.settled = p.pending == 0 || p.decided(); p.settled {
			return p, nil
		}
		now := time.Now()
		late := countLate(top, now) // each may have one more asked beside it
		askable := ranked[:min(w.k+late, len(ranked))]
		outTop, outBeyond := w.countAsking()
		for i, c := range askable {
			if c.state != unasked || launched >= maxPollQueries {
				continue
			}
			switch {
			case i < w.k && outTop < pollAlpha:
				outTop++
			case i >= w.k && outBeyond < late:
				c.beyond = true
				outBeyond++
			default:
				continue
			}
			c.state, c.askedAt = asking, now
			inflight, launched = inflight+1, launched+1
			go s.ask(ctx, messenger, c.id, key, answers)
		}
		if inflight == 0 {
			return p, nil // nobody left to ask within the query budget
		}
		turnsLate, stop := w.nextLate(now)
		select {
		case a := <-answers:
			inflight--
			w.take(a, key, decode)
		case <-turnsLate:
		case <-ctx.Done():
			stop()
			return p, nil
		}
		stop()
	}
}

// ask puts one poll's question to id and sends the answer on answers. A
// question on a connection already open runs out its pollWait even once
// the poll is decided, on the service's context: whether the peer went
// silent is worth knowing for the next polls (failedToAnswer).
func (s *Service) ask(ctx context.Context, messenger *pb.ProtocolMessenger, id peer.ID, key string, answers chan<- answer) {
	connected := s.host.Network().Connectedness(id) == network.Connected
	parent := ctx
	if connected {
		parent = s.life
	}
	qctx, cancel := context.WithTimeout(parent, pollWait)
	defer cancel()
	rec, closer, err := messenger.GetValue(qctx, id, key)
	if err != nil && parent.Err() == nil {
		s.failedToAnswer(id, connected)
	}
	answers <- answer{id: id, value: rec.GetValue(), glue: glueOf(rec), closer: closer, err: err}
}

// failedToAnswer forgets a peer that failed a poll's question, or did not
// answer it in pollWait, as kad-dht's own lookups do: out
// of the routing table. One that failed on a connection already open (a
// machine gone without a goodbye keeps looking connected until QUIC's idle
// timeout) is also skipped by the next polls for silentFor, instead of
// costing each of them pollWait. A peer only dialed for this poll is not:
// its address may have come from a liar, and that must not keep an honest
// holder out of later polls.
func (s *Service) failedToAnswer(id peer.ID, connected bool) {
	s.dht.RoutingTable().RemovePeer(id)
	if connected {
		s.silent.Add(id, struct{}{})
	}
}

const (
	// pollAlpha is how many questions a poll has out at once to the k
	// closest (those asked beyond them, one per late peer, come on top):
	// all of the k closest it knows, so that made-up peers that never
	// answer cost one timeout, not one per ten of them.
	pollAlpha = 20
	// maxPollQueries bounds the peers one poll asks in all.
	maxPollQueries = 100
	// lateAfter is how long a question goes unanswered before the poll asks
	// the next closest peer beside it: several times an honest holder's
	// answer across the world with a dial first.
	lateAfter = time.Second
	// maxKnown bounds the peers one poll remembers: an answer names at most
	// k closer peers (more are ignored), so a lying peer cannot grow it.
	maxKnown = 8 * 20
	// silentFor is how long polls skip a peer that went silent on an open
	// connection: long enough for a dead machine's connection to time out
	// (QUIC's idle timeout is 30 s), short enough that a holder back from
	// a restart soon counts again. silentKept bounds how many are kept.
	silentFor  = time.Minute
	silentKept = 1024
)

type answer struct {
	id     peer.ID
	value  []byte
	glue   [][]byte // the hosts' signed peer records beside the value (glue.go)
	closer []*peer.AddrInfo
	err    error
}

const (
	unasked = iota
	asking
	answered
	failed
)

type candidate struct {
	id      peer.ID
	dist    kb.ID // XOR distance to the target
	state   int
	askedAt time.Time
	vote    *vote            // its valid value, if it answered one
	closer  []*peer.AddrInfo // the peers its answer named, not yet learned from
	beyond  bool             // asked from beyond the k closest, beside a late one
}

func (c *candidate) late(now time.Time) bool {
	return c.state == asking && now.Sub(c.askedAt) >= lateAfter
}

// countAsking counts the questions out, asked from among the k closest and
// from beyond them: those beyond never take the slots of the k.
func (w *walk) countAsking() (top, beyond int) {
	for _, c := range w.known {
		switch {
		case c.state != asking:
		case c.beyond:
			beyond++
		default:
			top++
		}
	}
	return top, beyond
}

func countLate(cs []*candidate, now time.Time) int {
	n := 0
	for _, c := range cs {
		if c.late(now) {
			n++
		}
	}
	return n
}

// walk is the state of one poll's lookup.
type walk struct {
	target     kb.ID
	k          int
	quorum     int
	self, skip peer.ID
	known      map[peer.ID]*candidate
	// decoded holds each distinct value's check: honest holders answer
	// the same bytes, which then cost one signature check, not twenty.
	decoded map[string]decodedValue
	silent  *ttlCache[peer.ID, struct{}] // peers not asked (failedToAnswer)
}

type decodedValue struct {
	claim *names.Claim
	owner string // ownerLabel(claim): a poll counts votes by it each round
	err   error
}

func (w *walk) add(id peer.ID) {
	if id == w.self || id == w.skip || w.known[id] != nil {
		return
	}
	if _, silent := w.silent.Get(id); silent {
		return
	}
	w.known[id] = &candidate{id: id, dist: kb.Xor(kb.ConvertPeerID(id), w.target)}
}

// ranked is every candidate known that has not failed, closest first; the
// first k are the poll's top.
func (w *walk) ranked() []*candidate {
	out := make([]*candidate, 0, len(w.known))
	for _, c := range w.known {
		if c.state != failed {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].dist, out[j].dist) < 0 })
	return out
}

// nextLate fires when the next question out turns late (nil: none will);
// stop releases it.
func (w *walk) nextLate(now time.Time) (<-chan time.Time, func() bool) {
	var next time.Time
	for _, c := range w.known {
		if c.state == asking && !c.late(now) && (next.IsZero() || c.askedAt.Before(next)) {
			next = c.askedAt
		}
	}
	if next.IsZero() {
		return nil, func() bool { return false }
	}
	t := time.NewTimer(next.Add(lateAfter).Sub(now))
	return t.C, t.Stop
}

// take records one answer: its vote, and the closer peers it named.
func (w *walk) take(a answer, key string, decode func(string, []byte) (*names.Claim, error)) {
	c := w.known[a.id]
	if a.err != nil {
		c.state = failed
		return
	}
	c.state = answered
	if a.value != nil {
		d, seen := w.decoded[string(a.value)]
		if !seen {
			if d.claim, d.err = decode(key, a.value); d.err == nil {
				d.owner = ownerLabel(d.claim)
			}
			w.decoded[string(a.value)] = d
		}
		if d.err == nil {
			c.vote = &vote{peer: a.id, value: a.value, glue: a.glue, claim: d.claim, owner: d.owner}
		}
	}
	if len(a.closer) > w.k {
		a.closer = a.closer[:w.k] // an honest peer names k at most
	}
	c.closer = a.closer
}

// learnFromAnswers adds the closer peers the answers named and returns the
// candidates ranked after it (and the top). The answer of a peer asked
// from beyond the k closest, beside a late one, is learned from only once
// that peer is among the k (a peer of the k failed), as when it was asked
// only then: otherwise a peer beyond the k could steer the walk toward
// peers of its own before any of the k had failed.
func (w *walk) learnFromAnswers(h host.Host) (ranked, top []*candidate) {
	for {
		ranked = w.ranked()
		top = ranked[:min(w.k, len(ranked))]
		for _, c := range top {
			c.beyond = false // among the k now, as if asked from there
		}
		learned := false
		for _, c := range ranked {
			if c.closer != nil && (!c.beyond || slices.Contains(top, c)) {
				w.learn(c.closer, h)
				c.closer, learned = nil, true
			}
		}
		if !learned {
			return ranked, top
		}
	}
}

func (w *walk) learn(closer []*peer.AddrInfo, h host.Host) {
	for _, info := range closer {
		if len(w.known) >= maxKnown {
			break
		}
		if info.ID == w.self || len(info.Addrs) == 0 && h.Network().Connectedness(info.ID) != network.Connected {
			continue
		}
		h.Peerstore().AddAddrs(info.ID, info.Addrs, peerstore.TempAddrTTL)
		w.add(info.ID)
	}
}

// poll is what the candidates in top have said so far.
func (w *walk) poll(key string, top []*candidate) *poll {
	p := &poll{key: key, asked: len(top), byOwner: map[string][]vote{}, quorum: w.quorum}
	for _, c := range top {
		switch {
		case c.state != answered:
			p.pending++
		case c.vote != nil:
			p.byOwner[c.vote.owner] = append(p.byOwner[c.vote.owner], *c.vote)
		}
	}
	return p
}

// ownerLabel names an owner in a poll by its exact claim, not its key
// alone: a thief holding a name's first key can mint another claim of it
// (with a recovery key of its own), and that claim must out-vote the
// holders of the owner's, not count with them.
func ownerLabel(c *names.Claim) string {
	b, _ := c.Marshal()
	h := sha256.Sum256(b)
	return fmt.Sprintf("%s#%x", names.KeyID(c.Owner), h[:4])
}
