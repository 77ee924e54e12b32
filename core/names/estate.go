package names

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	"github.com/multiformats/go-multibase"

	"github.com/avnode/avnode/core/names/pb"
)

// Estates are hosting positions: an estate key says which machines run the
// estate now, and a zone's HOST record may name the estate instead of a
// machine (HOST estate:<estate ID>). The identity key decides which estate
// hosts an avatar; the estate key only which machines run the estate.
const (
	EstateNamespace = "avtr-estate"
	estateDomain    = "avtr-estate"
	// EstateHostPrefix starts a HOST value that names an estate.
	EstateHostPrefix = "estate:"
	// MaxEstateHosts bounds the machines one estate record names.
	MaxEstateHosts = 16
	// ProviderTopic is the topic of a provider's name (acme.node).
	ProviderTopic = "node"
	// MaxEstateSeq bounds an estate record's sequence, so that an import
	// can always sign the next one (a record at the bound means the key is
	// in other hands: make a new estate and point the zone at it).
	MaxEstateSeq = 1 << 53
	// MaxEstateTTL bounds how long a resolver caches an estate record.
	MaxEstateTTL = 24 * time.Hour
	// MaxEstateLifetime bounds how far ahead an estate record's expiry is:
	// a leaked key's record cannot outlive it by years.
	MaxEstateLifetime = 30 * 24 * time.Hour
)

var estateCodec = binary.AppendUvarint(nil, 0x300a04)

func init() { record.RegisterType(&estateRecord{}) }

// Estate is one version of an estate record.
type Estate struct {
	Key      crypto.PubKey
	Seq      uint64
	Expiry   time.Time
	TTL      time.Duration
	Hosts    []peer.ID // sorted, distinct
	Provider string    // a .node name, or ""
	signed   []byte
}

// ID is the estate's printable ID: its key's, as KeyID prints it.
func (e *Estate) ID() string { return KeyID(e.Key) }

// Signed is the value as stored in the DHT (after Sign or DecodeEstate).
func (e *Estate) Signed() []byte { return e.signed }

// EstateKey is the DHT key of an estate's record.
func EstateKey(id string) string { return "/" + EstateNamespace + "/" + id }

// ParseEstateID reads an estate ID (k51…) and returns it in its one
// canonical spelling with the key it names: the ID inlines the Ed25519 key,
// so the ID alone says which key may sign for it.
func ParseEstateID(s string) (string, crypto.PubKey, error) {
	c, err := cid.Decode(s)
	if err != nil {
		return "", nil, fmt.Errorf("estate ID %q: %v: %w", truncate(s), err, ErrMalformed)
	}
	id, err := peer.FromCid(c)
	if err != nil {
		return "", nil, fmt.Errorf("estate ID %q: %v: %w", truncate(s), err, ErrMalformed)
	}
	pub, err := id.ExtractPublicKey()
	if err != nil || !acceptedKeyTypes[pub.Type()] {
		return "", nil, fmt.Errorf("estate ID %q does not name an Ed25519 key: %w", truncate(s), ErrUnknownKeyType)
	}
	canon, _ := peer.ToCid(id).StringOfBase(multibase.Base36)
	if canon != s {
		return "", nil, fmt.Errorf("estate ID %q is not in its canonical form %s: %w", truncate(s), canon, ErrMalformed)
	}
	return canon, pub, nil
}

// EstateOfHost returns the estate ID a HOST value names, if it names one.
func EstateOfHost(value string) (string, bool) {
	return strings.CutPrefix(value, EstateHostPrefix)
}

// Sign encodes and signs the estate with its key, and keeps the bytes.
func (e *Estate) Sign(priv crypto.PrivKey) ([]byte, error) {
	e.Key = priv.GetPublic()
	key, err := marshalKey(e.Key)
	if err != nil {
		return nil, err
	}
	if err := e.check(); err != nil {
		return nil, err
	}
	p := &pb.EstatePayload{EstateKey: key, Seq: e.Seq, ExpiryUnix: e.Expiry.Unix(),
		TtlSeconds: uint32(e.TTL / time.Second), Provider: e.Provider}
	for _, h := range e.Hosts {
		p.Hosts = append(p.Hosts, h.String())
	}
	b, err := seal(&estateRecord{p: p}, priv)
	if err != nil {
		return nil, err
	}
	if err := checkSize("estate", b); err != nil {
		return nil, err
	}
	e.signed = b
	return b, nil
}

// check holds the rules every estate version follows, signing or reading.
func (e *Estate) check() error {
	if e.Seq > MaxEstateSeq {
		return fmt.Errorf("estate %s: seq %d is past the bound %d: %w", e.ID(), e.Seq, uint64(MaxEstateSeq), ErrBadRecord)
	}
	if e.TTL > MaxEstateTTL || e.TTL%time.Second != 0 {
		return fmt.Errorf("estate %s: TTL %s must be whole seconds, at most %s: %w", e.ID(), e.TTL, MaxEstateTTL, ErrBadRecord)
	}
	if len(e.Hosts) > MaxEstateHosts {
		return fmt.Errorf("estate %s names %d hosts, more than %d: %w", e.ID(), len(e.Hosts), MaxEstateHosts, ErrBadRecord)
	}
	if !slices.IsSortedFunc(e.Hosts, func(a, b peer.ID) int { return strings.Compare(a.String(), b.String()) }) || len(slices.Compact(slices.Clone(e.Hosts))) != len(e.Hosts) {
		return fmt.Errorf("estate %s: hosts must be sorted and distinct: %w", e.ID(), ErrMalformed)
	}
	if e.Provider != "" {
		n, err := Parse(e.Provider)
		if err != nil || !n.IsRegistered() || n.Topic() != ProviderTopic || n.String() != e.Provider {
			return fmt.Errorf("estate %s: provider %q must be a registered .%s name such as acme.%s: %w", e.ID(), truncate(e.Provider), ProviderTopic, ProviderTopic, ErrBadRecord)
		}
	}
	return nil
}

