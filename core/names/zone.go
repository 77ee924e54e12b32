package names

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/avnode/avnode/core/names/pb"
)

// RecordType is the type of a zone entry.
type RecordType int32

// Zone entry types. Values are the wire values; never renumber.
const (
	TypeROOT  RecordType = RecordType(pb.RecordType_RECORD_TYPE_ROOT)  // content root CID
	TypeHOST  RecordType = RecordType(pb.RecordType_RECORD_TYPE_HOST)  // peer ID of a machine that hosts the name
	TypeA     RecordType = RecordType(pb.RecordType_RECORD_TYPE_A)     // peer ID or multiaddr of a label
	TypeCNAME RecordType = RecordType(pb.RecordType_RECORD_TYPE_CNAME) // alias to another name
	TypeTXT   RecordType = RecordType(pb.RecordType_RECORD_TYPE_TXT)   // free UTF-8 text
	// TypeSAT delegates to a satellite: the peer ID of a light device the
	// owner authorizes to lean on the name's beacons. The owner's signature
	// on the zone is the delegation; removing the record revokes it.
	TypeSAT RecordType = RecordType(pb.RecordType_RECORD_TYPE_SAT)
)

const (
	// MaxTXTLen caps a TXT value, in bytes.
	MaxTXTLen = 1 << 10
	// maxRootLen is far above any CID's text form; it only stops junk.
	maxRootLen = 256
)

var recordTypeNames = map[RecordType]string{
	TypeROOT: "ROOT", TypeHOST: "HOST", TypeA: "A", TypeCNAME: "CNAME", TypeTXT: "TXT", TypeSAT: "SAT",
}

func (t RecordType) String() string {
	if s, ok := recordTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("TYPE%d", int32(t))
}

