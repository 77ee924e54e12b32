package naming

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"

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
// The step goes after step `after` of the known chain (a thief's steps
// after it are overruled); after < 0 picks it: after the last step of the
// zone this node signed itself, else at the end of the known chain.
func (s *Service) Recover(ctx context.Context, nameText, recoveryKey, toKey string, after int) (*KeyChain, error) {
	rescue, err := s.keys.Private(recoveryKey)
	if err != nil {
		return nil, err
	}
	return s.changeKey(ctx, nameText, toKey, func(l *names.Lineage, next crypto.PrivKey) (*names.Lineage, *names.Rotation, error) {
		if after < 0 {
			after = s.ownChainLength(ctx, l)
		}
		if after > len(l.Steps) {
			return nil, nil, fmt.Errorf("recover %s: --after %d, but the chain has %d steps", l.Claim.Name, after, len(l.Steps))
		}
		base := l.Prefix(after)
		step, err := names.Recover(base, rescue, next, nil)
		return base, step, err
	})
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
	if err := s.seedZone(ctx, n, changed); err != nil {
		return nil, err
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

// ownChainLength is how many steps the zone this node signed last carries,
// if the known chain extends it; else the known chain's length.
func (s *Service) ownChainLength(ctx context.Context, l *names.Lineage) int {
	data, ok, err := s.get(ctx, nameKey(zonePrefix, l.Claim.Name))
	if err != nil || !ok {
		return len(l.Steps)
	}
	own, err := names.DecodeZone(data)
	if err != nil || names.CheckSuccession(own.Lineage(), l) != nil {
		return len(l.Steps)
	}
	return len(own.Rotations)
}

// seedZone gives a node that takes over a name (a recovery on another
// machine) the records of the name's latest zone, as long as that zone was
// signed on the new chain's own line, not by a key the change overrules.
func (s *Service) seedZone(ctx context.Context, n names.Name, l *names.Lineage) error {
	if _, ok, err := s.get(ctx, nameKey(zonePrefix, n)); err != nil || ok {
		return err
	}
	z, _, err := s.fetchZone(ctx, n)
	if err != nil {
		return nil // nothing to seed from: the zone starts empty
	}
	onLine := z.Owner.Equals(l.Claim.Owner)
	for _, step := range l.Steps {
		onLine = onLine || z.Owner.Equals(step.NewKey)
	}
	if !onLine {
		return nil
	}
	return s.store.Put(ctx, nameKey(zonePrefix, n), z.Signed())
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
