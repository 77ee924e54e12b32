package naming

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	kb "github.com/libp2p/go-libp2p-kbucket"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/avnode/avnode/core/names"
)

const (
	// pollWait bounds one holder's answer in a poll: a silent peer must not
	// hold up the resolve once the others have answered.
	pollWait = 5 * time.Second
	// learnWait bounds learnOwner's whole poll, inside a peer's PUT or claim.
	learnWait = 8 * time.Second
)

// vote is one holder's answer in a poll: the valid value it holds for a key.
type vote struct {
	peer  peer.ID
	value []byte
	claim *names.Claim // the claim the value rests on (a zone's embedded one)
}

// poll is what the closest holders of a key said.
type poll struct {
	key      string
	asked    int
	answered int                // holders that returned a valid value
	byOwner  map[string][]vote  // by names.KeyID of the owner
	invalid  int                // holders that returned an invalid value
	errs     map[peer.ID]string // holders that did not answer
}

// pollHolders asks the peers closest to key for the value each holds, all at
// once, and groups the valid answers by owner. The DHT's own lookup would
// return one value chosen by the record's own ranking; a fresh resolver has
// nothing better to rank by than who holds what, so it needs every answer.
// The peer skip (the one asking this node to hold a claim) has no vote.
func (s *Service) pollHolders(ctx context.Context, key string, skip peer.ID, decode func(string, []byte) (*names.Claim, error)) (*poll, error) {
	peers, err := s.holdersOf(ctx, key)
	if err != nil {
		return nil, err
	}
	messenger, err := pb.NewProtocolMessenger(s.dht.MessageSender())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // the answers no longer needed once the poll is decided
	type answer struct {
		id    peer.ID
		value []byte
		err   error
	}
	answers := make(chan answer, len(peers))
	p := &poll{key: key, byOwner: map[string][]vote{}, errs: map[peer.ID]string{}}
	for _, id := range peers {
		if id == skip || id == s.host.ID() {
			continue
		}
		p.asked++
		go func() {
			ctx, cancel := context.WithTimeout(ctx, pollWait)
			defer cancel()
			rec, _, err := messenger.GetValue(ctx, id, key)
			answers <- answer{id: id, value: rec.GetValue(), err: err}
		}()
	}
	for pending := p.asked; pending > 0 && !p.decided(pending); pending-- {
		a := <-answers
		switch {
		case a.err != nil:
			p.errs[a.id] = a.err.Error()
		case a.value == nil:
		default:
			c, err := decode(key, a.value)
			if err != nil {
				p.invalid++
				continue
			}
			p.answered++
			owner := names.KeyID(c.Owner)
			p.byOwner[owner] = append(p.byOwner[owner], vote{peer: a.id, value: a.value, claim: c})
		}
	}
	return p, nil
}

// holdersOf are the peers closest to key. A node that is itself one of
// them (a holder asked to take a record) knows its neighbourhood: its
// routing table's nearest peers are the closest, with no lookup, which keeps
// a claim from costing every holder a walk of the network. Any other node
// looks them up.
func (s *Service) holdersOf(ctx context.Context, key string) ([]peer.ID, error) {
	k := s.dht.BucketSize()
	near := s.dht.RoutingTable().NearestPeers(kb.ConvertKey(key), k)
	if len(near) == k && kb.Closer(s.host.ID(), near[k-1], key) {
		return near, nil
	}
	peers, err := s.dht.GetClosestPeers(ctx, key)
	if err != nil && len(peers) == 0 {
		return nil, fmt.Errorf("find the holders of %s: %w", key, err)
	}
	return peers, nil
}

// decided reports whether the pending answers can no longer change the
// winner: the leading owner is ahead of every other by more than pending,
// and has at least a majority of the holders asked. A silent or slow holder
// then holds nobody up.
func (p *poll) decided(pending int) bool {
	lead, second := 0, 0
	for _, v := range p.byOwner {
		switch n := len(v); {
		case n > lead:
			lead, second = n, lead
		case n > second:
			second = n
		}
	}
	return lead > p.asked/2 && lead-second > pending
}

// winner is the rule a resolver that knows no owner decides by: the owner
// held by more of the closest holders that answered than any other key. No
// answer is nil with no error; a tie is ErrDisputed, naming the counts: the
// node then trusts neither rather than guess.
func (p *poll) winner() ([]vote, error) {
	if len(p.byOwner) == 0 {
		return nil, nil
	}
	owners := make([]string, 0, len(p.byOwner))
	for k := range p.byOwner {
		owners = append(owners, k)
	}
	sort.Slice(owners, func(i, j int) bool {
		a, b := len(p.byOwner[owners[i]]), len(p.byOwner[owners[j]])
		return a > b || a == b && owners[i] < owners[j]
	})
	if len(owners) > 1 && len(p.byOwner[owners[0]]) == len(p.byOwner[owners[1]]) {
		return nil, fmt.Errorf("%s: the closest holders disagree on the owner (%s); not trusting any: %w",
			p.key, p.describe(owners), names.ErrDisputed)
	}
	return p.byOwner[owners[0]], nil
}

