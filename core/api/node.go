package api

import (
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// The node as its role plugins see it: the types that cross the one seam
// between the core (core/daemon.RoleNode) and the plugin host (plugins.Node,
// which declares the interface). They are Go values, not control-API JSON.

// RecordChange sets or removes one record of a zone the node owns.
type RecordChange struct {
	Name   string // may carry a sub-label: api.coolblog.code
	Type   string
	Label  string
	Value  string // set only
	Remove bool
}

// FetchOptions say where a fetch may look and whether the node announces
// what it fetched.
type FetchOptions struct {
	From       []peer.ID // only these peers, when set
	NoAnnounce bool      // keep it out of the DHT's provider records
}

// NameUpdate says a name's zone is newer than the node knew.
type NameUpdate struct {
	Name string
	Key  string
	Seq  uint64
}

// StoredRecord says the DHT stored a value record on this node.
type StoredRecord struct {
	Key       string
	Namespace string
	Size      int
}

// Verdict is the node's Lua policies' answer to one hook.
type Verdict struct {
	Decided  bool
	Allow    bool
	Order    []string
	Reason   string
	Script   string
	Fallback bool
}

// RelayLimits bound the node's relay service.
type RelayLimits struct {
	MaxReservations      int
	MaxReservationsPerIP int
	MaxCircuits          int
	CircuitDuration      time.Duration
	CircuitBytes         int64
	ReservationTTL       time.Duration
}

// RelayGate decides who may reserve a relay slot.
type RelayGate func(p peer.ID, addr ma.Multiaddr) (allow bool, reason string)

// RelayStats counts what the relay service did since it started.
type RelayStats struct {
	Running      bool
	Reservations int64
	Refused      int64
	Circuits     int64
}
