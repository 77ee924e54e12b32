package node

import (
	"testing"

	ds "github.com/ipfs/go-datastore"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/multiformats/go-base32"
	"google.golang.org/protobuf/proto"
)

func TestStoredEventDecodesValueRecords(t *testing.T) {
	key := "/avtr-zone/einstein.avtr"
	value, _ := proto.Marshal(&recpb.Record{Key: []byte(key), Value: []byte("zone bytes")})
	dsKey := ds.NewKey("/avtr-zone/" + base32.RawStdEncoding.EncodeToString([]byte(key)))
	e, ok := storedEvent(dsKey, value)
	if !ok || e.Key != key || e.Namespace != "avtr-zone" || e.Size != len("zone bytes") {
		t.Fatalf("storedEvent = %+v, %v", e, ok)
	}
	for name, k := range map[string]ds.Key{
		"provider record":    ds.NewKey("/providers/abc/def"),
		"not base32":         ds.NewKey("/avtr-zone/!!"),
		"namespace mismatch": ds.NewKey("/avtr-claim/" + base32.RawStdEncoding.EncodeToString([]byte(key))),
	} {
		if e, ok := storedEvent(k, value); ok {
			t.Errorf("%s: reported as %+v", name, e)
		}
	}
	if e, ok := storedEvent(dsKey, []byte{0xff, 0xff}); ok {
		t.Errorf("undecodable value reported as %+v", e)
	}
}
