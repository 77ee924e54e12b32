package naming

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/avnode/avnode/core/fault"
	"github.com/avnode/avnode/core/keystore"
	"github.com/avnode/avnode/core/names"
)

// RecordChange is one `avnode record set|rm`.
type RecordChange struct {
	Name   string // may carry a sub-label: api.coolblog.code
	Type   string
	Label  string        // --label; joined with a sub-label from Name
	Value  string        // set only
	TTL    time.Duration // --ttl: the zone's cache lifetime from now on; 0 keeps it
	Remove bool
}

// ZoneInfo is a name's zone as a record change or listing leaves it; the
// control API answers it as api.ZoneInfo.
type ZoneInfo struct {
	Name    string       `json:"name"`
	Key     string       `json:"key"`
	Seq     uint64       `json:"seq"`
	Expires time.Time    `json:"expires"`
	TTL     string       `json:"ttl"`
	Records []RecordInfo `json:"records"`
}

// RecordInfo is one zone entry as users see it.
type RecordInfo struct {
	Type  string `json:"type"`
	Label string `json:"label"`
	Value string `json:"value"`
}

func zoneInfo(z *names.Zone) *ZoneInfo {
	info := &ZoneInfo{
		Name: z.Name.String(), Key: names.KeyID(z.Owner), Seq: z.Seq, Expires: z.Expiry.UTC(),
		TTL: z.TTL.String(), Records: []RecordInfo{},
	}
	for _, r := range z.Records {
		info.Records = append(info.Records, RecordInfo{Type: r.Type.String(), Label: r.Label, Value: r.Value})
	}
	return info
}

