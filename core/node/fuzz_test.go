package node

import (
	"strings"
	"testing"

	ds "github.com/ipfs/go-datastore"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/multiformats/go-base32"
	"google.golang.org/protobuf/proto"
)

// FuzzStoredEvent decodes what the DHT writes to the datastore, as the
// record watchers see it: never a panic, and an event only for a value
// record whose key sits in its namespace.
func FuzzStoredEvent(f *testing.F) {
	key := "/avtr-zone/einstein.avtr"
	value, _ := proto.Marshal(&recpb.Record{Key: []byte(key), Value: []byte("zone bytes")})
	f.Add("/avtr-zone/"+base32.RawStdEncoding.EncodeToString([]byte(key)), value)
	f.Add("/providers/abc/def", []byte{1, 2, 3})
	f.Add("/avtr-zone/!!", value)
	f.Add("/pk/"+base32.RawStdEncoding.EncodeToString([]byte("/pk/x")), []byte{0xff})
	f.Fuzz(func(t *testing.T, k string, value []byte) {
		e, ok := storedEvent(ds.NewKey(k), value)
		if !ok {
			return
		}
		if !strings.HasPrefix(e.Key, "/"+e.Namespace+"/") || e.Size != len(e.Value) {
			t.Fatalf("event %+v from key %q: its key must sit in its namespace and its size match its value", e, k)
		}
	})
}
