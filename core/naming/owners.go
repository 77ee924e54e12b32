package naming

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	record "github.com/libp2p/go-libp2p-record"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/multiformats/go-base32"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	"github.com/avnode/avnode/core/config"
	"github.com/avnode/avnode/core/names"
)

// Owners is this node's memory of who owns each name: the first owner it
// learned of for a name, from whichever path a record entered (a DHT put it
// holds, the claim protocol, a resolve the closest holders agreed on, its
// own claim). It is the authority for ownership on this node. Every path a
// claim or zone enters by asks it, and it refuses any other key for a name
// it knows, whatever the record itself says: nothing inside a record
// (witness counts, sequence numbers, proof-of-work hashes) can outrank what
// an honest holder already holds, because anyone can mint those for free.
//
// It is built before the DHT, whose validators and put path use it.
type Owners struct {
	store  ds.Datastore // /names of the repo: the bindings
	raw    ds.Datastore // the whole repo, to read the DHT's own records
	claimV names.ClaimValidator
	zoneV  names.ZoneValidator
	log    *slog.Logger

	now     func() time.Time // the clock, for votes
	locks   [64]sync.Mutex   // per name (by hash): binding is first-come
	refused *prometheus.CounterVec
	logsMu  sync.Mutex
	logs    map[string]*rate.Limiter         // per reason: junk must not hide a name_taken line
	chains  chainCache                       // verified key chains (lineage.go)
	bound   *lru.Cache[string, *names.Claim] // bindings read or made (pinnedClaim)
	checked checkedValues                    // recent verdicts on claim and zone values
	// chainChanged is called with a name whose known chain moved on.
	chainChanged atomic.Pointer[func(names.Name)]
}

// Refusal reasons, the label of avnode_names_refused_total.
const (
	ReasonNameTaken = "name_taken"
	ReasonDisputed  = "disputed"
	// ReasonRotated: signed by a key the name rotated away from, or on a
	// branch of its key chain that lost.
	ReasonRotated = "rotated"
)

// signaturesRemembered bounds each node's memo of good signatures (about
// 100 bytes each): the records it holds and resolves in a few minutes.
const signaturesRemembered = 1024

