package names

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkMintClaim measures minting at several difficulties; each extra bit
// doubles the expected time. README.md quotes the numbers for
// DefaultDifficulty. Run: go test -run=^$ -bench=MintClaim -benchtime=20x ./core/names/
func BenchmarkMintClaim(b *testing.B) {
	owner := testKey(b, 1)
	name := mustParse(b, "einstein.avtr")
	for _, d := range []int{12, 16, 20} {
		b.Run(fmt.Sprintf("difficulty=%d", d), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				// A new creation time per op gives a new puzzle each time.
				if _, err := MintClaim(context.Background(), name, owner, d, testNow.Add(time.Duration(i)*time.Second)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMintClaimDefault mints at DefaultDifficulty; slow, run it with
// -benchtime=10x or so.
func BenchmarkMintClaimDefault(b *testing.B) {
	owner := testKey(b, 1)
	name := mustParse(b, "einstein.avtr")
	for i := 0; b.Loop(); i++ {
		if _, err := MintClaim(context.Background(), name, owner, DefaultDifficulty, testNow.Add(time.Duration(i)*time.Second)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPowHash is the cost of one nonce on one core.
func BenchmarkPowHash(b *testing.B) {
	var seed [32]byte
	for i := uint64(0); b.Loop(); i++ {
		_ = powHash(seed, i)
	}
}

func BenchmarkValidateClaim(b *testing.B) {
	c := mint(b, "einstein.avtr", testKey(b, 1))
	value := marshal(b, c)
	v := testValidator()
	for b.Loop() {
		if err := v.Validate(c.Key(), value); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateZone(b *testing.B) {
	owner := testKey(b, 1)
	c := mint(b, "coolblog.code", owner)
	value := sign(b, testZone(b, c, 1, Record{Type: TypeROOT, Value: testCID}, Record{Type: TypeHOST, Value: testPeerID(b, 40)}), owner)
	v := testZoneValidator()
	for b.Loop() {
		if err := v.Validate("/avtr-zone/coolblog.code", value); err != nil {
			b.Fatal(err)
		}
	}
}