// ChangeRecord applies a set or rm to an owned name's zone, bumps the
// sequence, re-signs and publishes it. More changes of the same name go
// into the same signed version, so that no one sees a half-made zone (a
// ROOT without its HOST).
func (s *Service) ChangeRecord(ctx context.Context, ch RecordChange, more ...RecordChange) (*ZoneInfo, error) {
	n, err := names.Parse(ch.Name)
	if err != nil {
		return nil, err
	}
	changes := append([]RecordChange{ch}, more...)
	types := make([]names.RecordType, len(changes))
	for i, c := range changes {
		if other, err := names.Parse(c.Name); err != nil || other.Registered() != n.Registered() {
			return nil, fmt.Errorf("change %s: all changes must be to the zone of %s", c.Name, n.Registered())
		}
		if types[i], err = names.ParseRecordType(c.Type); err != nil {
			return nil, err
		}
		if changes[i].Label, err = names.ParseSubLabel(c.Label); err != nil {
			return nil, err
		}
	}
	z, err := s.updateZone(ctx, n, func(z *names.Zone) error {
		for i, c := range changes {
			if err := applyChange(z, c, types[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return zoneInfo(z), nil
}

func applyChange(z *names.Zone, ch RecordChange, typ names.RecordType) error {
	n, _ := names.Parse(ch.Name) // checked by ChangeRecord
	label := joinLabels(ch.Label, n.Sub())
	if ch.TTL > 0 {
		z.TTL = ch.TTL.Truncate(time.Second)
	}
	if ch.Remove {
		return removeRecords(z, typ, label, ch.Value)
	}
	z.Records = setRecord(z.Records, names.Record{Type: typ, Label: label, Value: ch.Value})
	return nil
}

func joinLabels(flag, sub string) string {
	switch {
	case flag == "":
		return sub
	case sub == "":
		return flag
	}
	return flag + "." + sub
}

// setRecord replaces the records of a type and label, except HOST, TXT and
// SAT, which are sets: adding one keeps the others.
func setRecord(rs []names.Record, r names.Record) []names.Record {
	multi := r.Type == names.TypeHOST || r.Type == names.TypeTXT || r.Type == names.TypeSAT
	out := rs[:0:0]
	for _, old := range rs {
		same := old.Type == r.Type && old.Label == r.Label
		if same && (!multi || old.Value == r.Value) {
			continue
		}
		out = append(out, old)
	}
	return append(out, r)
}

// removeRecords removes the records of a type and label; only the one with
// value, if value is given (one HOST among several).
func removeRecords(z *names.Zone, typ names.RecordType, label, value string) error {
	before := len(z.Records)
	z.Records = slices.DeleteFunc(z.Records, func(r names.Record) bool {
		return r.Type == typ && r.Label == label && (value == "" || r.Value == value)
	})
	if len(z.Records) == before {
		where := z.Name.String()
		if label != "" {
			where = label + "." + where
		}
		if value != "" {
			return fmt.Errorf("record rm: %s has no %s record %q", where, typ, value)
		}
		return fmt.Errorf("record rm: %s has no %s record", where, typ)
	}
	return nil
}

// updateZone loads the owned zone (or starts one), applies change, bumps the
// sequence past anything seen, signs with the owner's key, stores it locally
// and puts it in the DHT.
func (s *Service) updateZone(ctx context.Context, n names.Name, change func(*names.Zone) error) (*names.Zone, error) {
	// One change at a time: the CLI, a publish, plugins and the republish
	// loop all edit zones, and each must start from the last one signed.
	s.zoneMu.Lock()
	defer s.zoneMu.Unlock()
	n = n.Registered()
	priv, lineage, err := s.ownerOf(ctx, n)
	if err != nil {
		return nil, err
	}
	z := &names.Zone{Name: n}
	if data, ok, err := s.get(ctx, nameKey(zonePrefix, n)); err != nil {
		return nil, err
	} else if ok {
		if old, err := s.owners.zoneV.Decode(data); err == nil {
			z = old
		}
	}
	if err := change(z); err != nil {
		return nil, err
	}
	z.Claim, z.Rotations = lineage.Claim, lineage.Steps
	// The sequence goes on past the last one this node signed and any seen
	// under the current key chain.
	seen, _ := s.highWater(ctx, z)
	if max(z.Seq, seen) == math.MaxUint64 {
		return nil, fmt.Errorf("zone %s: the sequence is exhausted (a zone was signed with the highest one; was the key stolen?): rotate or recover the name's key to start a new sequence", n)
	}
	z.Seq = max(z.Seq, seen) + 1
	z.Expiry = time.Now().Add(s.cfg.Names.ZoneLifetime.D()).Truncate(time.Second)
	if z.TTL <= 0 {
		z.TTL = s.cfg.Names.ZoneTTL.D().Truncate(time.Second)
	}
	data, err := z.Sign(priv)
	if err != nil {
		return nil, err
	}
	if err := s.store.Put(ctx, nameKey(zonePrefix, n), data); err != nil {
		return nil, fmt.Errorf("zone %s: store: %w", n, err)
	}
	s.setHighWater(ctx, z)
	s.cacheZone(z)
	if err := s.put(ctx, z.Key(), data, putHow{remember: true, glue: s.glueFor(z)}); err != nil {
		s.notePublished(n, err)
		return nil, fmt.Errorf("zone %s: publish: %w", n, err)
	}
	s.notePublished(n, nil)
	s.metrics.published.Inc()
	s.notify(Update{Name: n.String(), Key: names.KeyID(z.Owner), Seq: z.Seq})
	return z, nil
}

// ownerOf returns the name's current key, from this node's keystore, and
// the lineage (claim and key chain) this node knows for a name it owns.
func (s *Service) ownerOf(ctx context.Context, n names.Name) (crypto.PrivKey, *names.Lineage, error) {
	if _, ok, err := s.get(ctx, nameKey(ownedPrefix, n)); err != nil {
		return nil, nil, err
	} else if !ok {
		if held, _ := s.owners.Known(ctx, n); held != nil {
			return nil, nil, fault.Errorf(fault.Refused, "%s is held by key %s, which is not this node's: a name has one owner; claim another name",
				n, names.KeyID(held.Owner))
		}
		return nil, nil, fmt.Errorf("%s is not a name this node owns; claim it first with `avnode name claim %s`", n, n)
	}
	lineage, err := s.owners.KnownLineage(ctx, n)
	if err != nil || lineage == nil {
		return nil, nil, fmt.Errorf("%s: its claim is missing from this node's store (%v); claim it again", n, err)
	}
	_, priv, err := s.keys.Find(lineage.Head())
	if errors.Is(err, keystore.ErrNotFound) {
		return nil, nil, fmt.Errorf("%s: the name's key is now %s (%d rotations), which is not in this node's keystore: %w",
			n, names.KeyID(lineage.Head()), len(lineage.Steps), names.ErrRotated)
	}
	if err != nil {
		return nil, nil, err
	}
	return priv, lineage, nil
}

// ListRecords shows an owned zone as this node last signed it, or the
// resolved zone of any other name.
func (s *Service) ListRecords(ctx context.Context, nameText string) (*ZoneInfo, error) {
	n, err := names.Parse(nameText)
	if err != nil {
		return nil, err
	}
	if data, ok, err := s.get(ctx, nameKey(zonePrefix, n)); err == nil && ok {
		if z, err := s.owners.zoneV.Decode(data); err == nil {
			return zoneInfo(z), nil
		}
	}
	z, _, err := s.fetchZone(ctx, n.Registered())
	if err != nil {
		return nil, err
	}
	return zoneInfo(z), nil
}
