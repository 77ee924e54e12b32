package names

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/libp2p/go-libp2p/core/record"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/avnode/avnode/core/names/pb"
)

const (
	// MaxRecordSize caps an encoded claim, zone or estate record. It is
	// checked before any decoding or signature check, so a flood of huge
	// values costs a holder nothing but a length comparison. It was 10 KiB
	// before hybrid keys: a hybrid key is 1.9 KiB and its signature 3.3 KiB,
	// and a zone carries both twice (its envelope and its claim) plus its
	// key chain. 64 KiB is far below kad-dht's 4 MiB message limit and
	// gossipsub's 1 MiB, and holders' stores are bounded by count and rate.
	MaxRecordSize = 64 << 10

	// Signature domains of the libp2p envelopes. A signature made for one
	// can never verify as the other, nor as any other libp2p record.
	claimDomain = "avtr-claim"
	zoneDomain  = "avtr-zone"
)

// Envelope payload types: multicodecs from the private-use range
// (0x300000-0x3fffff), unsigned-varint encoded as libp2p does for its own
// peer records.
var (
	claimCodec = binary.AppendUvarint(nil, 0x300a01)
	// 0x300a02 was the zone payload before it signed its claim's hash.
	zoneCodec = binary.AppendUvarint(nil, 0x300a03)
)

func init() {
	// Registered so that record.ConsumeEnvelope elsewhere in the node can
	// open our envelopes too; this package itself uses typed consumption.
	record.RegisterType(&claimRecord{})
	record.RegisterType(&zoneRecord{})
}

// claimRecord adapts pb.ClaimPayload to libp2p's record.Record.
type claimRecord struct{ p *pb.ClaimPayload }

func (*claimRecord) Domain() string { return claimDomain }
func (*claimRecord) Codec() []byte  { return claimCodec }
func (r *claimRecord) MarshalRecord() ([]byte, error) {
	return marshalCanonical(r.p)
}
func (r *claimRecord) UnmarshalRecord(b []byte) error {
	r.p = new(pb.ClaimPayload)
	return unmarshalStrict(b, r.p)
}

// zoneRecord adapts pb.ZonePayload to libp2p's record.Record.
type zoneRecord struct{ p *pb.ZonePayload }

func (*zoneRecord) Domain() string { return zoneDomain }
func (*zoneRecord) Codec() []byte  { return zoneCodec }
func (r *zoneRecord) MarshalRecord() ([]byte, error) {
	return marshalCanonical(r.p)
}
func (r *zoneRecord) UnmarshalRecord(b []byte) error {
	r.p = new(pb.ZonePayload)
	return unmarshalStrict(b, r.p)
}

func marshalCanonical(m proto.Message) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

// unmarshalStrict decodes b into m and refuses any encoding other than the
// canonical one (unknown fields, reordered or repeated fields, long varints).
// Signed payloads then have exactly one byte form, so nobody can re-encode a
// record to get a different hash or bytes without re-signing it.
func unmarshalStrict(b []byte, m proto.Message) error {
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("%v: %w", err, ErrMalformed)
	}
	if hasUnknown(m.ProtoReflect()) {
		return fmt.Errorf("unknown fields (written by a newer avnode?): %w", ErrMalformed)
	}
	canon, err := marshalCanonical(m)
	if err != nil || !bytes.Equal(canon, b) {
		return fmt.Errorf("not in canonical encoding: %w", ErrMalformed)
	}
	return nil
}

// hasUnknown reports whether m or any message inside it holds fields this
// version does not know. Re-encoding keeps such fields, so the canonical
// comparison alone would let them through, and our own structs would then
// silently drop them.
func hasUnknown(m protoreflect.Message) bool {
	if len(m.GetUnknown()) > 0 {
		return true
	}
	found := false
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Message() == nil || fd.IsMap():
		case fd.IsList():
			for i := 0; i < v.List().Len() && !found; i++ {
				found = hasUnknown(v.List().Get(i).Message())
			}
		default:
			found = hasUnknown(v.Message())
		}
		return !found
	})
	return found
}

// checkSize is the first check on every value that comes from the network.
func checkSize(what string, b []byte) error {
	if len(b) > MaxRecordSize {
		return fmt.Errorf("%s is %d bytes, at most %d allowed: %w", what, len(b), MaxRecordSize, ErrTooLarge)
	}
	if len(b) == 0 {
		return fmt.Errorf("%s is empty: %w", what, ErrMalformed)
	}
	return nil
}
