package plugins

import (
	"context"
	"io"

	"github.com/ipfs/go-cid"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/avnode/avnode/core/api"
)

// Node is everything the plugin host needs of the node, and the only way
// plugins/ reaches the core: core/daemon.RoleNode implements it, the
// composition root (cmd/avnode) hands it to NewManager, and a test of the
// import layers keeps plugins/ from importing the core's packages. Errors
// carry their kind (core/fault), which the host maps to gRPC codes once.
type Node interface {
	// Host is the node's libp2p host, for the streams roles open and accept.
	Host() host.Host
	// Topic joins a GossipSub topic (once per node).
	Topic(name string) (*pubsub.Topic, error)

	Resolve(ctx context.Context, name string) (*api.Resolution, error)
	Owns(ctx context.Context, name string) bool
	Claim(ctx context.Context, name, key string) error
	ChangeRecord(ctx context.Context, change api.RecordChange) (*api.ZoneInfo, error)
	OfferZone(ctx context.Context, key string, value []byte) (*api.Resolution, error)
	GetRecord(ctx context.Context, key string) ([]byte, error)
	// PutRecord validates a record as the DHT would, then stores it.
	PutRecord(ctx context.Context, key string, value []byte) error
	Provide(ctx context.Context, c cid.Cid) error
	FindProviders(ctx context.Context, c cid.Cid) ([]peer.ID, error)
	// AttestCopy says this node holds a name's version; FindCopies lists
	// the peers that said so.
	AttestCopy(ctx context.Context, name string, seq uint64) error
	FindCopies(ctx context.Context, name string, seq uint64) ([]peer.ID, error)
	WatchNames(f func(api.NameUpdate)) (stop func())
	WatchRecords(f func(api.StoredRecord)) (stop func())

	Fetch(ctx context.Context, target string, opts api.FetchOptions) (*api.GetResult, error)
	// WriteRange writes length bytes of a stored file from offset (0: to
	// the end) to w.
	WriteRange(ctx context.Context, c cid.Cid, offset, length int64, w io.Writer) (int64, error)
	Pin(ctx context.Context, c cid.Cid, reason string) error
	Unpin(ctx context.Context, c cid.Cid) error
	// PinReason is why c is pinned, if it is.
	PinReason(ctx context.Context, c cid.Cid) (reason string, pinned bool, err error)

	// Decide asks the node's Lua policies (hooks the node does not call itself).
	Decide(ctx context.Context, hook string, input any) api.Verdict
	StartRelay(limits api.RelayLimits, gate api.RelayGate) error
	RelayStats() api.RelayStats
	// ConfigJSON is the node's effective config, as JSON.
	ConfigJSON() ([]byte, error)
}
