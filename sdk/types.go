package sdk

import "time"

// The types Host takes and returns. They are plain Go values: a role never
// sees the wire between the SDK and the node, and a test can build them
// literally (see sdk/sdktest).

// Resolution is what a name resolves to: its owner, its zone and who hosts
// its content.
type Resolution struct {
	// Name is the name resolved, e.g. einstein.avtr.
	Name string
	// Key is the name's current key (k51…, or k2… for a hybrid key), which
	// signs the zone; it differs from the claim's key after a rotation.
	Key string
	// KeyType is "Ed25519" or "Ed25519+ML-DSA-65" (post-quantum hybrid).
	KeyType string
	// Rotations counts the key changes since the name was claimed.
	Rotations int
	// Seq is the zone's version; a newer zone has a higher Seq.
	Seq uint64
	// Expires is when the zone stops being valid; zero if it does not say.
	Expires time.Time
	// Records are the zone's records.
	Records []ZoneRecord
	// Hosts are the peers that serve the name's content.
	Hosts []PeerInfo
	// Root is the CID of the name's content; empty if it has none.
	Root string
	// SignedZone and SignedClaim are the owner's signed zone and claim as
	// stored in the DHT: a mirror keeps them to put them again while the
	// owner is away.
	SignedZone, SignedClaim []byte
	// CopiesWanted is the owner's replication target (TXT copies=N in the
	// zone), 0 if none.
	CopiesWanted int
}

// ZoneRecord is one record of a zone: Type (TXT, SAT, …), the Label it is
// under ("" for the name itself) and its Value.
type ZoneRecord struct {
	Type, Label, Value string
}

// PeerInfo is a peer and the addresses it is known at.
type PeerInfo struct {
	ID    string
	Addrs []string
}

// Zone is a zone as the node published it after a change.
type Zone struct {
	Name    string
	Seq     uint64
	Records []ZoneRecord
}

// Fetched is what Fetch brought into the node's store. Sizes are verified:
// the node checked every block against what its parent declares.
type Fetched struct {
	// Root is the CID the target started from (a name's root, or the CID
	// given); CID is the CID at the target's path.
	Root, CID string
	// Kind is "file" or "dir".
	Kind string
	// Size is the content's size in bytes.
	Size int64
	// BlocksFetched counts the blocks that came from the network, not the store.
	BlocksFetched int
	// Entries lists a directory's entries; nil for a file.
	Entries []DirEntry
}

// Entry returns the directory entry called name, or false.
func (f Fetched) Entry(name string) (DirEntry, bool) {
	for _, e := range f.Entries {
		if e.Name == name {
			return e, true
		}
	}
	return DirEntry{}, false
}

// DirEntry is one entry of a fetched directory.
type DirEntry struct {
	Name, CID string
	// Kind is "file" or "dir".
	Kind string
	Size int64
}

// Event is something that happened on the node, e.g. a peer.connected or a
// name.updated, with its attributes (name, seq, peer, key, …).
type Event struct {
	Kind  string
	Time  time.Time
	Attrs map[string]string
}

// TopicMessage is a message on a pub/sub topic.
type TopicMessage struct {
	Topic string
	Data  []byte
	// From is the publisher's peer ID: messages are signed by it.
	From string
	// Seqno is the publisher's sequence number of the message.
	Seqno []byte
}

// Verdict is the node's Lua policies' answer to Decide.
type Verdict struct {
	// Decided false means no script had an opinion: apply the role's own
	// default. Allow, Order and Reason mean something only when it is true.
	Decided bool
	Allow   bool
	// Order is a ranking the script returned, for hooks that rank.
	Order  []string
	Reason string
	// Script is the script that decided.
	Script string
	// Fallback is true when the hook failed or overran and its configured
	// fallback was taken.
	Fallback bool
}

// RelayLimits are the limits of the node's circuit relay service. A zero
// MaxReservationsPerIP or ReservationTTL takes libp2p's default (8, 1 h).
type RelayLimits struct {
	// MaxReservations is the number of slots on this relay, all peers together.
	MaxReservations int
	// MaxReservationsPerIP is the number of slots one IP address may hold.
	MaxReservationsPerIP int
	// MaxCircuits bounds the open relayed connections per peer.
	MaxCircuits int
	// CircuitDuration bounds one relayed connection's life (whole seconds).
	CircuitDuration time.Duration
	// CircuitBytes bounds one relayed connection's bytes in each direction.
	CircuitBytes int64
	// ReservationTTL is how long a reservation lasts (whole seconds).
	ReservationTTL time.Duration
}

// RelayStats are the relay service's counters since it started.
type RelayStats struct {
	Running bool
	// Reservations counts the accepted reservations, renewals included.
	Reservations int64
	// Refused counts the reservations the relay_reserve hook refused.
	Refused int64
	// Circuits counts the relayed connections opened.
	Circuits int64
}