// NewOwners opens the owner memory in the repo's datastore. reg may be nil.
func NewOwners(store ds.Batching, cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) (*Owners, error) {
	if log == nil {
		log = slog.Default()
	}
	// One memo for claims and zones: a zone carries its claim, so a zone's
	// holder and the claim's see the same signature.
	claims := names.ClaimValidator{MinDifficulty: cfg.Names.ClaimDifficulty, Memo: names.NewSignatureMemo(signaturesRemembered)}
	o := &Owners{
		store:  namespace.Wrap(store, ds.NewKey("/names")),
		raw:    store,
		claimV: claims,
		zoneV:  names.ZoneValidator{Claims: claims},
		log:    log.With("component", "names"),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "avnode", Subsystem: "names", Name: "refused_total",
			Help: "Claims and zones this node refused, by reason (name_taken: another key holds the name; rotated: signed by a key the name rotated away from).",
		}, []string{"reason"}),
		logs:    map[string]*rate.Limiter{},
		now:     time.Now,
		chains:  newChainCache(),
		bound:   boundCache(),
		checked: newCheckedValues(),
	}
	for _, r := range []string{ReasonNameTaken, ReasonDisputed, ReasonRotated, "malformed", "bad_signature", "expired", "other"} {
		o.refused.WithLabelValues(r)
	}
	if reg != nil {
		if err := reg.Register(o.refused); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// Validators are the DHT validators of the name system: the record rules of
// core/names, and this node's owners on top, so the DHT itself (a peer's
// PUT_VALUE, a value found by a lookup, this node's own put) never takes a
// claim or zone by another key for a name this node knows.
func (o *Owners) Validators() map[string]record.Validator {
	return map[string]record.Validator{
		names.ClaimNamespace: ownedValidator{o: o, decode: o.claimLineage, rank: o.claimV.Select},
		names.ZoneNamespace:  ownedValidator{o: o, decode: o.zoneLineage, rank: o.rankZones},
		// An estate ID is its key's: no other key can take it, so no
		// owner needs remembering.
		names.EstateNamespace: names.EstateValidator{},
	}
}

// Known returns the claim this node binds to the registered name n, or nil
// if it knows no owner. A record the DHT holds here from before the binding
// existed (an older repo) binds its owner on first look.
func (o *Owners) Known(ctx context.Context, n names.Name) (*names.Claim, error) {
	n = n.Registered()
	if c, err := o.pinnedClaim(ctx, n); c != nil || err != nil {
		return c, err
	}
	c := o.heldInDHT(ctx, n)
	if c == nil {
		return nil, nil
	}
	held, err := o.Bind(ctx, c)
	if errors.Is(err, names.ErrNameTaken) {
		return held, nil // bound meanwhile by another path: that one stands
	}
	return held, err
}

// heldInDHT reads the claim of n from the records the DHT keeps on this node.
func (o *Owners) heldInDHT(ctx context.Context, n names.Name) *names.Claim {
	if v := o.dhtValue(ctx, names.ClaimKey(n)); v != nil {
		if c, err := o.claimV.DecodeValid(names.ClaimKey(n), v); err == nil {
			return c
		}
	}
	if v := o.dhtValue(ctx, names.ZoneKey(n)); v != nil {
		// An expired zone still carries its owner's claim; the claim must
		// meet the network's rules like a stored one.
		if z, err := o.zoneV.Decode(v); err == nil && z.Name == n {
			if c, err := o.claimV.DecodeValid(names.ClaimKey(n), z.SignedClaim()); err == nil {
				return c
			}
		}
	}
	return nil
}

// dhtValue reads a value record as kad-dht stores it: /dht/<ns>/<base32 key>.
func (o *Owners) dhtValue(ctx context.Context, key string) []byte {
	ns, _, err := record.SplitKey(key)
	if err != nil {
		return nil
	}
	k := ds.NewKey("/dht").ChildString(ns).ChildString(base32.RawStdEncoding.EncodeToString([]byte(key)))
	b, err := o.raw.Get(ctx, k)
	if err != nil {
		return nil
	}
	var rec recpb.Record
	if proto.Unmarshal(b, &rec) != nil || string(rec.GetKey()) != key {
		return nil
	}
	return rec.GetValue()
}

// Bind makes c the owner of its name on this node unless another key holds
// it: first come, first held, for good. It returns the claim held after the
// call, and ErrNameTaken (naming both keys) when that is not c's owner.
func (o *Owners) Bind(ctx context.Context, c *names.Claim) (*names.Claim, error) {
	mu := o.lock(c.Name)
	mu.Lock()
	defer mu.Unlock()
	held, err := o.pinnedClaim(ctx, c.Name)
	switch {
	case err != nil:
		return nil, err
	case held != nil:
		return held, names.HolderCheck(held, c.Name, c.Owner)
	}
	b, err := c.Marshal()
	if err != nil {
		return nil, err
	}
	if err := o.store.Put(ctx, nameKey(pinnedPrefix, c.Name), b); err != nil {
		return nil, fmt.Errorf("names store: remember the owner of %s: %w", c.Name, err)
	}
	o.bound.Add(c.Name.String(), c)
	return c, nil
}

// pinnedClaim is the claim bound to n on this node, or nil when there is
// none (or none that decodes). A binding is written once and never changed
// (Bind), so each is decoded once and kept: a zone reaching a holder asks
// for its name's binding several times, and reading and decoding it each
// time was a quarter of the bytes the holders allocated while taking zones.
func (o *Owners) pinnedClaim(ctx context.Context, n names.Name) (*names.Claim, error) {
	if c, ok := o.bound.Get(n.String()); ok {
		return c, nil
	}
	data, err := o.store.Get(ctx, nameKey(pinnedPrefix, n))
	switch {
	case errors.Is(err, ds.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("names store: %w", err)
	}
	c, err := o.claimV.Decode(data)
	if err != nil {
		return nil, nil // Bind writes a good one over it
	}
	o.bound.Add(n.String(), c)
	return c, nil
}

// Vote records that this node, as one of a name's holders, backs claim c in
// the claim protocol: the first claim asked wins the vote, and a claim by
// another key is refused while the vote or a binding stands. A vote is not a
// binding: a claimant that loses the race never stores its claim in the DHT,
// and the winner's put then binds every holder, those that voted for the
// loser too, so all agree on one owner. A vote whose claim is not stored in
// the DHT within voteLifetime lapses, and that claim gets no second vote:
// asking holders to hold a claim, and never storing it, does not squat a
// name.
func (o *Owners) Vote(ctx context.Context, c *names.Claim) error {
	mu := o.lock(c.Name)
	mu.Lock()
	defer mu.Unlock()
	held, err := o.pinnedClaim(ctx, c.Name)
	switch {
	case err != nil:
		return err
	case held != nil:
		return names.HolderCheck(held, c.Name, c.Owner)
	}
	if voted, at, ok := o.vote(ctx, c.Name); ok {
		lapsed := o.now().Sub(at) > voteLifetime
		switch {
		case lapsed && voted.Work() == c.Work():
			return fmt.Errorf("%s: this claim was held by vote at %s and never stored; mint a new one", c.Name, at.UTC().Format(time.RFC3339))
		case !lapsed:
			return names.HolderCheck(voted, c.Name, c.Owner)
		}
	}
	b, err := c.Marshal()
	if err != nil {
		return err
	}
	stamped := binary.BigEndian.AppendUint64(nil, uint64(o.now().Unix()))
	if err := o.store.Put(ctx, nameKey(votedPrefix, c.Name), append(stamped, b...)); err != nil {
		return fmt.Errorf("names store: remember the vote for %s: %w", c.Name, err)
	}
	return nil
}

// voteLifetime is how long a vote stands without its claim being stored.
const voteLifetime = 10 * time.Minute

// vote reads a vote and when it was cast.
func (o *Owners) vote(ctx context.Context, n names.Name) (*names.Claim, time.Time, bool) {
	data, err := o.store.Get(ctx, nameKey(votedPrefix, n.Registered()))
	if err != nil || len(data) < 8 {
		return nil, time.Time{}, false
	}
	c, err := o.claimV.Decode(data[8:])
	if err != nil {
		return nil, time.Time{}, false
	}
	return c, time.Unix(int64(binary.BigEndian.Uint64(data[:8])), 0), true
}

// Voted is the claim this node voted for in the claim protocol while the
// vote stands, or nil.
func (o *Owners) Voted(ctx context.Context, n names.Name) *names.Claim {
	c, at, ok := o.vote(ctx, n)
	if !ok || o.now().Sub(at) > voteLifetime {
		return nil
	}
	return c
}

func (o *Owners) lock(n names.Name) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(n.String()))
	return &o.locks[h.Sum32()%uint32(len(o.locks))]
}

