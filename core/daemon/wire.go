package daemon

import (
	"strings"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/content"
	"github.com/avnode/avnode/core/hosting"
	"github.com/avnode/avnode/core/naming"
	"github.com/avnode/avnode/core/node"
	"github.com/avnode/avnode/core/policy"
)

// The handlers answer with core/api's wire types; these turn the domain's
// types into them. A nil list stays nil, an empty one empty, so the JSON
// is what it has always been.

// convert maps each element of in with f.
func convert[T, U any](in []T, f func(T) U) []U {
	if in == nil {
		return nil
	}
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

func recordOf(r naming.RecordInfo) api.RecordInfo {
	return api.RecordInfo{Type: r.Type, Label: r.Label, Value: r.Value}
}

func hostOf(h naming.HostInfo) api.HostInfo { return api.HostInfo{PeerID: h.PeerID, Addrs: h.Addrs} }

func zoneOf(z *naming.ZoneInfo) *api.ZoneInfo {
	if z == nil {
		return nil
	}
	return &api.ZoneInfo{Name: z.Name, Key: z.Key, Seq: z.Seq, Expires: z.Expires, TTL: z.TTL,
		Records: convert(z.Records, recordOf)}
}

func claimOf(c *naming.ClaimResult) *api.ClaimResult {
	return &api.ClaimResult{Name: c.Name, Key: c.Key, Holders: c.Holders, Asked: c.Asked,
		Certified: c.Certified, Refusals: c.Refusals, MintTime: c.MintTime, Resumed: c.Resumed}
}

func resolutionOf(r *naming.Resolution) *api.Resolution {
	return &api.Resolution{Name: r.Name, Key: r.Key, KeyType: r.KeyType, Rotations: r.Rotations, Seq: r.Seq, Expires: r.Expires,
		Records: convert(r.Records, recordOf), Hosts: convert(r.Hosts, hostOf), Root: r.Root,
		Via: r.Via, CopiesWanted: r.CopiesWanted, Disputed: r.Disputed, Estates: convert(r.Estates, estateInfoOf),
		SignedZone: r.SignedZone, SignedClaim: r.SignedClaim}
}

func estateInfoOf(e naming.EstateInfo) api.EstateInfo {
	return api.EstateInfo{ID: e.ID, Seq: e.Seq, Hosts: e.Hosts, Provider: e.Provider, Expires: e.Expires, Error: e.Error}
}

func estateOf(h naming.HostedEstate) api.Estate {
	return api.Estate{ID: h.ID, Label: h.Label, Seq: h.Seq, TTL: h.TTL, Hosts: h.Hosts, Provider: h.Provider,
		Names: h.Names, Retired: h.Retired}
}

func progressOf(p hosting.Progress) api.Progress {
	return api.Progress{Phase: p.Phase, Bytes: p.Bytes, Blocks: p.Blocks, Of: p.Of}
}

func publishOf(p *hosting.PublishResult) *api.PublishResult {
	return &api.PublishResult{Root: p.Root, Name: p.Name, Seq: p.Seq, Files: p.Files, Dirs: p.Dirs,
		Blocks: p.Blocks, NewBlocks: p.NewBlocks, Bytes: p.Bytes, Provided: p.Provided}
}

func entryOf(e content.Entry) api.Entry {
	return api.Entry{Name: e.Name, CID: e.CID, Kind: e.Kind, Size: e.Size}
}

func getResultOf(g *hosting.GetResult) *api.GetResult {
	s := g.Stats
	return &api.GetResult{Target: g.Target, Root: g.Root, CID: g.CID, Kind: g.Kind, Size: g.Size,
		Output: g.Output, Entries: convert(g.Entries, entryOf),
		Stats: api.FetchStats{Blocks: s.Blocks, Present: s.Present, Fetched: s.Fetched, Bytes: s.Bytes,
			Sources: s.Sources, Dropped: s.Dropped}}
}

func gcOf(r content.GCResult) api.GCResult {
	return api.GCResult{Removed: r.Removed, Freed: r.Freed, Kept: r.Kept}
}

func peerOf(p node.PeerInfo) api.PeerInfo {
	relayed := len(p.Addrs) > 0
	for _, a := range p.Addrs {
		relayed = relayed && strings.Contains(a, "/p2p-circuit")
	}
	return api.PeerInfo{ID: p.ID, Addrs: p.Addrs, Direction: p.Direction, Agent: p.Agent, Latency: p.Latency, Relayed: relayed}
}

func scriptOf(s policy.ScriptInfo) api.ScriptInfo {
	return api.ScriptInfo{Path: s.Path, SHA256: s.SHA256, Hooks: s.Hooks, Warnings: s.Warnings,
		LoadedAt: s.LoadedAt, LastError: s.LastError}
}

func keyChainOf(k *naming.KeyChain) *api.KeyChain {
	return &api.KeyChain{Name: k.Name, Key: k.Key, KeyType: k.KeyType, Claimed: k.Claimed, Recovery: k.Recovery,
		RecoveryKey: k.RecoveryKey, Steps: convert(k.Steps, func(s naming.KeyStep) api.KeyStep {
			return api.KeyStep{Index: s.Index, Kind: s.Kind, Key: s.Key, KeyType: s.KeyType}
		}), Seq: k.Seq}
}
