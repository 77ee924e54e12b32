package naming

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	record "github.com/libp2p/go-libp2p-record"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"

	"github.com/avnode/avnode/core/fault"
	"github.com/avnode/avnode/core/names"
)

// The agreement of a name's closest holders: the rules a node that knows no
// owner for a name decides by (winner), and where it applies them (a
// resolve, a peer's put, a claim to hold). walk.go finds the holders.

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
	glue  [][]byte     // what the holder answered beside the value, unchecked
	claim *names.Claim // the claim the value rests on (a zone's embedded one)
	owner string       // ownerLabel(claim)
}

// poll is what the closest holders of a key said.
type poll struct {
	key     string
	asked   int               // the closest peers found that did not fail
	pending int               // of them, those that have not answered yet
	byOwner map[string][]vote // by ownerLabel: the owner's key and exact claim
	quorum  int               // the fewest votes an owner needs to be trusted
	settled bool              // every one answered, or the answers decide it
}

// decided reports whether the pending answers can no longer change the
// winner: the leading owner has the quorum, a majority of the peers asked,
// and is ahead of every other by more than the answers still pending. A
// silent or slow holder then holds nobody up.
func (p *poll) decided() bool {
	lead, second := p.leadAndSecond()
	return lead >= p.quorum && lead > p.asked/2 && lead-second > p.pending
}

func (p *poll) leadAndSecond() (lead, second int) {
	for _, v := range p.byOwner {
		switch n := len(v); {
		case n > lead:
			lead, second = n, lead
		case n > second:
			second = n
		}
	}
	return lead, second
}

// winner is the rule a node that knows no owner decides by: the owner held
// by more of the closest holders that answered than any other key, and by
// at least the quorum (names.claim_quorum) of them. No answer with a value
// is nil with no error. A tie, an owner held by too few, or a poll that
// never settled is ErrDisputed, naming the counts: the node then trusts
// neither rather than guess.
func (p *poll) winner() ([]vote, error) {
	if !p.settled {
		return nil, fmt.Errorf("%s: %d of the %d closest holders did not answer in time; not deciding the owner: %w",
			p.key, p.pending, p.asked, names.ErrDisputed)
	}
	if len(p.byOwner) == 0 {
		return nil, nil
	}
	owners := sortedOwners(p)
	lead, second := p.leadAndSecond()
	switch {
	case lead == second:
		return nil, fmt.Errorf("%s: the closest holders disagree on the owner (%s); not trusting any: %w",
			p.key, p.describe(owners), names.ErrDisputed)
	case lead < p.quorum:
		return nil, fmt.Errorf("%s: too few of the closest holders agree on the owner (%s; %d needed); not trusting any: %w",
			p.key, p.describe(owners), p.quorum, names.ErrDisputed)
	}
	return p.byOwner[owners[0]], nil
}

// onlyFor reports whether every vote the poll heard is for claim c.
func (p *poll) onlyFor(c *names.Claim) bool {
	_, ok := p.byOwner[ownerLabel(c)]
	return len(p.byOwner) == 0 || len(p.byOwner) == 1 && ok
}

func (p *poll) describe(owners []string) string {
	parts := make([]string, len(owners))
	for i, o := range owners {
		key, claim, _ := strings.Cut(o, "#")
		parts[i] = fmt.Sprintf("key %s held by %d (claim %s)", key, len(p.byOwner[o]), claim)
	}
	return strings.Join(parts, ", ") + fmt.Sprintf(" of %d asked", p.asked)
}

// disputed reports whether the holders named more than one owner.
func (p *poll) disputed() bool { return len(p.byOwner) > 1 }

// agreed is what the closest holders of a name agreed on.
type agreed struct {
	zone []byte // the newest zone they hold of the owner most held
	// glue is what the holders of that zone answered beside it: the
	// hosts' signed peer records (glue.go), not checked yet.
	glue []glueOffer
	// dispute says who held what, when some holders named another owner.
	dispute string
}

