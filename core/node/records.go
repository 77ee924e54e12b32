package node

import (
	"context"
	"hash/fnv"
	"log/slog"
	"sync"

	ds "github.com/ipfs/go-datastore"
	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	record "github.com/libp2p/go-libp2p-record"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-base32"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	"github.com/avnode/avnode/core/watch"
)

// RecordStored tells watchers that the DHT stored a value record on this
// node: a peer's PUT, or this node's own publish.
type RecordStored struct {
	Key       string // the record key, e.g. /avtr-zone/einstein.avtr
	Namespace string // its first path element, e.g. avtr-zone
	Size      int    // bytes of the record's value
	Value     []byte // the record's value; watchers must not change it
}

// StorePolicy decides whether this node stores a record a peer PUTs to it.
// A non-nil error refuses the record: nothing is stored and the peer's PUT
// fails. It runs inside the DHT's stream handler, so it must be quick.
type StorePolicy func(ctx context.Context, from peer.ID, rec *recpb.Record) error

// refusePut is kad-dht's request hook. kad-dht offers no other place that
// sees both the sender of a PUT_VALUE and its record before it is stored;
// clearing the record makes the PUT handler refuse it ("nil record").
// Refusals are logged at most about once a second: a peer can send junk
// PUTs for free, and must not fill the disk with log lines.
func refusePut(policy StorePolicy, log *slog.Logger) func(context.Context, network.Stream, *pb.Message) {
	logs := rate.NewLimiter(rate.Limit(1), 5)
	return func(ctx context.Context, s network.Stream, req *pb.Message) {
		if req.GetType() != pb.Message_PUT_VALUE || req.GetRecord() == nil {
			return
		}
		if err := policy(ctx, s.Conn().RemotePeer(), req.GetRecord()); err != nil {
			if logs.Allow() {
				log.Info("record refused by store policy", "key", string(req.GetRecord().GetKey()),
					"from", s.Conn().RemotePeer(), "reason", err)
			}
			req.Record = nil
		}
	}
}

// RecordShaper trims what a value record carries beyond the record schema
// (protobuf keeps fields it does not know, and kad-dht stores them as they
// came) as it is written: rec is the record being stored, held the one it
// replaces under the same key, nil if none. It may change rec's unknown
// fields only. It runs with the key locked against other writes, so it can
// merge what the two carry without a concurrent write coming in between.
type RecordShaper func(ctx context.Context, rec, held *recpb.Record)

// notifyingStore wraps the DHT's datastore: it shapes every value record
// written to it (shape, when set) and reports it. kad-dht stores value
// records under /<namespace>/<base32 key>.
type notifyingStore struct {
	ds.Batching
	watchers *watch.List[RecordStored]
	shape    RecordShaper
	locks    [64]sync.Mutex // by key: a shaped write reads, then writes
}

func (s *notifyingStore) Put(ctx context.Context, key ds.Key, value []byte) error {
	if s.shape != nil && isValueKey(key) {
		lock := &s.locks[fnv32(key.String())%uint32(len(s.locks))]
		lock.Lock()
		defer lock.Unlock()
		value = s.shaped(ctx, key, value)
	}
	if err := s.Batching.Put(ctx, key, value); err != nil {
		return err
	}
	if e, ok := storedEvent(key, value); ok {
		s.watchers.Emit(e)
	}
	return nil
}

// shaped is value, a marshaled record, after shape; value as it came when
// it is no record (kad-dht's own checks refuse it when it reads it).
func (s *notifyingStore) shaped(ctx context.Context, key ds.Key, value []byte) []byte {
	var rec recpb.Record
	if proto.Unmarshal(value, &rec) != nil {
		return value
	}
	var held *recpb.Record
	if b, err := s.Batching.Get(ctx, key); err == nil {
		held = new(recpb.Record)
		if proto.Unmarshal(b, held) != nil {
			held = nil
		}
	}
	s.shape(ctx, &rec, held)
	out, err := proto.Marshal(&rec)
	if err != nil {
		return value
	}
	return out
}

// isValueKey reports whether key is where kad-dht keeps a value record.
func isValueKey(key ds.Key) bool { return len(key.List()) == 2 }

func fnv32(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

// storedEvent decodes a value record write; provider records and anything
// else the DHT keeps are not value records and are skipped.
func storedEvent(key ds.Key, value []byte) (RecordStored, bool) {
	parts := key.List()
	if len(parts) != 2 {
		return RecordStored{}, false
	}
	raw, err := base32.RawStdEncoding.DecodeString(parts[1])
	if err != nil {
		return RecordStored{}, false
	}
	ns, _, err := record.SplitKey(string(raw))
	if err != nil || ns != parts[0] {
		return RecordStored{}, false
	}
	var rec recpb.Record
	if err := proto.Unmarshal(value, &rec); err != nil {
		return RecordStored{}, false
	}
	return RecordStored{Key: string(raw), Namespace: ns, Size: len(rec.GetValue()), Value: rec.GetValue()}, true
}

// WatchRecords calls f for every value record stored on this node until the
// returned cancel is called. f must not block.
func (n *Node) WatchRecords(f func(RecordStored)) (cancel func()) { return n.records.Add(f) }
