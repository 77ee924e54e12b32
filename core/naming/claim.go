package naming

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/avnode/avnode/core/frame"
	"github.com/avnode/avnode/core/names"
)

// The claim protocol: the claimant sends a frame (core/frame) with the
// claim; the holder answers with one: the claim with its witness added, or
// the reason it refused.
const (
	statusWitnessed byte = 0
	statusRefused   byte = 1
	claimTimeout         = 15 * time.Second
	maxReasonLen         = 1024
)

// handleClaim is the holder's side: validate, refuse a second owner, store,
// countersign.
func (s *Service) handleClaim(st network.Stream) {
	defer st.Close()
	st.SetDeadline(time.Now().Add(claimTimeout))
	_, data, err := frame.Read(bufio.NewReader(st), names.MaxRecordSize)
	if err != nil {
		st.Reset()
		return
	}
	witnessed, err := s.witness(context.Background(), data)
	if err != nil {
		s.metrics.claimsRefused.Inc()
		s.log.Info("refused a claim", "from", st.Conn().RemotePeer(), "err", err)
		reason := err.Error()
		if len(reason) > maxReasonLen {
			reason = reason[:maxReasonLen]
		}
		frame.Write(st, statusRefused, []byte(reason))
		return
	}
	s.metrics.claimsWitnessed.Inc()
	frame.Write(st, statusWitnessed, witnessed)
}

// witnessMu serialises witnessing so two racing claims for one name cannot
// both find the holder empty.
var witnessMu sync.Mutex

func (s *Service) witness(ctx context.Context, data []byte) ([]byte, error) {
	c, err := names.DecodeClaim(data)
	if err != nil {
		return nil, err
	}
	if err := s.claimV.Validate(c.Key(), data); err != nil {
		return nil, err
	}
	witnessMu.Lock()
	defer witnessMu.Unlock()
	held, ok, err := s.get(ctx, nameKey(heldPrefix, c.Name))
	if err != nil {
		return nil, err
	}
	if ok {
		if err := names.HolderCheck(held, data); errors.Is(err, names.ErrNameTaken) {
			return nil, err
		}
	}
	if !ok {
		if err := s.store.Put(ctx, nameKey(heldPrefix, c.Name), data); err != nil {
			return nil, fmt.Errorf("store claim %s: %w", c.Name, err)
		}
	}
	if err := c.AddWitness(s.nodeKey, time.Now()); err != nil {
		return nil, err
	}
	return c.Marshal()
}

// ClaimResult is what `avnode name claim` reports.
type ClaimResult struct {
	Name      string   `json:"name"`
	Key       string   `json:"key"`
	Witnesses int      `json:"witnesses"`
	Asked     int      `json:"asked"`
	Certified bool     `json:"certified"`
	Refusals  []string `json:"refusals,omitempty"`
	MintTime  string   `json:"mint_time"`
}

// Claim binds a registered name to the keystore key keyName: mint the proof
// of work, ask the closest peers to witness it, then store the certified claim
// and an empty zone in the DHT.
func (s *Service) Claim(ctx context.Context, nameText, keyName string) (*ClaimResult, error) {
	n, err := names.Parse(nameText)
	if err != nil {
		return nil, err
	}
	if !n.IsRegistered() {
		return nil, fmt.Errorf("claim %s: claim the registered name %s; sub-labels go in its zone with `avnode record set %s A VALUE --label %s`",
			n, n.Registered(), n.Registered(), n.Sub())
	}
	priv, err := s.keys.Private(keyName)
	if err != nil {
		return nil, err
	}
	if held, err := s.lookupClaim(ctx, n); err == nil && !held.Owner.Equals(priv.GetPublic()) {
		return nil, fmt.Errorf("claim %s: name already held by key %s; choose another name: %w", n, names.KeyID(held.Owner), names.ErrNameTaken)
	}
	start := time.Now()
	c, err := names.MintClaim(ctx, n, priv, s.cfg.Names.ClaimDifficulty, time.Now())
	if err != nil {
		return nil, err
	}
	res := &ClaimResult{Name: n.String(), Key: names.KeyID(priv.GetPublic()), MintTime: time.Since(start).Round(time.Millisecond).String()}
	data, err := c.Marshal()
	if err != nil {
		return nil, err
	}
	// This node is one of the name's holders too: it votes for its own
	// claim by remembering it, and so will not witness a rival's.
	if err := s.holdOwnClaim(ctx, c, data); err != nil {
		return nil, err
	}
	if err := s.collectWitnesses(ctx, c, data, res); err != nil {
		return nil, err
	}
	res.Witnesses = names.CertifiedBy(c)
	needed := witnessesNeeded(res.Asked, s.cfg.Names.ClaimQuorum)
	res.Certified = res.Witnesses >= needed && s.claimV.Certified(c)
	if !res.Certified {
		return res, fmt.Errorf("claim %s: %d of the %d closest peers witnessed it, %d needed (%s); try again when more peers are online",
			n, res.Witnesses, res.Asked, needed, strings.Join(res.Refusals, "; "))
	}
	if err := s.adopt(ctx, c, keyName); err != nil {
		return res, err
	}
	return res, nil
}

// witnessesNeeded makes a majority of the holders: the peers asked plus the
// claimant's own node, which votes for its own claim (holdOwnClaim). Each
// honest holder votes once, for the first claim it sees for a name, so of
// two keys racing for a name at most one gets a majority: the other fails,
// and every node agrees on the owner. Never less than the network's quorum.
func witnessesNeeded(asked, quorum int) int {
	holders := asked + 1
	return max(quorum, holders/2+1-1)
}

