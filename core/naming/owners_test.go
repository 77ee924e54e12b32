package naming

// Unit tests of Owners (owners.go) and poll.winner (agree.go): no network,
// an in-memory datastore, claims minted at difficulty 8.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	record "github.com/libp2p/go-libp2p-record"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-base32"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/avnode/avnode/core/names"
)

// ownersOn opens an Owners on store, as the node does, with no registry.
func ownersOn(t testing.TB, store ds.Batching) *Owners {
	t.Helper()
	o, err := NewOwners(store, testConfig(t, nil), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func newOwnersStore() ds.Batching { return dssync.MutexWrap(ds.NewMapDatastore()) }

func ownersName(t testing.TB, s string) names.Name {
	t.Helper()
	n, err := names.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// ownersKey is one claimant: a key and its claim of a name.
type ownersKey struct {
	priv  crypto.PrivKey
	claim *names.Claim
}

func (k ownersKey) id() string { return names.KeyID(k.priv.GetPublic()) }

func (k ownersKey) claimBytes(t testing.TB) []byte {
	t.Helper()
	b, err := k.claim.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// zone signs a zone of the claimed name at seq.
func (k ownersKey) zone(t testing.TB, seq uint64) []byte {
	t.Helper()
	z := &names.Zone{Name: k.claim.Name, Seq: seq, Expiry: time.Now().Add(time.Hour), TTL: time.Minute, Claim: k.claim,
		Records: []names.Record{{Type: names.TypeTXT, Value: fmt.Sprintf("seq %d", seq)}}}
	b, err := z.Sign(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// remint is a second claim of the same name by the same key (other bytes).
func (k ownersKey) remint(t testing.TB) ownersKey {
	t.Helper()
	c := mintOwnersClaim(t, k.claim.Name, k.priv, k.claim.Created.Add(time.Second))
	return ownersKey{priv: k.priv, claim: c}
}

func mintOwnersClaim(t testing.TB, n names.Name, priv crypto.PrivKey, at time.Time) *names.Claim {
	t.Helper()
	c, err := names.MintClaim(context.Background(), n, priv, 8, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newOwnersKey(t testing.TB, n names.Name) ownersKey {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	return ownersKey{priv: priv, claim: mintOwnersClaim(t, n, priv, time.Now())}
}

// ownerAndRival mints an owner and a rival of name n whose claim wins the
// record rules' proof-of-work tie-break, so only the owner memory can keep
// the rival out. Each pair has an even chance; both are minted afresh, as a
// very low owner hash would outrun any number of rivals.
func ownerAndRival(t testing.TB, n names.Name) (owner, rival ownersKey) {
	t.Helper()
	for range 64 {
		owner, rival = newOwnersKey(t, n), newOwnersKey(t, n)
		if names.CompareClaims(rival.claim, owner.claim) > 0 {
			return owner, rival
		}
	}
	t.Fatal("no rival claim beat its owner's in 64 pairs")
	return
}

// putDHTRecord stores value under key the way this node's kad-dht does: its
// value store in the repo's /dht namespace (core/node).
func putDHTRecord(t testing.TB, store ds.Batching, key string, value []byte) {
	t.Helper()
	v := record.NamespacedValidator{
		names.ClaimNamespace: names.ClaimValidator{MinDifficulty: 8},
		names.ZoneNamespace:  names.ZoneValidator{Claims: names.ClaimValidator{MinDifficulty: 8}},
	}
	vs := records.NewValueStore(namespace.Wrap(store, ds.NewKey("/dht")), v, 0)
	if err := vs.Put(context.Background(), key, &recpb.Record{Key: []byte(key), Value: value}); err != nil {
		t.Fatal(err)
	}
}

func sameClaim(t testing.TB, what string, got *names.Claim, want []byte) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: no claim, want one", what)
	}
	b, err := got.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(want) {
		t.Fatalf("%s: claim by %s, not the first claim bytes", what, names.KeyID(got.Owner))
	}
}

func TestOwnersBind(t *testing.T) {
	ctx := context.Background()
	n := ownersName(t, "einstein.avtr")
	a, b := newOwnersKey(t, n), newOwnersKey(t, n)
	a2 := a.remint(t)
	if string(a2.claimBytes(t)) == string(a.claimBytes(t)) {
		t.Fatal("the re-mint has the same bytes; the test needs another claim")
	}
	first := a.claimBytes(t)

	store := newOwnersStore()
	steps := []struct {
		name    string
		claim   *names.Claim
		wantErr error
	}{
		{"first claim binds", a.claim, nil},
		{"another key is refused", b.claim, names.ErrNameTaken},
		{"a re-mint by the owner passes", a2.claim, nil},
		{"another key is still refused", b.claim, names.ErrNameTaken},
	}
	o := ownersOn(t, store)
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			held, err := o.Bind(ctx, s.claim)
			if !errors.Is(err, s.wantErr) || (s.wantErr == nil) != (err == nil) {
				t.Fatalf("Bind: err %v, want %v", err, s.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), a.id()) {
				t.Errorf("refusal %q does not name the holder %s", err, a.id())
			}
			sameClaim(t, "Bind returns", held, first)
			known, err := o.Known(ctx, n)
			if err != nil {
				t.Fatal(err)
			}
			sameClaim(t, "Known", known, first)
		})
	}

	t.Run("survives reopening", func(t *testing.T) {
		o := ownersOn(t, store)
		known, err := o.Known(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		sameClaim(t, "Known after reopening", known, first)
		if _, err := o.Bind(ctx, b.claim); !errors.Is(err, names.ErrNameTaken) {
			t.Fatalf("Bind of another key after reopening: %v, want ErrNameTaken", err)
		}
		if err := o.CheckLineage(ctx, &names.Lineage{Claim: b.claim}); !errors.Is(err, names.ErrNameTaken) {
			t.Fatalf("Check of another key after reopening: %v, want ErrNameTaken", err)
		}
		if err := o.CheckLineage(ctx, &names.Lineage{Claim: a.claim}); err != nil {
			t.Fatalf("Check of the owner after reopening: %v", err)
		}
	})

	t.Run("names are bound apart", func(t *testing.T) {
		other := ownersName(t, "bohr.avtr")
		c := newOwnersKey(t, other)
		if _, err := o.Bind(ctx, mintOwnersClaim(t, other, b.priv, time.Now())); err != nil {
			t.Fatalf("Bind of b on another name: %v", err)
		}
		if _, err := o.Bind(ctx, c.claim); !errors.Is(err, names.ErrNameTaken) {
			t.Fatalf("Bind of a third key on bohr.avtr: %v, want ErrNameTaken", err)
		}
		if known, _ := o.Known(ctx, n); known == nil || !known.Owner.Equals(a.priv.GetPublic()) {
			t.Fatal("binding another name changed einstein.avtr's owner")
		}
	})
}

func TestOwnersVote(t *testing.T) {
	ctx := context.Background()
	n := ownersName(t, "curie.avtr")
	a, b := newOwnersKey(t, n), newOwnersKey(t, n)
	o := ownersOn(t, newOwnersStore())

	type step struct {
		name    string
		do      func() error
		wantErr error
		known   *ownersKey // the owner Known returns after the step, nil for none
	}
	steps := []step{
		{"first vote stands", func() error { return o.Vote(ctx, a.claim) }, nil, nil},
		{"a vote by another key is refused", func() error { return o.Vote(ctx, b.claim) }, names.ErrNameTaken, nil},
		{"a vote again by the voted key passes", func() error { return o.Vote(ctx, a.remint(t).claim) }, nil, nil},
		{"the race winner binds the loser's voters", func() error { _, err := o.Bind(ctx, b.claim); return err }, nil, &b},
		{"then a vote for the loser is refused", func() error { return o.Vote(ctx, a.claim) }, names.ErrNameTaken, &b},
		{"and a vote for the bound owner passes", func() error { return o.Vote(ctx, b.claim) }, nil, &b},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			err := s.do()
			if !errors.Is(err, s.wantErr) || (s.wantErr == nil) != (err == nil) {
				t.Fatalf("err %v, want %v", err, s.wantErr)
			}
			known, err := o.Known(ctx, n)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case s.known == nil && known != nil:
				t.Fatalf("Known is %s: a vote is not a binding", names.KeyID(known.Owner))
			case s.known != nil && (known == nil || !known.Owner.Equals(s.known.priv.GetPublic())):
				t.Fatalf("Known %v, want the claim of %s", known, s.known.id())
			}
			if v := o.Voted(ctx, n); v == nil || !v.Owner.Equals(a.priv.GetPublic()) {
				t.Fatalf("Voted %v, want the first vote (%s)", v, a.id())
			}
		})
	}
	if v := o.Voted(ctx, ownersName(t, "nobody.avtr")); v != nil {
		t.Fatalf("Voted for a name never voted on: %s", names.KeyID(v.Owner))
	}
}

func TestOwnersKnownFromDHT(t *testing.T) {
	ctx := context.Background()
	n := ownersName(t, "planck.avtr")
	a, b := newOwnersKey(t, n), newOwnersKey(t, n)
	cases := []struct {
		name  string
		store func(t *testing.T, s ds.Batching)
		want  *ownersKey // nil: no owner known
	}{
		{"claim record", func(t *testing.T, s ds.Batching) {
			putDHTRecord(t, s, names.ClaimKey(n), a.claimBytes(t))
		}, &a},
		{"zone record without a claim record", func(t *testing.T, s ds.Batching) {
			putDHTRecord(t, s, names.ZoneKey(n), a.zone(t, 3))
		}, &a},
		{"claim record before a zone record", func(t *testing.T, s ds.Batching) {
			putDHTRecord(t, s, names.ClaimKey(n), a.claimBytes(t))
			putDHTRecord(t, s, names.ZoneKey(n), b.zone(t, 3))
		}, &a},
		{"nothing stored", func(*testing.T, ds.Batching) {}, nil},
		{"a record of another name", func(t *testing.T, s ds.Batching) {
			other := newOwnersKey(t, ownersName(t, "dirac.avtr"))
			putDHTRecord(t, s, names.ClaimKey(other.claim.Name), other.claimBytes(t))
			putDHTRecord(t, s, names.ZoneKey(other.claim.Name), other.zone(t, 1))
		}, nil},
		{"a record filed under the wrong key", func(t *testing.T, s ds.Batching) {
			rec, err := proto.Marshal(&recpb.Record{Key: []byte(names.ClaimKey(ownersName(t, "dirac.avtr"))), Value: a.claimBytes(t)})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Put(context.Background(), dhtKey(names.ClaimKey(n)), rec); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"junk stored", func(t *testing.T, s ds.Batching) {
			for _, key := range []string{names.ClaimKey(n), names.ZoneKey(n)} {
				if err := s.Put(context.Background(), dhtKey(key), []byte("junk")); err != nil {
					t.Fatal(err)
				}
			}
		}, nil},
		{"an invalid claim in a well-formed record", func(t *testing.T, s ds.Batching) {
			rec, err := proto.Marshal(&recpb.Record{Key: []byte(names.ClaimKey(n)), Value: []byte("junk")})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Put(context.Background(), dhtKey(names.ClaimKey(n)), rec); err != nil {
				t.Fatal(err)
			}
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			store := newOwnersStore()
			c.store(t, store)
			o := ownersOn(t, store)
			known, err := o.Known(ctx, n)
			if err != nil {
				t.Fatal(err)
			}
			if c.want == nil {
				if known != nil {
					t.Fatalf("Known %s, want none", names.KeyID(known.Owner))
				}
				if _, err := o.Bind(ctx, b.claim); err != nil {
					t.Fatalf("Bind with no owner known: %v", err)
				}
				return
			}
			if known == nil || !known.Owner.Equals(c.want.priv.GetPublic()) {
				t.Fatalf("Known %v, want %s", known, c.want.id())
			}
			rival := &b
			if c.want == &b {
				rival = &a
			}
			if _, err := o.Bind(ctx, rival.claim); !errors.Is(err, names.ErrNameTaken) {
				t.Fatalf("Bind of another key after Known derived the owner: %v, want ErrNameTaken", err)
			}
			// Bound, not merely read: it holds with the DHT records gone.
			for _, key := range []string{names.ClaimKey(n), names.ZoneKey(n)} {
				if err := deleteDHTRecords(ctx, store, key); err != nil {
					t.Fatal(err)
				}
			}
			if known, err := ownersOn(t, store).Known(ctx, n); err != nil || known == nil || !known.Owner.Equals(c.want.priv.GetPublic()) {
				t.Fatalf("after the DHT records are gone: Known %v, %v; want %s bound", known, err, c.want.id())
			}
		})
	}
}

// dhtKey is where kad-dht's value store in the repo's /dht namespace
// (core/node) files the record of key: /dht/<ns>/<base32 of the key>.
func dhtKey(key string) ds.Key {
	ns, _, _ := record.SplitKey(key)
	return ds.NewKey("/dht/" + ns + "/" + base32.RawStdEncoding.EncodeToString([]byte(key)))
}

// deleteDHTRecords removes the stored record of key, as the DHT's GC would.
func deleteDHTRecords(ctx context.Context, store ds.Batching, key string) error {
	if _, err := store.Get(ctx, dhtKey(key)); errors.Is(err, ds.ErrNotFound) {
		return nil
	}
	return store.Delete(ctx, dhtKey(key))
}

func TestOwnersValidatorsValidate(t *testing.T) {
	ctx := context.Background()
	n, free := ownersName(t, "fermi.avtr"), ownersName(t, "pauli.avtr")
	owner, rival := ownerAndRival(t, n)
	stranger := newOwnersKey(t, free)
	o := ownersOn(t, newOwnersStore())
	if _, err := o.Bind(ctx, owner.claim); err != nil {
		t.Fatal(err)
	}
	v := o.Validators()
	claimV, zoneV := v[names.ClaimNamespace], v[names.ZoneNamespace]
	if claimV == nil || zoneV == nil {
		t.Fatalf("Validators: %v, want %s and %s", v, names.ClaimNamespace, names.ZoneNamespace)
	}
	cases := []struct {
		name    string
		v       record.Validator
		key     string
		value   []byte
		wantErr error // nil: valid
	}{
		{"claim by the owner", claimV, names.ClaimKey(n), owner.claimBytes(t), nil},
		{"zone by the owner", zoneV, names.ZoneKey(n), owner.zone(t, 1), nil},
		{"re-minted claim by the owner", claimV, names.ClaimKey(n), owner.remint(t).claimBytes(t), nil},
		{"claim by another key", claimV, names.ClaimKey(n), rival.claimBytes(t), names.ErrNameTaken},
		{"zone by another key", zoneV, names.ZoneKey(n), rival.zone(t, 1<<40), names.ErrNameTaken},
		{"claim of an unknown name", claimV, names.ClaimKey(free), stranger.claimBytes(t), nil},
		{"zone of an unknown name", zoneV, names.ZoneKey(free), stranger.zone(t, 1), nil},
		{"junk claim", claimV, names.ClaimKey(n), []byte("junk"), names.ErrMalformed},
		{"junk zone", zoneV, names.ZoneKey(n), []byte("junk"), names.ErrMalformed},
		{"empty claim", claimV, names.ClaimKey(free), nil, names.ErrMalformed},
		{"oversized zone", zoneV, names.ZoneKey(free), make([]byte, names.MaxRecordSize+1), names.ErrTooLarge},
		{"a zone under the claim key", claimV, names.ClaimKey(n), owner.zone(t, 1), names.ErrMalformed},
		{"a claim under the zone key", zoneV, names.ZoneKey(n), owner.claimBytes(t), names.ErrMalformed},
		{"a claim under another name's key", claimV, names.ClaimKey(free), owner.claimBytes(t), names.ErrNameMismatch},
		{"a non-canonical key", claimV, "/" + names.ClaimNamespace + "/Fermi.avtr", owner.claimBytes(t), names.ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.v.Validate(c.key, c.value)
			if c.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate: %v, want valid", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate passed, want %v", c.wantErr)
			}
			if c.wantErr == names.ErrMalformed {
				// The decode error of junk may be any of the malformed kinds.
				if refusalReason(err) != "malformed" {
					t.Fatalf("Validate: %v, want a malformed-record error", err)
				}
				return
			}
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("Validate: %v, want %v", err, c.wantErr)
			}
		})
	}
	// Validating is not binding: the unknown name stays unknown.
	if known, err := o.Known(ctx, free); err != nil || known != nil {
		t.Fatalf("Validate bound %s: Known %v, %v", free, known, err)
	}
}

