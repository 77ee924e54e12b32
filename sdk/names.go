package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/avnode/avnode/sdk/pluginpb"
)

// Claim claims name for a key in the node's keystore; a name the node
// already owns resolves instead.
func (h *grpcHost) Claim(ctx context.Context, name, key string) (Resolution, error) {
	res, err := h.c.Claim(ctx, &pluginpb.ClaimRequest{Name: name, Key: key})
	if err != nil {
		return Resolution{}, wrap("Claim", name, err)
	}
	return resolutionFromProto(res), nil
}

// OfferZone hands the node a signed zone; a forged one, or one older than
// the node knows, is refused with codes.InvalidArgument.
func (h *grpcHost) OfferZone(ctx context.Context, key string, zone []byte) (Resolution, error) {
	res, err := h.c.OfferZone(ctx, &pluginpb.RecordValue{Key: key, Value: zone})
	if err != nil {
		return Resolution{}, wrap("OfferZone", key, err)
	}
	return resolutionFromProto(res), nil
}

// AttestCopy announces that this node holds version seq of name.
func (h *grpcHost) AttestCopy(ctx context.Context, name string, seq uint64) error {
	_, err := h.c.AttestCopy(ctx, &pluginpb.CopyRef{Name: name, Seq: seq})
	return wrap("AttestCopy", name+"@"+strconv.FormatUint(seq, 10), err)
}

// FindCopies lists the peers that attested to holding version seq of name.
func (h *grpcHost) FindCopies(ctx context.Context, name string, seq uint64) ([]string, error) {
	res, err := h.c.FindCopies(ctx, &pluginpb.CopyRef{Name: name, Seq: seq})
	if err != nil {
		return nil, wrap("FindCopies", name+"@"+strconv.FormatUint(seq, 10), err)
	}
	return res.GetPeerIds(), nil
}

// DataDir is a folder the role owns in the node's repo, for its state.
func (h *grpcHost) DataDir() string { return h.dataDir }

// PeerID is the node's own peer ID.
func (h *grpcHost) PeerID() string { return h.peerID }

// NameSpelling is a name as the node writes it, which every name a role
// keeps should be: the Alternet form an://coolblog:code becomes
// coolblog.code (an://api.coolblog:code, api.coolblog.code), and ASCII
// upper case is folded. It checks nothing else; the node refuses a name
// that breaks the grammar.
func NameSpelling(name string) string {
	// A-Z only: strings.ToLower would also fold non-ASCII letters (the
	// Kelvin sign into k), passing a name the node refuses as one it takes.
	name = strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, strings.TrimSpace(name))
	if rest, ok := strings.CutPrefix(name, "an://"); ok {
		if label, topic, ok := strings.Cut(rest, ":"); ok {
			return label + "." + topic
		}
	}
	return name
}

// NameTopic is the pub/sub topic on which a name's beacon announces new
// versions and its mirrors attest copies.
func NameTopic(name string) string { return "avtr/name/" + name }

// The DHT keys of a name's records, each followed by the name (e.g.
// /avtr-zone/einstein.avtr): the owner's signed zone, which Host.OfferZone
// takes and Host.GetRecord and PutRecord read and write, and the owner's
// signed claim of the name. The node validates both before storing them.
const (
	ZoneKeyPrefix  = "/avtr-zone/"
	ClaimKeyPrefix = "/avtr-claim/"
)

// Kinds of NameMessage.
const (
	KindZone    = "zone"    // a new signed zone (Zone)
	KindLeaving = "leaving" // the beacon is going offline
	KindCopy    = "copy"    // a mirror holds version Seq
)

// NameMessage is what goes on a NameTopic, as JSON. Its sender is the
// message's From: pub/sub messages are signed by the publishing node.
// Receivers trust none of it: a zone is checked with Host.OfferZone.
type NameMessage struct {
	Kind string `json:"kind"`
	Zone []byte `json:"zone,omitempty"`
	Seq  uint64 `json:"seq,omitempty"`
}

// DecodeStrict decodes a role's JSON config into v, refusing unknown keys:
// they are usually typos.
func DecodeStrict(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// Satellites lists the peers the owner delegated to in a resolved zone (SAT
// records on the registered name). The zone's signature is the owner's, so
// a satellite listed here was authorized by the identity key.
func Satellites(res Resolution) []string {
	var out []string
	for _, r := range res.Records {
		if r.Type == "SAT" && r.Label == "" {
			out = append(out, r.Value)
		}
	}
	return out
}

// Delegated reports whether the owner of a resolved name authorized peer as
// its satellite.
func Delegated(res Resolution, peer string) bool {
	return slices.Contains(Satellites(res), peer)
}

// StartRelay runs the node's relay service with limits.
func (h *grpcHost) StartRelay(ctx context.Context, limits RelayLimits) (RelayStats, error) {
	st, err := h.c.StartRelay(ctx, relayLimitsProto(limits))
	if err != nil {
		return RelayStats{}, wrap("StartRelay", "", err)
	}
	return relayStatsFromProto(st), nil
}

// RelayStatus reports the relay service's counters.
func (h *grpcHost) RelayStatus(ctx context.Context) (RelayStats, error) {
	st, err := h.c.RelayStatus(ctx, &pluginpb.Empty{})
	if err != nil {
		return RelayStats{}, wrap("RelayStatus", "", err)
	}
	return relayStatsFromProto(st), nil
}
