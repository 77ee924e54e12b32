package node

import (
	"github.com/libp2p/go-libp2p-kbucket/peerdiversity"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	manet "github.com/multiformats/go-multiaddr/net"

	dht "github.com/libp2p/go-libp2p-kad-dht"

	"github.com/avnode/avnode/core/config"
)

// diversityFilter is kad-dht's routing-table peer-diversity filter: at most
// so many peers of one IP group (a /16 of IPv4, the AS of an IPv6 address)
// in the table, and fewer per common-prefix length. An attacker who places
// nodes next to a name from few networks fills few slots of the tables that
// lookups walk, so an eclipse needs addresses in many networks, not only
// minted keys. Peers reached only over loopback or private addresses are
// let through when exemptLocal is set: they are this machine or this LAN,
// where a test network or an office may run many nodes in one group.
type diversityFilter struct {
	peerdiversity.PeerIPGroupFilter
	h           host.Host
	exemptLocal bool
}

var _ peerdiversity.PeerIPGroupFilter = diversityFilter{}

func newDiversityFilter(h host.Host, cfg *config.Config) diversityFilter {
	return diversityFilter{
		PeerIPGroupFilter: dht.NewRTPeerDiversityFilter(h, cfg.DHT.MaxPeersPerIPGroupPerCpl, cfg.DHT.MaxPeersPerIPGroup),
		h:                 h,
		exemptLocal:       cfg.DHT.DiversityExemptLocal,
	}
}

func (f diversityFilter) Allow(g peerdiversity.PeerGroupInfo) bool {
	if f.exemptLocal && f.onlyLocal(g.Id) {
		return true
	}
	return f.PeerIPGroupFilter.Allow(g)
}

// onlyLocal reports whether every connection to p is over a loopback or
// private address.
func (f diversityFilter) onlyLocal(p peer.ID) bool {
	conns := f.h.Network().ConnsToPeer(p)
	for _, c := range conns {
		a := c.RemoteMultiaddr()
		if !manet.IsIPLoopback(a) && !manet.IsPrivateAddr(a) {
			return false
		}
	}
	return len(conns) > 0
}
