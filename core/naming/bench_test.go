package naming

import (
	"context"
	"slices"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"

	"github.com/avnode/avnode/core/names"
)

// The name system against bare kad-dht on the same network, in the same run:
//
//	go test -run '^$' -bench . -benchtime 200x ./core/naming/
//
// Each iteration times one bare DHT operation and the matching name-system
// operation back to back, so machine noise hits both; the p50 of each and
// their ratio are reported.

func benchNetwork(b *testing.B) (owner, reader *testNode, zoneKey string) {
	nodes := newTestNetwork(b, 30, nil)
	owner, reader = nodes[0], nodes[17]
	claimName(b, owner, "bench.avtr", "bench")
	ctx := ctxFor(b, time.Minute)
	if _, err := owner.names.ChangeRecord(ctx, RecordChange{Name: "bench.avtr", Type: "HOST", Value: owner.id().String()}); err != nil {
		b.Fatal(err)
	}
	n, _ := names.Parse("bench.avtr")
	return owner, reader, names.ZoneKey(n)
}

func (s *Service) dropCaches() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.zoneCache = map[string]cachedZone{}
	s.addrCache.Purge()
}

func p50(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}

func timeIt(f func() error) (time.Duration, error) {
	start := time.Now()
	err := f()
	return time.Since(start), err
}

// BenchmarkResolve: all three layers, cold cache, against a bare GetValue of
// the zone's key (same quorum); and the warm-cache resolve. The reader knows
// the name's owner from its first resolve.
func BenchmarkResolve(b *testing.B) {
	benchResolve(b, "cold", func(*testNode) {})
}

// BenchmarkResolveFresh: the same by a node that has never seen the name (no
// cache, no owner known): it asks the closest holders who owns it.
func BenchmarkResolveFresh(b *testing.B) {
	benchResolve(b, "fresh", func(reader *testNode) {
		if err := reader.store.Delete(context.Background(), ds.NewKey("/names/pinned/bench.avtr")); err != nil {
			b.Fatal(err)
		}
	})
}

func benchResolve(b *testing.B, kind string, forget func(*testNode)) {
	_, reader, key := benchNetwork(b)
	ctx := context.Background()
	quorum := dhtQuorum(reader.names.cfg.Names.ResolveQuorum)
	var bare, cold, warm []time.Duration
	for b.Loop() {
		d, err := timeIt(func() error { _, err := reader.node.DHT.GetValue(ctx, key, quorum); return err })
		if err != nil {
			b.Fatal(err)
		}
		bare = append(bare, d)
		reader.names.dropCaches()
		forget(reader)
		d, err = timeIt(func() error { _, err := reader.names.Resolve(ctx, "bench.avtr"); return err })
		if err != nil {
			b.Fatal(err)
		}
		cold = append(cold, d)
		d, _ = timeIt(func() error { _, err := reader.names.Resolve(ctx, "bench.avtr"); return err })
		warm = append(warm, d)
	}
	b.ReportMetric(float64(p50(bare).Microseconds()), "bare-getvalue-p50-µs")
	b.ReportMetric(float64(p50(cold).Microseconds()), "resolve-"+kind+"-p50-µs")
	b.ReportMetric(float64(p50(warm).Microseconds()), "resolve-warm-p50-µs")
	b.ReportMetric(float64(p50(cold))/float64(p50(bare)), kind+"/bare")
}

// BenchmarkPublish: a record change (re-sign, store, put to the closest
// peers) against a bare PutValue of an equally sized zone.
func BenchmarkPublish(b *testing.B) {
	owner, _, key := benchNetwork(b)
	ctx := context.Background()
	var bare, publish []time.Duration
	for b.Loop() {
		var value []byte
		d, err := timeIt(func() error {
			_, err := owner.names.ChangeRecord(ctx, RecordChange{Name: "bench.avtr", Type: "TXT", Value: "v"})
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		publish = append(publish, d)
		value = storedOwnZone(b, owner, "bench.avtr")
		d, err = timeIt(func() error { return owner.node.DHT.PutValue(ctx, key, value) })
		if err != nil {
			b.Fatal(err)
		}
		bare = append(bare, d)
	}
	b.ReportMetric(float64(p50(bare).Microseconds()), "bare-putvalue-p50-µs")
	b.ReportMetric(float64(p50(publish).Microseconds()), "publish-p50-µs")
	b.ReportMetric(float64(p50(publish))/float64(p50(bare)), "publish/bare")
}

// storedOwnZone is the signed zone of name that its owner's node tn keeps.
func storedOwnZone(t testing.TB, tn *testNode, name string) []byte {
	n, _ := names.Parse(name)
	data, ok, err := tn.names.get(context.Background(), nameKey(zonePrefix, n))
	if err != nil || !ok {
		t.Fatalf("own zone of %s: %v", name, err)
	}
	return data
}
