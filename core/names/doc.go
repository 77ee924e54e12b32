// Package names is avnode's name system as pure logic: it parses human names
// such as einstein.avtr, mints and verifies the signed claim that binds a name
// to its owner's identity key (layer 1), signs and verifies the owner's zone of
// typed records (layer 2), and provides the go-libp2p-record validators that a
// DHT uses to accept, refuse and rank those records.
//
// It must not do networking, disk or clock reads of its own: callers pass in
// bytes, keys and the current time (validators take a Now function), so every
// decision here is deterministic and testable. Resolving a name, storing
// records, republishing and keeping the resolver's pinned claims on disk belong
// to the node.
//
// See README.md in this folder for the wire formats, DHT keys, the claim
// selection rule and its threat model.
package names
