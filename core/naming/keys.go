package naming

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/avnode/avnode/core/fault"
	"github.com/avnode/avnode/core/keystore"
	"github.com/avnode/avnode/core/names"
)

// Key lifecycles of owned names: rotate to a new key, commit to a recovery
// key, and recover a name from a lost or stolen key. Each change is one
// signed step (core/names, rotation.go) that this node learns first, then
// carries in a fresh zone signed by the new key, which spreads it to every
// holder and resolver.

// KeyStep is one rotation as users see it.
type KeyStep struct {
	Index   int    `json:"index"`
	Kind    string `json:"kind"` // rotate or recover
	Key     string `json:"key"`  // the key the step hands the name to
	KeyType string `json:"key_type"`
}

// KeyChain is a name's key history; the control API answers it as
// api.KeyChain.
type KeyChain struct {
	Name    string `json:"name"`
	Key     string `json:"key"` // the current key
	KeyType string `json:"key_type"`
	// Claimed is the key that claimed the name.
	Claimed string `json:"claimed"`
	// Recovery is the recovery commitment in force, "sha256:<hex>", or "".
	Recovery string `json:"recovery"`
	// RecoveryKey names the keystore key that is the recovery key, when
	// this node holds it.
	RecoveryKey string    `json:"recovery_key,omitempty"`
	Steps       []KeyStep `json:"steps"`
	// Seq is the zone published with the change, when there was one.
	Seq uint64 `json:"seq,omitempty"`
}

// KeyChainOf shows the key history this node knows for a name, learning the
// name first if it is new here.
func (s *Service) KeyChainOf(ctx context.Context, nameText string) (*KeyChain, error) {
	n, err := names.Parse(nameText)
	if err != nil {
		return nil, err
	}
	l, err := s.lineageFor(ctx, n.Registered())
	if err != nil {
		return nil, err
	}
	return s.keyChain(l), nil
}

// RotateKey hands an owned name from its current key to the keystore key
// toKey; both must be in this node's keystore.
func (s *Service) RotateKey(ctx context.Context, nameText, toKey string) (*KeyChain, error) {
	return s.changeKey(ctx, nameText, toKey, func(l *names.Lineage, next crypto.PrivKey) (*names.Lineage, *names.Rotation, error) {
		head, err := s.headKey(l)
		if err != nil {
			return nil, nil, err
		}
		if c, err := names.RecoveryCommitment(next.GetPublic()); err == nil && string(c) == string(l.Recovery()) {
			return nil, nil, fault.Errorf(fault.Invalid, "rotate %s: %s is the name's recovery key; a thief of one key would then hold both", l.Claim.Name, toKey)
		}
		step, err := names.Rotate(l, head, next, nil)
		return l, step, err
	})
}

// SetRecovery commits an owned name to the keystore key recoveryKey as its
// recovery key. Where a commitment is set already only the current recovery
// key (currentRecovery) can change it.
func (s *Service) SetRecovery(ctx context.Context, nameText, recoveryKey, currentRecovery string) (*KeyChain, error) {
	rescue, err := s.keys.Private(recoveryKey)
	if err != nil {
		return nil, err
	}
	commitment, err := names.RecoveryCommitment(rescue.GetPublic())
	if err != nil {
		return nil, err
	}
	return s.changeKey(ctx, nameText, "", func(l *names.Lineage, _ crypto.PrivKey) (*names.Lineage, *names.Rotation, error) {
		head, err := s.headKey(l)
		if err != nil {
			return nil, nil, err
		}
		if rescue.GetPublic().Equals(l.Head()) {
			return nil, nil, fault.Errorf(fault.Invalid, "recovery %s: %s is the name's own key; a recovery key must be another, kept apart", l.Claim.Name, recoveryKey)
		}
		if l.Recovery() == nil {
			step, err := names.Rotate(l, head, head, commitment)
			return l, step, err
		}
		if currentRecovery == "" {
			return nil, nil, fmt.Errorf("recovery %s: the name commits to a recovery key already; only it can change that: pass --current-recovery-key", l.Claim.Name)
		}
		current, err := s.keys.Private(currentRecovery)
		if err != nil {
			return nil, nil, err
		}
		step, err := names.Recover(l, current, head, commitment)
		return l, step, err
	})
}

// Recover takes a name back with its recovery key (a keystore key of this
// node) and hands it to the keystore key toKey; the old key is not needed.
// The step goes after step `after` of the known chain: a recovery wins
// over the steps it forks from, so it must fork where the chain stopped
// being the owner's. after < 0 picks the last step to a key this node's
// keystore holds (0: the claim's key); with none held, after must be given.
func (s *Service) Recover(ctx context.Context, nameText, recoveryKey, toKey string, after int) (*KeyChain, error) {
	rescue, err := s.keys.Private(recoveryKey)
	if err != nil {
		return nil, err
	}
	return s.changeKey(ctx, nameText, toKey, func(l *names.Lineage, next crypto.PrivKey) (*names.Lineage, *names.Rotation, error) {
		if after < 0 {
			if after = s.lastHeldStep(l); after < 0 {
				return nil, nil, fault.Errorf(fault.Invalid, "recover %s: this node holds none of the keys the name had; say after which step the chain was still yours with --after N (see `avnode key recovery show %s`)",
					l.Claim.Name, l.Claim.Name)
			}
		}
		if after > len(l.Steps) {
			return nil, nil, fault.Errorf(fault.Invalid, "recover %s: --after %d, but the chain has %d steps", l.Claim.Name, after, len(l.Steps))
		}
		base := l.Prefix(after)
		step, err := names.Recover(base, rescue, next, nil)
		return base, step, err
	})
}