// holdOwnClaim records c as the claim this node holds for its name, unless
// it already holds another key's claim: then the name is taken.
func (s *Service) holdOwnClaim(ctx context.Context, c *names.Claim, data []byte) error {
	witnessMu.Lock()
	defer witnessMu.Unlock()
	held, ok, err := s.get(ctx, nameKey(heldPrefix, c.Name))
	if err != nil {
		return err
	}
	if ok {
		if err := names.HolderCheck(held, data); errors.Is(err, names.ErrNameTaken) {
			return fmt.Errorf("claim %s: this node already holds another key's claim for it; choose another name: %w", c.Name, err)
		}
		return nil
	}
	return s.store.Put(ctx, nameKey(heldPrefix, c.Name), data)
}

// collectWitnesses asks each of the closest peers to witness the claim, in parallel.
func (s *Service) collectWitnesses(ctx context.Context, c *names.Claim, data []byte, res *ClaimResult) error {
	peers, err := s.dht.GetClosestPeers(ctx, c.Key())
	if err != nil {
		return fmt.Errorf("claim %s: find the closest peers: %w", c.Name, err)
	}
	res.Asked = len(peers)
	type answer struct {
		claim  *names.Claim
		reason string
	}
	answers := make(chan answer, len(peers))
	for _, p := range peers {
		go func(p peer.ID) {
			wc, reason := s.requestWitness(ctx, p, data)
			answers <- answer{wc, reason}
		}(p)
	}
	taken := 0
	for range peers {
		a := <-answers
		if a.claim != nil {
			c.MergeWitnesses(a.claim)
			continue
		}
		res.Refusals = append(res.Refusals, a.reason)
		if containsErr(a.reason, names.ErrNameTaken) {
			taken++
		}
	}
	if taken > 0 && names.CertifiedBy(c) < witnessesNeeded(len(peers), s.cfg.Names.ClaimQuorum) {
		return fmt.Errorf("claim %s: %d of the closest peers hold another key's claim for it; choose another name: %w", c.Name, taken, names.ErrNameTaken)
	}
	return nil
}

func (s *Service) requestWitness(ctx context.Context, p peer.ID, data []byte) (*names.Claim, string) {
	ctx, cancel := context.WithTimeout(ctx, claimTimeout)
	defer cancel()
	st, err := s.host.NewStream(ctx, p, s.claimProtocol())
	if err != nil {
		return nil, fmt.Sprintf("%s: %v", p, err)
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(claimTimeout))
	if err := frame.Write(st, statusWitnessed, data); err != nil {
		st.Reset()
		return nil, fmt.Sprintf("%s: %v", p, err)
	}
	st.CloseWrite()
	status, body, err := frame.Read(bufio.NewReader(st), names.MaxRecordSize)
	if err != nil {
		return nil, fmt.Sprintf("%s: %v", p, err)
	}
	if status != statusWitnessed {
		return nil, fmt.Sprintf("%s: %s", p, truncateReason(body))
	}
	wc, err := names.DecodeClaim(body)
	if err != nil {
		return nil, fmt.Sprintf("%s: bad answer: %v", p, err)
	}
	return wc, ""
}

func truncateReason(b []byte) string {
	if len(b) > maxReasonLen {
		b = b[:maxReasonLen]
	}
	return string(b)
}

func containsErr(reason string, target error) bool {
	return strings.Contains(reason, target.Error())
}

// adopt pins the certified claim, records ownership, and publishes the
// claim and a first (empty) zone so the name resolves at once.
func (s *Service) adopt(ctx context.Context, c *names.Claim, keyName string) error {
	data, err := c.Marshal()
	if err != nil {
		return err
	}
	if err := s.pinClaim(ctx, c, data); err != nil {
		return err
	}
	if err := s.store.Put(ctx, nameKey(ownedPrefix, c.Name), []byte(keyName)); err != nil {
		return fmt.Errorf("claim %s: remember ownership: %w", c.Name, err)
	}
	if err := s.dht.PutValue(ctx, c.Key(), data); err != nil {
		return fmt.Errorf("claim %s: store in the DHT: %w", c.Name, err)
	}
	_, err = s.updateZone(ctx, c.Name, func(z *names.Zone) error { return nil })
	return err
}

// pinClaim keeps the claim this node trusts for a name. A pinned claim is
// only replaced by a better claim of the same owner (more witnesses).
func (s *Service) pinClaim(ctx context.Context, c *names.Claim, data []byte) error {
	old, ok, err := s.get(ctx, nameKey(pinnedPrefix, c.Name))
	if err != nil {
		return err
	}
	if ok && bytes.Equal(old, data) {
		return nil // the usual case: nothing new, no signatures to check
	}
	if ok {
		if pinned, err := names.DecodeClaim(old); err == nil {
			if !pinned.Owner.Equals(c.Owner) {
				return fmt.Errorf("name %s is pinned to key %s, not %s: %w", c.Name, names.KeyID(pinned.Owner), names.KeyID(c.Owner), names.ErrNameTaken)
			}
			if names.CertifiedBy(pinned) >= names.CertifiedBy(c) {
				return nil
			}
		}
	}
	return s.store.Put(ctx, nameKey(pinnedPrefix, c.Name), data)
}

// lookupClaim returns the pinned claim, else the best certified one in the DHT.
func (s *Service) lookupClaim(ctx context.Context, n names.Name) (*names.Claim, error) {
	if data, ok, _ := s.get(ctx, nameKey(pinnedPrefix, n)); ok {
		if c, err := names.DecodeClaim(data); err == nil {
			return c, nil
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Names.ResolveTimeout.D())
	defer cancel()
	data, err := s.dht.GetValue(ctx, names.ClaimKey(n), dhtQuorum(s.cfg.Names.ResolveQuorum))
	if err != nil {
		return nil, err
	}
	return names.DecodeClaim(data)
}
