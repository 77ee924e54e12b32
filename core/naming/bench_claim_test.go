package naming

import (
	"context"
	"fmt"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
)

// BenchmarkClaim: a whole claim (proof of work at the tests' difficulty,
// holders asked, claim and first zone stored) against a bare PutValue of the
// claim's bytes, back to back in each iteration.
func BenchmarkClaim(b *testing.B) {
	owner, _, _ := benchNetwork(b)
	ctx := context.Background()
	if _, err := owner.keys.Generate("claimer"); err != nil {
		b.Fatal(err)
	}
	var bare, claim []time.Duration
	i := 0
	for b.Loop() {
		i++
		name := fmt.Sprintf("claim%d.avtr", i)
		d, err := timeIt(func() error { _, err := owner.names.Claim(ctx, name, "claimer"); return err })
		if err != nil {
			b.Fatal(err)
		}
		claim = append(claim, d)
		value, _, err := owner.names.get(ctx, ds.NewKey("/pinned/"+name))
		if err != nil || value == nil {
			b.Fatalf("own claim of %s: %v", name, err)
		}
		d, err = timeIt(func() error { return owner.node.DHT.PutValue(ctx, "/avtr-claim/"+name, value) })
		if err != nil {
			b.Fatal(err)
		}
		bare = append(bare, d)
	}
	b.ReportMetric(float64(p50(bare).Microseconds()), "bare-putvalue-p50-µs")
	b.ReportMetric(float64(p50(claim).Microseconds()), "claim-p50-µs")
	b.ReportMetric(float64(p50(claim))/float64(p50(bare)), "claim/bare")
}