func (p *poll) describe(owners []string) string {
	parts := make([]string, len(owners))
	for i, o := range owners {
		parts[i] = fmt.Sprintf("key %s held by %d", o, len(p.byOwner[o]))
	}
	return strings.Join(parts, ", ") + fmt.Sprintf(" of %d asked", p.asked)
}

// disputed reports whether the holders named more than one owner.
func (p *poll) disputed() bool { return len(p.byOwner) > 1 }

// zoneByAgreement finds the zone of n from the closest holders' agreement
// on its owner, and the newest of that owner's zones they hold.
func (s *Service) zoneByAgreement(ctx context.Context, n names.Name) ([]byte, error) {
	key := names.ZoneKey(n)
	p, err := s.pollHolders(ctx, key, "", s.owners.zoneOwner)
	if err != nil {
		return nil, err
	}
	votes, err := p.winner()
	if err != nil {
		s.owners.Refused(err, "name", n)
		return nil, err
	}
	if votes == nil {
		return nil, fmt.Errorf("resolve %s: none of the %d closest holders has it: %w", n, p.asked, ErrNotFound)
	}
	if p.disputed() {
		s.log.Warn("holders disagree on a name's owner; trusting the most held", "name", n, "holders", p.describe(sortedOwners(p)))
	}
	values := make([][]byte, len(votes))
	for i, v := range votes {
		values[i] = v.value
	}
	best, err := s.zoneV.Select(key, values)
	if err != nil {
		return nil, err
	}
	return values[best], nil
}

func sortedOwners(p *poll) []string {
	out := make([]string, 0, len(p.byOwner))
	for k := range p.byOwner {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return len(p.byOwner[out[i]]) > len(p.byOwner[out[j]]) })
	return out
}

// learnOwner makes sure this node knows the owner of c's name before it
// takes c (under key) from peer from: a node that knows no owner and did
// not vote for c's key asks the name's closest holders, the sender left
// out, and binds the owner they agree on. A node that joined after a claim
// (or lost its records) so refuses a rival the way the holders before it
// do, instead of taking whatever reaches it first.
func (s *Service) learnOwner(ctx context.Context, c *names.Claim, key string, from peer.ID) error {
	held, err := s.owners.Known(ctx, c.Name)
	if err != nil || held != nil {
		return err
	}
	if voted := s.owners.Voted(ctx, c.Name); voted != nil && voted.Owner.Equals(c.Owner) {
		return nil // the claimant storing what this node voted for
	}
	select {
	case s.holdSlots <- struct{}{}:
		defer func() { <-s.holdSlots }()
	default:
		return fmt.Errorf("%s: this node is busy checking other new names with their holders; try again", c.Name)
	}
	ctx, cancel := context.WithTimeout(ctx, learnWait)
	defer cancel()
	agreed, err := s.ownerByAgreement(ctx, key, from)
	if err != nil {
		return fmt.Errorf("%s: %w", c.Name, err)
	}
	if agreed != nil {
		_, err = s.owners.Bind(ctx, agreed)
	}
	return err
}

// ownerByAgreement is the claim the closest holders of key agree on (key is
// a claim or zone key), or nil when none of them holds a value.
func (s *Service) ownerByAgreement(ctx context.Context, key string, skip peer.ID) (*names.Claim, error) {
	decode := s.owners.claimOwner
	if strings.HasPrefix(key, "/"+names.ZoneNamespace+"/") {
		decode = s.owners.zoneOwner
	}
	p, err := s.pollHolders(ctx, key, skip, decode)
	if err != nil {
		return nil, err
	}
	votes, err := p.winner()
	if err != nil || votes == nil {
		return nil, err
	}
	return votes[0].claim, nil
}

// AdmitPut is the DHT put path's ownership rule, for a record a peer PUTs to
// this node: a claim or zone is validated, its owner checked against the one
// this node knows (learnOwner first, for a name new here), then passed to
// next (the operator's store policy), and its owner bound. kad-dht's own
// validators refuse the same records; this runs first so that the refusal
// says why, is logged and counted.
func (s *Service) AdmitPut(ctx context.Context, from peer.ID, rec *recpb.Record, next func() error) error {
	key := string(rec.GetKey())
	refuse := func(err error) error {
		s.owners.Refused(err, "key", key, "from", from)
		return err
	}
	c, err := s.owners.Inspect(key, rec.GetValue())
	if err != nil {
		return refuse(err)
	}
	if c != nil {
		if err := s.learnOwner(ctx, c, key, from); err != nil {
			return refuse(err)
		}
		if err := s.owners.Check(ctx, c.Name, c.Owner); err != nil {
			return refuse(err)
		}
	}
	if next != nil {
		if err := next(); err != nil {
			return err
		}
	}
	if c != nil {
		if _, err := s.owners.Bind(ctx, c); err != nil {
			return refuse(err)
		}
	}
	return nil
}