// zoneByAgreement finds the zone of n from the closest holders' agreement
// on its owner, and the newest of that owner's zones they hold.
func (s *Service) zoneByAgreement(ctx context.Context, n names.Name) (agreed, error) {
	key := names.ZoneKey(n)
	p, err := s.pollHolders(ctx, key, "", s.owners.zoneOwner)
	if err != nil {
		return agreed{}, err
	}
	votes, err := p.winner()
	if err != nil {
		s.owners.Refused(err, "name", n)
		return agreed{}, err
	}
	if votes == nil {
		return agreed{}, fmt.Errorf("resolve %s: none of the %d closest holders has it: %w", n, p.asked, ErrNotFound)
	}
	var a agreed
	if p.disputed() {
		a.dispute = p.describe(sortedOwners(p))
		s.log.Warn("holders disagree on a name's owner; trusting the most held", "name", n, "holders", a.dispute)
	}
	// Most holders answer the same bytes: rank each distinct value once
	// (a hybrid zone costs about half a millisecond to check).
	values := make([][]byte, 0, len(votes))
	seen := make(map[string]bool, len(votes))
	for _, v := range votes {
		if !seen[string(v.value)] {
			seen[string(v.value)] = true
			values = append(values, v.value)
		}
	}
	best, err := s.owners.rankZones(key, values)
	if err != nil {
		return agreed{}, err
	}
	a.zone, a.glue = values[best], distinctGlue(votes, values[best])
	return a, nil
}

// sortedOwners lists the owners named, most held first (ties by key, so
// the order is stable).
func sortedOwners(p *poll) []string {
	out := make([]string, 0, len(p.byOwner))
	for k := range p.byOwner {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := len(p.byOwner[out[i]]), len(p.byOwner[out[j]])
		return a > b || a == b && out[i] < out[j]
	})
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
	if s.recentlyUnsettled(c.Name) {
		return fmt.Errorf("%s: its closest holders could not agree on an owner a moment ago; try again later: %w", c.Name, names.ErrDisputed)
	}
	ctx, cancel := context.WithTimeout(ctx, learnWait)
	defer cancel()
	// A node that just joined gets many names at once from re-puts: they
	// wait their turn a moment, past which the putter tries again later.
	wait := time.NewTimer(learnWait / 4)
	defer wait.Stop()
	select {
	case s.holdSlots <- struct{}{}:
		defer func() { <-s.holdSlots }()
	case <-wait.C:
		return fmt.Errorf("%s: this node is busy checking other new names with their holders; try again", c.Name)
	case <-ctx.Done():
		return ctx.Err()
	}
	p, agreed, err := s.ownerByAgreement(ctx, key, from)
	switch {
	case err != nil && p != nil && p.settled && p.onlyFor(c):
		return nil // the few holders that hold the name hold this key
	case err != nil:
		s.noteUnsettled(c.Name)
		return fmt.Errorf("%s: %w", c.Name, err)
	case agreed != nil:
		_, err = s.owners.Bind(ctx, agreed)
	}
	return err
}

// ownerByAgreement is the claim the closest holders of key agree on (key is
// a claim or zone key), or nil when none of them holds a value; with the
// poll it rests on.
func (s *Service) ownerByAgreement(ctx context.Context, key string, skip peer.ID) (*poll, *names.Claim, error) {
	p, err := s.pollHolders(ctx, key, skip, s.owners.decoderFor(key))
	if err != nil {
		return nil, nil, err
	}
	votes, err := p.winner()
	if err != nil || votes == nil {
		return p, nil, err
	}
	return p, votes[0].claim, nil
}

// AdmitPut is the DHT put path's ownership rule, for a record a peer PUTs to
// this node: a claim or zone is validated, its owner checked against the one
// this node knows (learnOwner first, for a name new here), then passed to
// next (the operator's store policy), and its owner bound. kad-dht's own
// validators refuse the same records; this runs first so that the refusal
// says why, is logged and counted. What the record carries beyond the
// record schema is shaped as it is written (ShapeStored).
func (s *Service) AdmitPut(ctx context.Context, from peer.ID, rec *recpb.Record, next func() error) error {
	key := string(rec.GetKey())
	refuse := func(err error) error {
		s.owners.Refused(err, "key", key, "from", from)
		return err
	}
	l, err := s.owners.Inspect(key, rec.GetValue())
	if err != nil {
		return refuse(err)
	}
	if l != nil {
		if err := s.learnOwner(ctx, l.Claim, key, from); err != nil {
			return refuse(err)
		}
		if err := s.owners.CheckLineage(ctx, l); err != nil {
			return refuse(err)
		}
	}
	if next != nil {
		if err := next(); err != nil {
			return err
		}
	}
	if l != nil {
		if _, err := s.owners.Bind(ctx, l.Claim); err != nil {
			return refuse(err)
		}
		// A name new here: its key chain is learned once it is bound.
		if err := s.owners.CheckLineage(ctx, l); err != nil {
			return refuse(err)
		}
	}
	return nil
}