func TestOwnersValidatorsSelect(t *testing.T) {
	ctx := context.Background()
	n := ownersName(t, "bose.avtr")
	owner, rival := ownerAndRival(t, n)
	ownerZone1, ownerZone2 := owner.zone(t, 1), owner.zone(t, 2)
	rivalZone := rival.zone(t, 1<<40)

	// The record rules alone pick the rival: only the owner memory stops it.
	plain := names.ZoneValidator{Claims: names.ClaimValidator{MinDifficulty: 8}}
	if i, err := plain.Select(names.ZoneKey(n), [][]byte{rivalZone, ownerZone1}); err != nil || i != 0 {
		t.Fatalf("the plain zone validator picks %d, %v; the rival should win by the record rules", i, err)
	}

	type bound int
	const (
		bindNone bound = iota
		bindOwner
		dhtOwner // the owner known from a DHT record only
	)
	cases := []struct {
		name    string
		bind    bound
		key     string
		values  [][]byte
		want    int
		wantErr error // set: Select fails with it
	}{
		{"rival zone first", bindOwner, names.ZoneKey(n), [][]byte{rivalZone, ownerZone1}, 1, nil},
		{"owner zone first", bindOwner, names.ZoneKey(n), [][]byte{ownerZone1, rivalZone}, 0, nil},
		{"owner known from the DHT", dhtOwner, names.ZoneKey(n), [][]byte{rivalZone, ownerZone1}, 1, nil},
		{"owner's zones, newer last", bindOwner, names.ZoneKey(n), [][]byte{ownerZone1, ownerZone2}, 1, nil},
		{"owner's zones, newer first", bindOwner, names.ZoneKey(n), [][]byte{ownerZone2, ownerZone1}, 0, nil},
		{"owner's zones among a rival's", bindOwner, names.ZoneKey(n), [][]byte{rivalZone, ownerZone1, ownerZone2, rivalZone}, 2, nil},
		{"junk before the owner", bindOwner, names.ZoneKey(n), [][]byte{[]byte("junk"), ownerZone1}, 1, nil},
		{"only rival zones", bindOwner, names.ZoneKey(n), [][]byte{rivalZone, rival.zone(t, 7)}, 0, names.ErrNameTaken},
		{"rival claim first", bindOwner, names.ClaimKey(n), [][]byte{rival.claimBytes(t), owner.claimBytes(t)}, 1, nil},
		{"owner claim first", bindOwner, names.ClaimKey(n), [][]byte{owner.claimBytes(t), rival.claimBytes(t)}, 0, nil},
		{"only a rival claim", bindOwner, names.ClaimKey(n), [][]byte{rival.claimBytes(t)}, 0, names.ErrNameTaken},
		{"nothing valid", bindNone, names.ZoneKey(n), [][]byte{[]byte("junk")}, 0, names.ErrMalformed},
		{"no owner known: the record rules rank", bindNone, names.ZoneKey(n), [][]byte{ownerZone1, rivalZone}, 1, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			store := newOwnersStore()
			if c.bind == dhtOwner {
				putDHTRecord(t, store, names.ClaimKey(n), owner.claimBytes(t))
			}
			o := ownersOn(t, store)
			if c.bind == bindOwner {
				if _, err := o.Bind(ctx, owner.claim); err != nil {
					t.Fatal(err)
				}
			}
			ns, _, _ := record.SplitKey(c.key)
			got, err := o.Validators()[ns].Select(c.key, c.values)
			if c.wantErr != nil {
				if err == nil {
					t.Fatalf("Select picked %d, want an error", got)
				}
				if c.wantErr == names.ErrMalformed {
					if refusalReason(err) != "malformed" {
						t.Fatalf("Select: %v, want a malformed-record error", err)
					}
				} else if !errors.Is(err, c.wantErr) {
					t.Fatalf("Select: %v, want %v", err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("Select: %d, %v; want %d", got, err, c.want)
			}
		})
	}
}

// countingHandler counts log records.
type countingHandler struct{ n *atomic.Int64 }

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(context.Context, slog.Record) error {
	h.n.Add(1)
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

// refusedCounts reads avnode_names_refused_total from reg, by reason. (It
// reads the registry's Gather rather than client_golang's testutil, which
// needs github.com/kylelemons/godebug in go.mod.)
func refusedCounts(t testing.TB, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "avnode_names_refused_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

func TestOwnersRefused(t *testing.T) {
	reg := prometheus.NewRegistry()
	var logged atomic.Int64
	o, err := NewOwners(newOwnersStore(), testConfig(t, nil), slog.New(countingHandler{&logged}), reg)
	if err != nil {
		t.Fatal(err)
	}
	reasons := []string{ReasonNameTaken, ReasonDisputed, ReasonRotated, "malformed", "bad_signature", "expired", "other"}
	// Every reason is exported from the start, at 0, so a rate is never absent.
	if got := refusedCounts(t, reg); len(got) != len(reasons) {
		t.Fatalf("registry holds %v before any refusal, want one series per reason %v", got, reasons)
	}
	for _, r := range reasons {
		if v, ok := refusedCounts(t, reg)[r]; !ok || v != 0 {
			t.Fatalf("reason %s before any refusal: %v (exported %v), want 0", r, v, ok)
		}
	}

	wrap := func(err error) error { return fmt.Errorf("key /avtr-zone/x.avtr: embedded: %w", err) }
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"name taken", wrap(names.ErrNameTaken), ReasonNameTaken},
		{"wrong owner", names.ErrWrongOwner, ReasonNameTaken},
		{"disputed", wrap(names.ErrDisputed), ReasonDisputed},
		{"malformed", wrap(names.ErrMalformed), "malformed"},
		{"too large", names.ErrTooLarge, "malformed"},
		{"name mismatch", names.ErrNameMismatch, "malformed"},
		{"bad signature", wrap(names.ErrBadSignature), "bad_signature"},
		{"insufficient work", names.ErrInsufficientWork, "bad_signature"},
		{"expired", wrap(names.ErrExpired), "expired"},
		{"from the future", names.ErrFromFuture, "expired"},
		{"rolled back", names.ErrRolledBack, "expired"},
		{"rotated away", wrap(names.ErrRotated), ReasonRotated},
		{"bad rotation", names.ErrBadRotation, "malformed"},
		{"unrelated", errors.New("connection reset"), "other"},
		{"nil", nil, "other"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := refusalReason(c.err); got != c.want {
				t.Fatalf("refusalReason(%v) = %q, want %q", c.err, got, c.want)
			}
			before := refusedCounts(t, reg)
			o.Refused(c.err, "key", "/avtr-zone/x.avtr")
			after := refusedCounts(t, reg)
			for _, r := range reasons {
				want := before[r]
				if r == c.want {
					want++
				}
				if after[r] != want {
					t.Errorf("reason %s: %v, want %v", r, after[r], want)
				}
			}
		})
	}

	// A real refusal by Bind counts as name_taken.
	n := ownersName(t, "heisenberg.avtr")
	a, b := newOwnersKey(t, n), newOwnersKey(t, n)
	if _, err := o.Bind(context.Background(), a.claim); err != nil {
		t.Fatal(err)
	}
	_, err = o.Bind(context.Background(), b.claim)
	before := refusedCounts(t, reg)[ReasonNameTaken]
	o.Refused(err)
	if got := refusedCounts(t, reg)[ReasonNameTaken]; got != before+1 {
		t.Fatalf("Bind's refusal: name_taken %v, want %v", got, before+1)
	}

	// A flood is counted in full but logged at a bounded rate.
	start := time.Now()
	logged.Store(0)
	before = refusedCounts(t, reg)["other"]
	const flood = 200
	for range flood {
		o.Refused(errors.New("junk"))
	}
	if got := refusedCounts(t, reg)["other"]; got != before+flood {
		t.Fatalf("flood counted %v, want %v", got-before, flood)
	}
	if limit := int64(6 + time.Since(start)/time.Second); logged.Load() > limit {
		t.Fatalf("%d refusals logged %d lines, want at most %d", flood, logged.Load(), limit)
	}
}