// Inspect validates a claim or zone value under key by the record rules
// alone and returns the lineage it rests on (a claim value's has Steps
// nil); other namespaces give nil.
func (o *Owners) Inspect(key string, value []byte) (*names.Lineage, error) {
	switch ns, _, _ := record.SplitKey(key); ns {
	case names.ClaimNamespace:
		return o.claimLineage(key, value)
	case names.ZoneNamespace:
		return o.zoneLineage(key, value)
	}
	return nil, nil
}

// decoderFor is claimOwner or zoneOwner by key's namespace, nil for others.
func (o *Owners) decoderFor(key string) func(string, []byte) (*names.Claim, error) {
	switch ns, _, _ := record.SplitKey(key); ns {
	case names.ClaimNamespace:
		return o.claimOwner
	case names.ZoneNamespace:
		return o.zoneOwner
	}
	return nil
}

// Refused counts a refused record by reason and logs it, at most about once
// a second so a flood of junk costs no disk.
func (o *Owners) Refused(err error, attrs ...any) {
	reason := refusalReason(err)
	o.refused.WithLabelValues(reason).Inc()
	o.logsMu.Lock()
	limit, ok := o.logs[reason]
	if !ok {
		limit = rate.NewLimiter(rate.Limit(1), 5)
		o.logs[reason] = limit
	}
	o.logsMu.Unlock()
	if limit.Allow() {
		o.log.Info("record refused", append(attrs, "reason", reason, "err", err)...)
	}
}

func refusalReason(err error) string {
	switch {
	case errors.Is(err, names.ErrNameTaken), errors.Is(err, names.ErrWrongOwner):
		return ReasonNameTaken
	case errors.Is(err, names.ErrDisputed):
		return ReasonDisputed
	case errors.Is(err, names.ErrRotated):
		return ReasonRotated
	case errors.Is(err, names.ErrMalformed), errors.Is(err, names.ErrTooLarge), errors.Is(err, names.ErrUnknownKeyType),
		errors.Is(err, names.ErrNameMismatch), errors.Is(err, names.ErrBadRecord), errors.Is(err, names.ErrBadRotation):
		return "malformed"
	case errors.Is(err, names.ErrBadSignature), errors.Is(err, names.ErrInsufficientWork):
		return "bad_signature"
	case errors.Is(err, names.ErrExpired), errors.Is(err, names.ErrFromFuture), errors.Is(err, names.ErrRolledBack):
		return "expired"
	}
	return "other"
}

func (o *Owners) claimOwner(key string, value []byte) (*names.Claim, error) {
	return o.claimV.DecodeValid(key, value)
}

func (o *Owners) zoneOwner(key string, value []byte) (*names.Claim, error) {
	r, err := o.zoneRank(key, value)
	if err != nil {
		return nil, err
	}
	return r.Claim, nil
}

// claimLineage is a claim value as a lineage with no steps (Steps nil: a
// claim never says anything about later rotations).
func (o *Owners) claimLineage(key string, value []byte) (*names.Lineage, error) {
	v := o.checked.decode(key, value, func() checkedValue {
		c, err := o.claimV.DecodeValid(key, value)
		if err != nil {
			return checkedValue{err: err}
		}
		return checkedValue{lineage: &names.Lineage{Claim: c}}
	})
	return v.lineage, v.err
}