// AdmitOwn is AdmitPut for a record this node's own tools or plugins put
// (avnode routing put, a role's PutRecord): the DHT's validators pass any
// owner for a name this node does not know yet, so the same rule as for a
// peer's put runs first: learn the owner from the holders, refuse another.
func (s *Service) AdmitOwn(ctx context.Context, key string, value []byte) error {
	return s.AdmitPut(ctx, "", &recpb.Record{Key: []byte(key), Value: value}, nil)
}

// PutRecord stores a record this node's own tools or plugins hand it
// (avnode routing put, a role's PutRecord): checked by the DHT's validators
// and AdmitOwn first, so a record the network would refuse is refused here
// (fault.Refused) before it is sent anywhere.
func (s *Service) PutRecord(ctx context.Context, key string, value []byte) error {
	if err := s.dht.Validator.Validate(key, value); err != nil {
		return fault.Errorf(fault.Refused, "record refused: %v", err)
	}
	if err := s.AdmitOwn(ctx, key, value); err != nil {
		return fault.Errorf(fault.Refused, "record refused: %v", err)
	}
	return s.put(ctx, key, value, putHow{bounded: true})
}

// unsettledFor is how long a name whose holders could not agree is refused
// at once: a PUT replayed by the thousand must not cost a poll each.
const (
	unsettledFor = 30 * time.Second
	maxUnsettled = 4096
)

func (s *Service) recentlyUnsettled(n names.Name) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.unsettled[n.String()]
	return ok && time.Since(at) < unsettledFor
}

func (s *Service) noteUnsettled(n names.Name) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.unsettled) >= maxUnsettled {
		for k, at := range s.unsettled {
			if time.Since(at) >= unsettledFor {
				delete(s.unsettled, k)
			}
		}
		if len(s.unsettled) >= maxUnsettled {
			return
		}
	}
	s.unsettled[n.String()] = time.Now()
}

// GetRecord is a DHT get that keeps to the ownership rule: for a claim or
// zone key of a name whose owner this node does not know, the value comes
// from the closest holders' agreement (and its owner is bound), not from the
// DHT's own pick, which would rank rival owners by their proof of work. Any
// other key is a plain DHT get. A key no peer holds is a fault.NotFound;
// a deadline that passes first stays a timeout.
func (s *Service) GetRecord(ctx context.Context, key string) ([]byte, error) {
	v, err := s.getRecord(ctx, key)
	if errors.Is(err, routing.ErrNotFound) {
		return nil, fault.Wrap(fault.NotFound, err)
	}
	return v, err
}

func (s *Service) getRecord(ctx context.Context, key string) ([]byte, error) {
	ns, rest, err := record.SplitKey(key)
	if err != nil || ns != names.ClaimNamespace && ns != names.ZoneNamespace {
		return s.dht.GetValue(ctx, key)
	}
	n, err := names.Parse(rest)
	if err != nil {
		return nil, err
	}
	if held, err := s.owners.Known(ctx, n); err != nil || held != nil {
		if err != nil {
			return nil, err
		}
		return s.dht.GetValue(ctx, key)
	}
	if ns == names.ZoneNamespace {
		z, _, err := s.fetchZone(ctx, n.Registered())
		if err != nil {
			return nil, err
		}
		return z.Signed(), nil
	}
	_, c, err := s.ownerByAgreement(ctx, key, "")
	switch {
	case err != nil:
		return nil, err
	case c == nil:
		return nil, routing.ErrNotFound
	}
	if _, err := s.owners.Bind(ctx, c); err != nil {
		return nil, err
	}
	return c.Marshal()
}
