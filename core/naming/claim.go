package naming

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/avnode/avnode/core/fault"
	"github.com/avnode/avnode/core/frame"
	"github.com/avnode/avnode/core/names"
)

// The claim protocol: the claimant sends a frame (core/frame) with the
// claim; the holder answers with one: statusHeld (it now holds the claim as
// the name's owner) or statusRefused with the reason.
const (
	statusHeld    byte = 0
	statusRefused byte = 1
	claimTimeout       = 15 * time.Second
	maxReasonLen       = 1024
	// holdLookups bounds the network lookups holders run at once for claims
	// of names they never saw; past it a claim is refused as busy.
	holdLookups = 8
)

// handleClaim is the holder's side: validate, refuse a second owner, hold.
func (s *Service) handleClaim(st network.Stream) {
	defer st.Close()
	st.SetDeadline(time.Now().Add(claimTimeout))
	_, data, err := frame.Read(bufio.NewReader(st), names.MaxRecordSize)
	if err != nil {
		st.Reset()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), claimTimeout-pollWait/2)
	defer cancel()
	if err := s.hold(ctx, st.Conn().RemotePeer(), data); err != nil {
		s.metrics.claimsRefused.Inc()
		s.owners.Refused(err, "from", st.Conn().RemotePeer())
		reason := err.Error()
		if len(reason) > maxReasonLen {
			reason = reason[:maxReasonLen]
		}
		frame.Write(st, statusRefused, []byte(reason))
		return
	}
	s.metrics.claimsHeld.Inc()
	frame.Write(st, statusHeld, nil)
}

// hold is one holder's vote: it holds the first claim it is asked to hold
// for a name, for good, and never one by a key other than the owner it knows.
func (s *Service) hold(ctx context.Context, from peer.ID, data []byte) error {
	c, err := s.owners.claimV.Decode(data)
	if err != nil {
		return err
	}
	if err := s.owners.claimV.Validate(c.Key(), data); err != nil {
		return err
	}
	if err := s.learnOwner(ctx, c, c.Key(), from); err != nil {
		return err
	}
	return s.owners.Vote(ctx, c)
}

// ClaimResult is what a claim achieved; the control API answers it as api.ClaimResult.
type ClaimResult struct {
	Name string `json:"name"`
	Key  string `json:"key"`
	// Holders is how many of the closest peers now hold the claim as the
	// name's owner, of Asked.
	Holders int `json:"holders"`
	Asked   int `json:"asked"`
	// Certified: a majority of the name's holders (and at least
	// names.claim_quorum) hold this claim, so the name is this key's.
	Certified bool     `json:"certified"`
	Refusals  []string `json:"refusals,omitempty"`
	MintTime  string   `json:"mint_time"`
	// Resumed: the name was this key's already, and this claim finished
	// setting it up on this node (ownership, zone) instead of minting.
	Resumed bool `json:"resumed,omitempty"`
}

// Claim binds a registered name to the keystore key keyName: mint the proof
// of work, ask the closest peers to hold it, then store the claim and an
// empty zone in the DHT.
func (s *Service) Claim(ctx context.Context, nameText, keyName string) (*ClaimResult, error) {
	return s.ClaimWithRecovery(ctx, nameText, keyName, "")
}

// ClaimWithRecovery is Claim with a recovery key: the claim commits to the
// hash of keystore key recoveryKey ("" for none), which can later take the
// name back from a lost or stolen key (Recover).
func (s *Service) ClaimWithRecovery(ctx context.Context, nameText, keyName, recoveryKey string) (*ClaimResult, error) {
	var recovery []byte
	if recoveryKey != "" {
		rescue, err := s.keys.Private(recoveryKey)
		if err != nil {
			return nil, err
		}
		if recovery, err = names.RecoveryCommitment(rescue.GetPublic()); err != nil {
			return nil, err
		}
		if recoveryKey == keyName {
			return nil, fmt.Errorf("claim %s: the recovery key must not be the name's own key: a thief of one would hold both", nameText)
		}
	}
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
	if held, err := s.lookupClaim(ctx, n); err == nil && held != nil {
		if !held.Owner.Equals(priv.GetPublic()) {
			return nil, fmt.Errorf("claim %s: name already held by key %s; choose another name: %w", n, names.KeyID(held.Owner), names.ErrNameTaken)
		}
		// A second claim of the same key would split the holders' votes
		// (a name's owner is its exact claim) and drop a recovery key.
		setUp, err := s.claimSetUp(ctx, n)
		if err != nil {
			return nil, err
		}
		if setUp || (recovery != nil && !bytes.Equal(recovery, held.Recovery)) {
			return nil, fault.Errorf(fault.Refused, "claim %s: already claimed by this key (%s); nothing to do (see `avnode key recovery show %s`)", n, names.KeyID(held.Owner), n)
		}
		// The network holds this key's claim, but this node never set the
		// name up: a claim that failed after its holders certified it, or
		// a repo that lost its names. Finish what the claim left undone.
		if err := s.adopt(ctx, held, keyName); err != nil {
			return nil, err
		}
		return &ClaimResult{Name: n.String(), Key: names.KeyID(held.Owner), Certified: true, Resumed: true}, nil
	}
	start := time.Now()
	c, err := names.MintClaimWithRecovery(ctx, n, priv, recovery, s.cfg.Names.ClaimDifficulty, time.Now())
	if err != nil {
		return nil, err
	}
	res := &ClaimResult{Name: n.String(), Key: names.KeyID(priv.GetPublic()), MintTime: time.Since(start).Round(time.Millisecond).String()}
	data, err := c.Marshal()
	if err != nil {
		return nil, err
	}
	// This node is one of the name's holders too: it votes for its own
	// claim by binding it, and so will not hold a rival's.
	if err := s.holdOwnClaim(ctx, c); err != nil {
		return nil, err
	}
	if err := s.collectHolders(ctx, c, data, res); err != nil {
		return nil, err
	}
	needed := holdersNeeded(res.Asked, s.cfg.Names.ClaimQuorum)
	res.Certified = res.Holders >= needed
	if !res.Certified {
		return res, fmt.Errorf("claim %s: %d of the %d closest peers hold it, %d needed (%s); try again when more peers are online",
			n, res.Holders, res.Asked, needed, strings.Join(res.Refusals, "; "))
	}
	if err := s.adopt(ctx, c, keyName); err != nil {
		return res, err
	}
	return res, nil
}