func (o *Owners) zoneLineage(key string, value []byte) (*names.Lineage, error) {
	v := o.checkZone(key, value)
	return v.lineage, v.err
}

// zoneRank is a zone value validated by the record rules and what it is
// ranked by, decoded once however many times one PUT or one resolve asks.
// It is shared: read it, never change it.
func (o *Owners) zoneRank(key string, value []byte) (*names.ZoneRank, error) {
	v := o.checkZone(key, value)
	return v.rank, v.err
}

func (o *Owners) checkZone(key string, value []byte) checkedValue {
	return o.checked.decode(key, value, func() checkedValue {
		z, err := o.zoneV.DecodeValid(key, value)
		if err != nil {
			return checkedValue{err: err}
		}
		r := z.Rank()
		return checkedValue{lineage: r.Lineage, rank: r}
	})
}

// rankZones is the zone validator's Select on the ranks checkZone keeps:
// ranking the values a PUT or a poll gathered decodes none again.
func (o *Owners) rankZones(key string, values [][]byte) (int, error) {
	return names.SelectZone(key, values, o.zoneRank)
}

// checkedValues remembers the verdict on recent values for a short while:
// one PUT runs the record rules several times (the put hook, kad-dht's
// Validate, Select against the value held), and a peer replaying one
// large hybrid-signed value (about 2.5 ms to check at 64 KiB) then costs a
// hash per copy, not the signatures again.
type checkedValues struct {
	recent *lru.Cache[[32]byte, checkedValue]
}

type checkedValue struct {
	lineage *names.Lineage
	// rank is a zone value's, without its records: an entry stays small
	// (a lineage, a claim) whatever the value holds.
	rank *names.ZoneRank
	err  error
	at   time.Time
}

const (
	maxCheckedValues = 2048
	// checkedFor is short so that a value's expiry is seen within it.
	checkedFor = 30 * time.Second
)

func newCheckedValues() checkedValues {
	c, _ := lru.New[[32]byte, checkedValue](maxCheckedValues) // errors only on a size below 1
	return checkedValues{recent: c}
}

func (c checkedValues) decode(key string, value []byte, check func() checkedValue) checkedValue {
	h := sha256.New()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write(value)
	var id [32]byte
	h.Sum(id[:0])
	if e, ok := c.recent.Get(id); ok && time.Since(e.at) < checkedFor {
		return e
	}
	v := check()
	v.at = time.Now()
	c.recent.Add(id, v)
	return v
}

// ownedValidator is a names validator with this node's owners on top.
type ownedValidator struct {
	o *Owners
	// decode validates by the record rules and returns the lineage the
	// value rests on: a claim alone for a claim value, with the key chain
	// for a zone.
	decode func(key string, value []byte) (*names.Lineage, error)
	rank   func(key string, values [][]byte) (int, error) // by the record rules
}

var _ record.Validator = ownedValidator{}

// Validate refuses a value by another owner than the one this node knows,
// or on a key chain behind the one it knows. A zone whose valid chain goes
// beyond the known one teaches this node the rotation.
func (v ownedValidator) Validate(key string, value []byte) error {
	l, err := v.decode(key, value)
	if err != nil {
		return err
	}
	return v.o.CheckLineage(context.Background(), l)
}

// Select keeps only the values by the owner and key chain this node knows
// (all of them when it knows none), then ranks those by the record rules.
func (v ownedValidator) Select(key string, values [][]byte) (int, error) {
	kept := make([][]byte, 0, len(values))
	index := make([]int, 0, len(values))
	var known *names.Lineage
	looked := false
	var firstErr error
	seen := make(map[string]bool, len(values))
	for i, val := range values {
		if seen[string(val)] {
			continue // a copy of a value kept or refused already
		}
		seen[string(val)] = true
		l, err := v.decode(key, val)
		if err == nil && !looked {
			known, err = v.o.KnownLineage(context.Background(), l.Claim.Name)
			looked = err == nil
		}
		if err == nil {
			err = names.CheckSuccession(known, l)
		}
		if err != nil {
			firstErr = cmp(firstErr, err)
			continue
		}
		kept, index = append(kept, val), append(index, i)
	}
	if len(kept) == 0 {
		return 0, fmt.Errorf("key %s: none of %d values is valid here; first reason: %w", key, len(values), firstErr)
	}
	best, err := v.rank(key, kept)
	if err != nil {
		return 0, err
	}
	return index[best], nil
}

func cmp(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// boundsKept bounds the bindings kept decoded in memory: the names a node
// holds or resolved lately; the rest are read again when asked for.
const boundsKept = 1024

func boundCache() *lru.Cache[string, *names.Claim] {
	c, err := lru.New[string, *names.Claim](boundsKept)
	if err != nil {
		panic(err) // only for a size below 1, a constant here
	}
	return c
}