func TestPollWinner(t *testing.T) {
	n := ownersName(t, "noether.avtr")
	keys := []ownersKey{newOwnersKey(t, n), newOwnersKey(t, n), newOwnersKey(t, n)}
	votesOf := func(k ownersKey, count int) []vote {
		out := make([]vote, count)
		for i := range out {
			out[i] = vote{peer: peer.ID(fmt.Sprintf("holder-%s-%d", k.id(), i)), value: k.claimBytes(t), claim: k.claim}
		}
		return out
	}
	pollOf := func(counts ...int) *poll {
		p := &poll{key: names.ClaimKey(n), byOwner: map[string][]vote{}, quorum: 3, settled: true}
		for i, c := range counts {
			if c > 0 {
				p.byOwner[keys[i].id()] = votesOf(keys[i], c)
			}
			p.asked += c
		}
		return p
	}
	cases := []struct {
		name     string
		counts   []int // votes of keys[0], keys[1], keys[2]
		want     int   // index of the winning key, -1 for none
		disputed []int // the keys a dispute must name
	}{
		{"no answers", nil, -1, nil},
		{"one owner", []int{3}, 0, nil},
		{"one owner, too few votes", []int{0, 2}, -1, []int{1}},
		{"11 vs 9", []int{11, 9}, 0, nil},
		{"9 vs 11", []int{9, 11}, 1, nil},
		{"10 vs 10", []int{10, 10}, -1, []int{0, 1}},
		{"1 vs 1", []int{1, 1}, -1, []int{0, 1}},
		{"one liar, nobody else holds it", []int{1}, -1, []int{0}},
		{"plurality 5/5/9", []int{5, 5, 9}, 2, nil},
		{"plurality 9/5/5", []int{9, 5, 5}, 0, nil},
		{"a tie at the top of three", []int{9, 5, 9}, -1, []int{0, 2}},
	}
	t.Run("not settled", func(t *testing.T) {
		p := pollOf(11)
		p.settled, p.pending = false, 9
		if got, err := p.winner(); !errors.Is(err, names.ErrDisputed) || got != nil {
			t.Fatalf("an unsettled poll decided: %d votes, %v", len(got), err)
		}
	})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for range 5 { // map order varies; the answer must not
				p := pollOf(c.counts...)
				got, err := p.winner()
				if c.disputed != nil {
					if !errors.Is(err, names.ErrDisputed) {
						t.Fatalf("winner: %d votes, %v; want ErrDisputed", len(got), err)
					}
					if got != nil {
						t.Fatalf("a dispute returned %d votes", len(got))
					}
					for _, i := range c.disputed {
						want := fmt.Sprintf("key %s held by %d", keys[i].id(), c.counts[i])
						if !strings.Contains(err.Error(), want) {
							t.Fatalf("dispute %q does not say %q", err, want)
						}
					}
					return
				}
				if err != nil {
					t.Fatalf("winner: %v", err)
				}
				if c.want < 0 {
					if got != nil {
						t.Fatalf("winner of no answers: %d votes", len(got))
					}
					continue
				}
				if len(got) != c.counts[c.want] {
					t.Fatalf("winner: %d votes, want %d", len(got), c.counts[c.want])
				}
				for _, v := range got {
					if !v.claim.Owner.Equals(keys[c.want].priv.GetPublic()) {
						t.Fatalf("winner holds a vote for %s, want %s", names.KeyID(v.claim.Owner), keys[c.want].id())
					}
				}
			}
		})
	}
}

