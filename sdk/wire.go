package sdk

import (
	"time"

	"github.com/avnode/avnode/sdk/pluginpb"
)

// The SDK's gRPC edge: the node answers in pluginpb messages, and these turn
// them into the Go types Host returns (and RelayLimits into its message).
// Nothing else in the SDK's API mentions pluginpb's Host messages.

func resolutionFromProto(p *pluginpb.Resolution) Resolution {
	r := Resolution{
		Name: p.GetName(), Key: p.GetKey(), Seq: p.GetSeq(), Root: p.GetRoot(),
		Records:    recordsFromProto(p.GetRecords()),
		SignedZone: p.GetSignedZone(), SignedClaim: p.GetSignedClaim(),
		CopiesWanted: int(p.GetCopiesWanted()),
		KeyType:      p.GetKeyType(), Rotations: int(p.GetRotations()),
	}
	// The node sends 0, or the Unix time of the zero time, for no expiry.
	if exp := p.GetExpiresUnix(); exp > 0 {
		r.Expires = time.Unix(exp, 0)
	}
	for _, h := range p.GetHosts() {
		r.Hosts = append(r.Hosts, PeerInfo{ID: h.GetPeerId(), Addrs: h.GetAddrs()})
	}
	return r
}

func recordsFromProto(ps []*pluginpb.ZoneRecordEntry) []ZoneRecord {
	var out []ZoneRecord
	for _, p := range ps {
		out = append(out, ZoneRecord{Type: p.GetType(), Label: p.GetLabel(), Value: p.GetValue()})
	}
	return out
}

func zoneFromProto(p *pluginpb.Zone) Zone {
	return Zone{Name: p.GetName(), Seq: p.GetSeq(), Records: recordsFromProto(p.GetRecords())}
}

func fetchedFromProto(p *pluginpb.FetchResult) Fetched {
	f := Fetched{Root: p.GetRoot(), CID: p.GetCid(), Kind: p.GetKind(), Size: p.GetSize(),
		BlocksFetched: int(p.GetBlocksFetched())}
	for _, e := range p.GetEntries() {
		f.Entries = append(f.Entries, DirEntry{Name: e.GetName(), CID: e.GetCid(), Kind: e.GetKind(), Size: e.GetSize()})
	}
	return f
}

func eventFromProto(p *pluginpb.Event) Event {
	e := Event{Kind: p.GetKind(), Attrs: p.GetAttrs()}
	if ns := p.GetTimeUnixNano(); ns != 0 {
		e.Time = time.Unix(0, ns)
	}
	return e
}

func topicMessageFromProto(p *pluginpb.TopicMessage) TopicMessage {
	return TopicMessage{Topic: p.GetTopic(), Data: p.GetData(), From: p.GetFrom(), Seqno: p.GetSeqno()}
}

func verdictFromProto(p *pluginpb.PolicyVerdict) Verdict {
	return Verdict{Decided: p.GetDecided(), Allow: p.GetAllow(), Order: p.GetOrder(), Reason: p.GetReason(),
		Script: p.GetScript(), Fallback: p.GetFallback()}
}

func relayStatsFromProto(p *pluginpb.RelayStats) RelayStats {
	return RelayStats{Running: p.GetRunning(), Reservations: p.GetReservations(), Refused: p.GetRefused(),
		Circuits: p.GetCircuits()}
}

func relayLimitsProto(l RelayLimits) *pluginpb.RelayConfig {
	return &pluginpb.RelayConfig{
		MaxReservations: int32(l.MaxReservations), MaxReservationsPerIp: int32(l.MaxReservationsPerIP),
		MaxCircuits:            int32(l.MaxCircuits),
		CircuitDurationSeconds: int64(l.CircuitDuration / time.Second),
		CircuitBytes:           l.CircuitBytes,
		ReservationTtlSeconds:  int64(l.ReservationTTL / time.Second),
	}
}