// lastHeldStep is the last step of l (0: the claim) whose key this node's
// keystore holds, or -1: where the chain was last in the owner's hands.
func (s *Service) lastHeldStep(l *names.Lineage) int {
	for i := len(l.Steps); i >= 0; i-- {
		key := l.Claim.Owner
		if i > 0 {
			key = l.Steps[i-1].NewKey
		}
		if _, _, err := s.keys.Find(key); err == nil {
			return i
		}
	}
	return -1
}

// changeKey runs one key change: learn the lineage, build the step on a base
// of it, remember the new chain, own the name and publish a zone signed by
// the new head.
func (s *Service) changeKey(ctx context.Context, nameText, toKey string,
	build func(l *names.Lineage, next crypto.PrivKey) (*names.Lineage, *names.Rotation, error)) (*KeyChain, error) {
	n, err := names.Parse(nameText)
	if err != nil {
		return nil, err
	}
	n = n.Registered()
	var next crypto.PrivKey
	if toKey != "" {
		if next, err = s.keys.Private(toKey); err != nil {
			return nil, err
		}
	}
	l, err := s.lineageFor(ctx, n)
	if err != nil {
		return nil, err
	}
	base, step, err := build(l, next)
	if err != nil {
		return nil, err
	}
	changed, err := names.NewLineage(base.Claim, append(base.SignedSteps(), step.Signed()))
	if err != nil {
		return nil, err
	}
	if err := s.owners.CheckLineage(ctx, changed); err != nil {
		return nil, fmt.Errorf("%s: this node holds another key chain for the name: %w", n, err)
	}
	if err := s.store.Put(ctx, nameKey(ownedPrefix, n), []byte(s.keyName(changed.Head()))); err != nil {
		return nil, fmt.Errorf("%s: remember ownership: %w", n, err)
	}
	z, err := s.updateZone(ctx, n, func(*names.Zone) error { return nil })
	if err != nil {
		return nil, err
	}
	info := s.keyChain(z.Lineage())
	info.Seq = z.Seq
	return info, nil
}

// lineageFor is the lineage known for n, resolving the name first if this
// node never met it.
func (s *Service) lineageFor(ctx context.Context, n names.Name) (*names.Lineage, error) {
	l, err := s.owners.KnownLineage(ctx, n)
	if err != nil || l != nil {
		return l, err
	}
	if _, _, err := s.fetchZone(ctx, n); err != nil {
		return nil, err
	}
	l, err = s.owners.KnownLineage(ctx, n)
	if err == nil && l == nil {
		return nil, fmt.Errorf("%s: no owner known: %w", n, ErrNotFound)
	}
	return l, err
}

// headKey is the private key of l's current key, from the keystore.
func (s *Service) headKey(l *names.Lineage) (crypto.PrivKey, error) {
	_, priv, err := s.keys.Find(l.Head())
	if errors.Is(err, keystore.ErrNotFound) {
		return nil, fmt.Errorf("%s: its key %s is not in this node's keystore; rotate from the node that holds it, or recover with the recovery key: %w",
			l.Claim.Name, names.KeyID(l.Head()), keystore.ErrNotFound)
	}
	return priv, err
}

// keyName is the keystore name of pub, or "" (the zone is then signed by
// whatever key Find returns; ownedPrefix only says the node owns the name).
func (s *Service) keyName(pub crypto.PubKey) string {
	name, _, _ := s.keys.Find(pub)
	return name
}

func (s *Service) keyChain(l *names.Lineage) *KeyChain {
	info := &KeyChain{
		Name: l.Claim.Name.String(), Key: names.KeyID(l.Head()), KeyType: names.KeyType(l.Head()),
		Claimed: names.KeyID(l.Claim.Owner), Steps: []KeyStep{},
	}
	if r := l.Recovery(); r != nil {
		info.Recovery = "sha256:" + hex.EncodeToString(r)
		info.RecoveryKey = s.recoveryKeyName(r)
	}
	for _, st := range l.Steps {
		info.Steps = append(info.Steps, KeyStep{Index: st.Index, Kind: st.Kind.String(), Key: names.KeyID(st.NewKey), KeyType: names.KeyType(st.NewKey)})
	}
	return info
}

// recoveryKeyName finds the keystore key whose commitment is r.
func (s *Service) recoveryKeyName(r []byte) string {
	keys, err := s.keys.List()
	if err != nil {
		return ""
	}
	for _, k := range keys {
		if c, err := names.RecoveryCommitment(k.Public); err == nil && string(c) == string(r) {
			return k.Name
		}
	}
	return ""
}