// A vote whose claim is never stored lapses after voteLifetime: another
// claim may then be voted for, and the lapsed claim gets no second vote.
func TestOwnersVoteLapses(t *testing.T) {
	ctx := context.Background()
	n := ownersName(t, "meitner.avtr")
	a, b := newOwnersKey(t, n), newOwnersKey(t, n)
	o := ownersOn(t, newOwnersStore())
	now := time.Now()
	o.now = func() time.Time { return now }
	if err := o.Vote(ctx, a.claim); err != nil {
		t.Fatal(err)
	}
	if err := o.Vote(ctx, b.claim); !errors.Is(err, names.ErrNameTaken) {
		t.Fatalf("a rival while the vote stands: %v, want ErrNameTaken", err)
	}
	now = now.Add(voteLifetime + time.Minute)
	if v := o.Voted(ctx, n); v != nil {
		t.Fatal("a lapsed vote still counts")
	}
	if err := o.Vote(ctx, a.claim); err == nil {
		t.Fatal("the lapsed claim got a second vote")
	}
	if err := o.Vote(ctx, b.claim); err != nil {
		t.Fatalf("another claim after the vote lapsed: %v", err)
	}
	if v := o.Voted(ctx, n); v == nil || !v.Owner.Equals(b.priv.GetPublic()) {
		t.Fatal("the new vote is not the one held")
	}
}