// ParseRecordType reads a type name such as "CNAME" or "cname".
func ParseRecordType(s string) (RecordType, error) {
	for t, name := range recordTypeNames {
		if strings.EqualFold(s, name) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("record type %q: use one of ROOT, HOST, A, CNAME, TXT, SAT: %w", s, ErrBadRecord)
}

// Record is one zone entry. Label "" means the registered name itself;
// otherwise it is a sub-label such as "api" (or "a.b" for deeper names).
type Record struct {
	Type  RecordType
	Label string
	Value string
}

// Zone is an owner's signed set of records for a registered name (layer 2).
// It carries the owner's claim so DHT holders can tell whose zone it is
// without a lookup.
type Zone struct {
	Name    Name          // registered name
	Owner   crypto.PubKey // set by Sign and DecodeZone
	Seq     uint64        // only goes up; resolvers refuse lower (HighWater)
	Expiry  time.Time     // absolute; validators refuse the zone after it
	TTL     time.Duration // how long resolvers may cache it; whole seconds
	Records []Record
	Claim   *Claim // the claim of Name, by the name's first key
	// Rotations are the name's key changes since Claim; Owner is the key the
	// last one names (the claim's owner when there are none).
	Rotations []*Rotation

	claimBytes []byte // the embedded claim as on the wire, for Select
	signed     []byte // the zone as stored in the DHT, once signed or decoded
}

// Signed returns the zone as stored in the DHT (nil before Sign or
// DecodeZone): anyone may carry it, nobody can change it.
func (z *Zone) Signed() []byte { return z.signed }

// SignedClaim returns the owner's claim embedded in the zone, as on the wire.
func (z *Zone) SignedClaim() []byte { return z.claimBytes }

// Key returns the DHT key of z, /avtr-zone/<name>.
func (z *Zone) Key() string { return ZoneKey(z.Name) }

// Lineage is the claim and key chain the zone rests on. Its Steps are never
// nil: a zone speaks for its whole chain, even when it has no rotation.
func (z *Zone) Lineage() *Lineage {
	return &Lineage{Claim: z.Claim, Steps: append([]*Rotation{}, z.Rotations...)}
}

// CopiesPrefix starts the TXT record by which an owner asks mirrors to keep
// a number of copies of the name: "copies=5".
const CopiesPrefix = "copies="

// CopiesWanted is the replication target the owner set in the zone (TXT
// copies=N on the registered name), or 0 when there is none or it is not a
// positive number. The largest wins if there are several.
func (z *Zone) CopiesWanted() int {
	wanted := 0
	for _, r := range z.RecordsFor("") {
		if v, ok := strings.CutPrefix(r.Value, CopiesPrefix); ok && r.Type == TypeTXT {
			if n, err := strconv.Atoi(v); err == nil && n > wanted {
				wanted = n
			}
		}
	}
	return wanted
}

// RecordsFor returns the entries of label ("" for the registered name).
func (z *Zone) RecordsFor(label string) []Record {
	var out []Record
	for _, r := range z.Records {
		if r.Label == label {
			out = append(out, r)
		}
	}
	return out
}

// Sign checks z and signs it with the owner's key, filling in z.Owner, and
// returns the bytes to store under z.Key(). z.Claim must be the owner's claim
// of z.Name; the zone signs the hash of exactly that claim.
func (z *Zone) Sign(ownerPriv crypto.PrivKey) ([]byte, error) {
	pub := ownerPriv.GetPublic()
	if err := z.checkForSigning(pub); err != nil {
		return nil, err
	}
	ownerKey, err := marshalKey(pub)
	if err != nil {
		return nil, fmt.Errorf("zone %s: %w", z.Name, err)
	}
	claim, err := z.Claim.Marshal()
	if err != nil {
		return nil, fmt.Errorf("zone %s: %w", z.Name, err)
	}
	payload := z.payload(ownerKey)
	payload.ClaimHash = digest(claim)
	steps := z.Lineage().SignedSteps()
	if len(steps) > 0 {
		payload.ChainHash = digest(steps[len(steps)-1])
	}
	env, err := seal(&zoneRecord{p: payload}, ownerPriv)
	if err != nil {
		return nil, fmt.Errorf("zone %s: %w", z.Name, err)
	}
	b, err := marshalCanonical(&pb.SignedZone{Envelope: env, Claim: claim, Rotations: steps})
	if err != nil {
		return nil, fmt.Errorf("zone %s: encode: %w", z.Name, err)
	}
	if err := checkSize("zone "+z.Name.String(), b); err != nil {
		return nil, fmt.Errorf("%w; remove records", err)
	}
	z.Owner, z.claimBytes, z.signed = pub, claim, b
	return b, nil
}

func (z *Zone) checkForSigning(pub crypto.PubKey) error {
	switch {
	case z.Name.IsZero() || !z.Name.IsRegistered():
		return fmt.Errorf("zone %q: a zone belongs to a registered name (label.topic): %w", z.Name, ErrBadName)
	case z.Claim == nil:
		return fmt.Errorf("zone %s: no claim; mint one with MintClaim first: %w", z.Name, ErrWrongOwner)
	case z.Claim.Name != z.Name:
		return fmt.Errorf("zone %s: embedded claim is for %s: %w", z.Name, z.Claim.Name, ErrNameMismatch)
	case !z.Lineage().Head().Equals(pub):
		return fmt.Errorf("zone %s: the name's key is %s, signing key is %s: %w", z.Name, KeyID(z.Lineage().Head()), KeyID(pub), ErrWrongOwner)
	case z.TTL < 0 || z.TTL > math.MaxUint32*time.Second:
		return fmt.Errorf("zone %s: TTL %s is negative or too long: %w", z.Name, z.TTL, ErrBadRecord)
	}
	return checkRecords(z.Name, z.Records)
}

func (z *Zone) payload(ownerKey []byte) *pb.ZonePayload {
	p := &pb.ZonePayload{
		Name: z.Name.String(), OwnerKey: ownerKey, Seq: z.Seq,
		ExpiryUnix: z.Expiry.Unix(), TtlSeconds: uint32(z.TTL / time.Second),
	}
	for _, r := range z.Records {
		p.Records = append(p.Records, &pb.ZoneRecord{Type: pb.RecordType(r.Type), Label: r.Label, Value: r.Value})
	}
	return p
}

// DecodeZone checks and decodes a zone as stored in the DHT: size, encoding,
// key type, the owner's signature, the embedded claim (same name, same key)
// and every record. It does not check expiry or the network's claim rules;
// ZoneValidator does.
func DecodeZone(b []byte) (*Zone, error) { return decodeZone(b, nil) }

func decodeZone(b []byte, memo *SignatureMemo) (*Zone, error) {
	if err := checkSize("zone", b); err != nil {
		return nil, err
	}
	var sz pb.SignedZone
	if err := unmarshalStrict(b, &sz); err != nil {
		return nil, fmt.Errorf("zone: %w", err)
	}
	var rec zoneRecord
	signer, err := open(sz.GetEnvelope(), &rec, memo)
	if err != nil {
		return nil, fmt.Errorf("zone: %w", err)
	}
	z, err := zoneFromPayload(rec.p, signer)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(rec.p.GetClaimHash(), digest(sz.GetClaim())) {
		return nil, fmt.Errorf("zone %s: the embedded claim is not the one the owner signed the zone with: %w", z.Name, ErrWrongOwner)
	}
	if err := z.attachClaim(sz.GetClaim(), sz.GetRotations(), memo); err != nil {
		return nil, err
	}
	var chainHash []byte
	if steps := sz.GetRotations(); len(steps) > 0 {
		chainHash = digest(steps[len(steps)-1])
	}
	if !bytes.Equal(rec.p.GetChainHash(), chainHash) {
		return nil, fmt.Errorf("zone %s: the key chain carried is not the one the owner signed the zone with: %w", z.Name, ErrWrongOwner)
	}
	if err := checkRecords(z.Name, z.Records); err != nil {
		return nil, err
	}
	z.signed = b
	return z, nil
}

func zoneFromPayload(p *pb.ZonePayload, signer crypto.PubKey) (*Zone, error) {
	name, err := parseRegistered(p.GetName())
	if err != nil {
		return nil, fmt.Errorf("zone: %w", err)
	}
	owner, err := decodeKey(p.GetOwnerKey())
	if err != nil {
		return nil, fmt.Errorf("zone %s: owner: %w", name, err)
	}
	if !owner.Equals(signer) {
		return nil, fmt.Errorf("zone %s: names owner %s but is signed by %s: %w", name, KeyID(owner), KeyID(signer), ErrWrongOwner)
	}
	z := &Zone{
		Name: name, Owner: owner, Seq: p.GetSeq(),
		Expiry: time.Unix(p.GetExpiryUnix(), 0).UTC(), TTL: time.Duration(p.GetTtlSeconds()) * time.Second,
	}
	for _, r := range p.GetRecords() {
		z.Records = append(z.Records, Record{Type: RecordType(r.GetType()), Label: r.GetLabel(), Value: r.GetValue()})
	}
	return z, nil
}

// attachClaim checks the embedded claim and key chain: the zone must be
// signed by the key the chain ends at.
func (z *Zone) attachClaim(b []byte, steps [][]byte, memo *SignatureMemo) error {
	c, err := decodeClaim(b, memo)
	if err != nil {
		return fmt.Errorf("zone %s: embedded %w", z.Name, err)
	}
	if c.Name != z.Name {
		return fmt.Errorf("zone %s: embedded claim is for %s: %w", z.Name, c.Name, ErrNameMismatch)
	}
	l, err := NewLineage(c, steps)
	if err != nil {
		return fmt.Errorf("zone %s: %w", z.Name, err)
	}
	if !l.Head().Equals(z.Owner) {
		return fmt.Errorf("zone %s: signed by %s but the name's key is %s: %w", z.Name, KeyID(z.Owner), KeyID(l.Head()), ErrWrongOwner)
	}
	z.Claim, z.claimBytes, z.Rotations = c, b, l.Steps
	return nil
}

// digest is the SHA-256 that binds a zone to the exact claim and chain it
// carries, and a rotation step to the claim or step before it.
func digest(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

// MatchOwner checks that zone z rests on the owner of claim c, the claim a
// resolver trusts (e.g. the one it pinned), which may be a different claim
// of the same owner from the one embedded in z. The key chain is
// CheckSuccession's business.
func MatchOwner(c *Claim, z *Zone) error {
	if c.Name != z.Name {
		return fmt.Errorf("zone %s: claim is for %s: %w", z.Name, c.Name, ErrNameMismatch)
	}
	if !c.Owner.Equals(z.Claim.Owner) {
		return fmt.Errorf("zone %s: rests on the claim of %s, but the name is owned by %s; ignore this zone: %w", z.Name, KeyID(z.Claim.Owner), KeyID(c.Owner), ErrWrongOwner)
	}
	return nil
}

// checkRecords validates every entry and forbids a CNAME sharing its label
// with any other entry: an alias stands for the whole label, so a resolver
// never has to choose between the alias and local data.
func checkRecords(zone Name, rs []Record) error {
	labels := make(map[string]int)
	aliased := make(map[string]bool)
	for _, r := range rs {
		if err := checkRecord(zone, r); err != nil {
			return err
		}
		labels[r.Label]++
		aliased[r.Label] = aliased[r.Label] || r.Type == TypeCNAME
	}
	for l := range aliased {
		if aliased[l] && labels[l] > 1 {
			return fmt.Errorf("zone %s: label %q has a CNAME and other records; a CNAME must be alone: %w", zone, l, ErrBadRecord)
		}
	}
	return nil
}

// checkRecord validates one entry of zone.
func checkRecord(zone Name, r Record) error {
	self, err := zone.WithSub(r.Label)
	if err != nil {
		return fmt.Errorf("zone %s: record %s label %q: %v: %w", zone, r.Type, r.Label, err, ErrBadRecord)
	}
	if err := checkValue(self, r); err != nil {
		return fmt.Errorf("zone %s: record %s %q → %q: %v: %w", zone, r.Type, r.Label, truncate(r.Value), err, ErrBadRecord)
	}
	return nil
}

func checkValue(self Name, r Record) error {
	switch r.Type {
	case TypeROOT:
		return checkRoot(r.Value)
	case TypeHOST, TypeSAT:
		if id, ok := EstateOfHost(r.Value); ok && r.Type == TypeHOST {
			_, _, err := ParseEstateID(id)
			return err
		}
		if _, err := peer.Decode(r.Value); err != nil {
			return fmt.Errorf("must be a peer ID (%v)", err)
		}
		return nil
	case TypeA:
		if _, err := peer.Decode(r.Value); err == nil {
			return nil
		}
		if _, err := ma.NewMultiaddr(r.Value); err != nil {
			return fmt.Errorf("neither a peer ID nor a multiaddr (%v)", err)
		}
		return nil
	case TypeCNAME:
		return checkAlias(self, r.Value)
	case TypeTXT:
		if len(r.Value) > MaxTXTLen || !utf8.ValidString(r.Value) {
			return fmt.Errorf("TXT must be valid UTF-8 of at most %d bytes", MaxTXTLen)
		}
		return nil
	}
	return fmt.Errorf("unknown record type %d; use ROOT, HOST, A, CNAME, TXT or SAT", int32(r.Type))
}

// checkRoot accepts a content root as a CID in its canonical text form (the
// one `avnode publish` prints), so that every node reads the same root and
// no zone carries two spellings of it.
func checkRoot(s string) error {
	if s == "" || len(s) > maxRootLen {
		return fmt.Errorf("must be a content CID such as bafybei… (what `avnode publish` prints), of 1 to %d characters", maxRootLen)
	}
	c, err := cid.Decode(s)
	if err != nil {
		return fmt.Errorf("must be a content CID such as bafybei… (what `avnode publish` prints): %v", err)
	}
	if c.String() != s {
		return fmt.Errorf("write the CID in its canonical form %s", c)
	}
	return nil
}

// checkAlias refuses a target that is not a canonical name, or that is the
// zone itself or the aliased name: either would be a loop.
func checkAlias(self Name, target string) error {
	t, err := Parse(target)
	if err != nil {
		return err
	}
	if t.String() != target {
		return fmt.Errorf("write the target in canonical form %q", t)
	}
	if t == self || t == self.Registered() {
		return fmt.Errorf("CNAME points at its own zone or label")
	}
	return nil
}

// truncate keeps error messages readable when a value is long.
func truncate(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:64] + "…"
}