// claimSetUp reports whether this node has set n up as its own: it owns
// the name and has signed a zone for it.
func (s *Service) claimSetUp(ctx context.Context, n names.Name) (bool, error) {
	for _, prefix := range []ds.Key{ownedPrefix, zonePrefix} {
		if _, ok, err := s.get(ctx, nameKey(prefix, n)); err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// holdersNeeded is a strict majority of the peers asked. Each honest holder
// holds only the first claim it is asked to, so of two keys racing for a
// name at most one gets a majority (a 10/10 split gives neither): the other
// fails, and every node agrees on the owner. The claimant's own node does
// not count: a rival's is not among the holders either. Never less than the
// network's quorum.
func holdersNeeded(asked, quorum int) int {
	return max(quorum, asked/2+1)
}

// holdOwnClaim votes for c on this node, unless it already knows another
// key's claim for the name: then the name is taken.
func (s *Service) holdOwnClaim(ctx context.Context, c *names.Claim) error {
	if err := s.owners.Vote(ctx, c); err != nil {
		return fmt.Errorf("claim %s: this node already holds another key's claim for it; choose another name: %w", c.Name, err)
	}
	return nil
}

// collectHolders asks each of the closest peers to hold the claim, in parallel.
func (s *Service) collectHolders(ctx context.Context, c *names.Claim, data []byte, res *ClaimResult) error {
	peers, err := s.dht.GetClosestPeers(ctx, c.Key())
	if err != nil {
		return fmt.Errorf("claim %s: find the closest peers: %w", c.Name, err)
	}
	res.Asked = len(peers)
	reasons := make(chan string, len(peers))
	for _, p := range peers {
		go func(p peer.ID) { reasons <- s.requestHold(ctx, p, data) }(p)
	}
	taken := 0
	for range peers {
		reason := <-reasons
		if reason == "" {
			res.Holders++
			continue
		}
		res.Refusals = append(res.Refusals, reason)
		if containsErr(reason, names.ErrNameTaken) {
			taken++
		}
	}
	if taken > 0 && res.Holders < holdersNeeded(len(peers), s.cfg.Names.ClaimQuorum) {
		return fmt.Errorf("claim %s: %d of the closest peers hold another key's claim for it; choose another name: %w", c.Name, taken, names.ErrNameTaken)
	}
	return nil
}

// requestHold asks p to hold the claim; "" means it does, else the reason.
func (s *Service) requestHold(ctx context.Context, p peer.ID, data []byte) string {
	ctx, cancel := context.WithTimeout(ctx, claimTimeout)
	defer cancel()
	st, err := s.host.NewStream(ctx, p, s.claimProtocol())
	if err != nil {
		return fmt.Sprintf("%s: %v", p, err)
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(claimTimeout))
	if err := frame.Write(st, statusHeld, data); err != nil {
		st.Reset()
		return fmt.Sprintf("%s: %v", p, err)
	}
	st.CloseWrite()
	status, body, err := frame.Read(bufio.NewReader(st), names.MaxRecordSize)
	if err != nil {
		return fmt.Sprintf("%s: %v", p, err)
	}
	if status != statusHeld {
		return fmt.Sprintf("%s: %s", p, truncateReason(body))
	}
	return ""
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

// adopt binds the claim, records ownership, and publishes the claim and a
// first (empty) zone so the name resolves at once.
func (s *Service) adopt(ctx context.Context, c *names.Claim, keyName string) error {
	data, err := c.Marshal()
	if err != nil {
		return err
	}
	if _, err := s.owners.Bind(ctx, c); err != nil {
		return err
	}
	if err := s.store.Put(ctx, nameKey(ownedPrefix, c.Name), []byte(keyName)); err != nil {
		return fmt.Errorf("claim %s: remember ownership: %w", c.Name, err)
	}
	if err := s.putValue(ctx, c.Key(), data); err != nil {
		return fmt.Errorf("claim %s: store in the DHT: %w", c.Name, err)
	}
	_, err = s.updateZone(ctx, c.Name, func(z *names.Zone) error { return nil })
	return err
}

// lookupClaim returns the claim this node knows for n, else the one the
// name's closest holders agree on; nil when nobody holds one.
func (s *Service) lookupClaim(ctx context.Context, n names.Name) (*names.Claim, error) {
	if c, err := s.owners.Known(ctx, n); err != nil || c != nil {
		return c, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Names.ResolveTimeout.D())
	defer cancel()
	_, c, err := s.ownerByAgreement(ctx, names.ClaimKey(n), "")
	return c, err
}