// A second claim of the owner's own key (a thief holding the first key can
// mint one, with a recovery key of its own) is a rival in a poll, not more
// votes for the owner: it must out-vote the holders of the owner's claim.
func TestPollCountsClaimsNotKeys(t *testing.T) {
	n := ownersName(t, "hopper.avtr")
	owner := newOwnersKey(t, n)
	thief := owner.remint(t)
	p := &poll{key: names.ZoneKey(n), byOwner: map[string][]vote{}, quorum: 3, settled: true}
	add := func(k ownersKey, count int) {
		for i := range count {
			v := vote{peer: peer.ID(fmt.Sprintf("holder-%d-%d", len(p.byOwner), i)), value: k.claimBytes(t), claim: k.claim}
			p.byOwner[ownerLabel(k.claim)] = append(p.byOwner[ownerLabel(k.claim)], v)
			p.asked++
		}
	}
	add(owner, 9)
	add(thief, 1)
	votes, err := p.winner()
	if err != nil || len(votes) != 9 || votes[0].claim != owner.claim {
		t.Fatalf("winner = %d votes, %v; want the owner's claim with 9", len(votes), err)
	}
	if !p.disputed() || p.onlyFor(thief.claim) || p.onlyFor(owner.claim) {
		t.Fatal("two claims of one key must count as two owners")
	}
	if ownerLabel(owner.claim) == ownerLabel(thief.claim) {
		t.Fatal("two claims of one key share a label")
	}
}

// A value replayed within checkedFor is checked once; another value, or
// the same bytes under another key, is checked again.
func TestReplayedValuesAreCheckedOnce(t *testing.T) {
	c := newCheckedValues()
	checks := 0
	check := func() checkedValue { checks++; return checkedValue{err: names.ErrBadSignature} }
	for range 5 {
		if v := c.decode("/avtr-zone/a.avtr", []byte("v"), check); !errors.Is(v.err, names.ErrBadSignature) {
			t.Fatalf("the remembered verdict is lost: %v", v.err)
		}
	}
	c.decode("/avtr-zone/b.avtr", []byte("v"), check)
	c.decode("/avtr-zone/a.avtr", []byte("w"), check)
	if checks != 3 {
		t.Fatalf("%d checks for 1 value replayed 5 times and 2 others, want 3", checks)
	}
}