// SortHosts puts hosts in the order an estate record keeps them, without repeats.
func SortHosts(hosts []peer.ID) []peer.ID {
	out := slices.Clone(hosts)
	slices.SortFunc(out, func(a, b peer.ID) int { return strings.Compare(a.String(), b.String()) })
	return slices.Compact(out)
}

// DecodeEstate checks and decodes an estate record: size, canonical
// encoding, key type, signature, hosts and provider. Expiry and the DHT
// key are EstateValidator's.
func DecodeEstate(b []byte) (*Estate, error) {
	if err := checkSize("estate", b); err != nil {
		return nil, err
	}
	var rec estateRecord
	signer, err := open(b, &rec, nil)
	if err != nil {
		return nil, fmt.Errorf("estate: %w", err)
	}
	p := rec.p
	key, err := decodeKey(p.GetEstateKey())
	if err != nil {
		return nil, fmt.Errorf("estate: key: %w", err)
	}
	if !key.Equals(signer) {
		return nil, fmt.Errorf("estate %s is signed by %s: %w", KeyID(key), KeyID(signer), ErrWrongOwner)
	}
	e := &Estate{Key: key, Seq: p.GetSeq(), Expiry: time.Unix(p.GetExpiryUnix(), 0).UTC(),
		TTL: time.Duration(p.GetTtlSeconds()) * time.Second, Provider: p.GetProvider(), signed: b}
	for _, h := range p.GetHosts() {
		id, err := peer.Decode(h)
		if err != nil || id.String() != h {
			return nil, fmt.Errorf("estate %s: host %q is not a peer ID in canonical form: %w", e.ID(), truncate(h), ErrBadRecord)
		}
		e.Hosts = append(e.Hosts, id)
	}
	if err := e.check(); err != nil {
		return nil, err
	}
	return e, nil
}

// EstateValidator validates /avtr-estate/<ID> values for the DHT. The ID
// is the key's, so no other key can ever take an estate ID.
type EstateValidator struct {
	Now func() time.Time
}

// Validate implements record.Validator.
func (v EstateValidator) Validate(key string, value []byte) error {
	_, err := v.DecodeValid(key, value)
	return err
}

// DecodeValid runs every check of Validate and returns the estate.
func (v EstateValidator) DecodeValid(key string, value []byte) (*Estate, error) {
	if err := checkSize("key "+key, value); err != nil {
		return nil, err
	}
	id, ok := strings.CutPrefix(key, "/"+EstateNamespace+"/")
	if !ok {
		return nil, fmt.Errorf("key %q is not in namespace %s: %w", truncate(key), EstateNamespace, ErrMalformed)
	}
	if _, _, err := ParseEstateID(id); err != nil {
		return nil, fmt.Errorf("key %s: %w", truncate(key), err)
	}
	e, err := DecodeEstate(value)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", key, err)
	}
	if e.ID() != id {
		return nil, fmt.Errorf("key %s: record is signed by estate %s: %w", key, e.ID(), ErrWrongOwner)
	}
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	if !now.Before(e.Expiry) {
		return nil, fmt.Errorf("key %s: estate record expired at %s (seq %d); its host must republish: %w", key, e.Expiry, e.Seq, ErrExpired)
	}
	if e.Expiry.After(now.Add(MaxEstateLifetime + 10*time.Minute)) {
		return nil, fmt.Errorf("key %s: estate record expires at %s, more than %s ahead: %w", key, e.Expiry, MaxEstateLifetime, ErrBadRecord)
	}
	return e, nil
}

// Select implements record.Validator: the highest seq, then the later
// expiry, then the larger bytes. Invalid values are ignored, so a holder
// keeps a newer record against a rolled-back one.
func (v EstateValidator) Select(key string, values [][]byte) (int, error) {
	best := -1
	var bestE *Estate
	var firstErr error
	for i, val := range values {
		e, err := v.DecodeValid(key, val)
		if err != nil {
			firstErr = cmpErr(firstErr, err)
			continue
		}
		if best < 0 || estateNewer(e, val, bestE, values[best]) {
			best, bestE = i, e
		}
	}
	if best < 0 {
		return 0, noneValid(key, len(values), firstErr)
	}
	return best, nil
}

func estateNewer(a *Estate, aBytes []byte, b *Estate, bBytes []byte) bool {
	switch {
	case a.Seq != b.Seq:
		return a.Seq > b.Seq
	case !a.Expiry.Equal(b.Expiry):
		return a.Expiry.After(b.Expiry)
	}
	return bytes.Compare(aBytes, bBytes) > 0
}

// estateRecord adapts pb.EstatePayload to libp2p's record.Record.
type estateRecord struct{ p *pb.EstatePayload }

func (*estateRecord) Domain() string { return estateDomain }
func (*estateRecord) Codec() []byte  { return estateCodec }
func (r *estateRecord) MarshalRecord() ([]byte, error) {
	return marshalCanonical(r.p)
}
func (r *estateRecord) UnmarshalRecord(b []byte) error {
	r.p = new(pb.EstatePayload)
	return unmarshalStrict(b, r.p)
}
