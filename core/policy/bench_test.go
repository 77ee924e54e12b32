package policy

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// benchRecord is what the node would hand store_record.
type benchRecord struct {
	Key       string `json:"key"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Type      string `json:"type"`
	Size      int    `json:"size"`
	Sequence  uint64 `json:"sequence"`
	Publisher string `json:"publisher"`
	OwnerKey  string `json:"owner_key"`
}

var benchInput = benchRecord{
	Key: "/avtr-zone/einstein.avtr", Namespace: "avtr-zone", Name: "einstein.avtr", Type: "zone",
	Size: 1024, Sequence: 12, Publisher: "12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq",
	OwnerKey: "k51qzi5uqu5dlvj2baxnqndepeb86cbk3ng7n3i46uzyxzyqj2xjonzllnv0v8",
}

// BenchmarkDecide is the cost of one hook call through the worker, with the
// shipped deny-names.lua deciding store_record for a name it lets through
// (every pattern checked). go-default is the same decision in plain Go:
// the ratio is what a policy script costs on the request path.
func BenchmarkDecide(b *testing.B) {
	p := start(b, Options{Scripts: []string{filepath.Join(scriptsDir, "deny-names.lua")}, Budget: time.Second})
	ctx := context.Background()
	b.Run("worker", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if v := p.Decide(ctx, HookStoreRecord, benchInput); v.Decided || v.Fallback {
				b.Fatalf("%+v", v)
			}
		}
	})
	b.Run("worker-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if v := p.Decide(ctx, HookStoreRecord, benchInput); v.Decided || v.Fallback {
					b.Errorf("%+v", v)
					return
				}
			}
		})
	})
	b.Run("no-script-has-hook", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p.Decide(ctx, HookRelayReserve, benchInput)
		}
	})
	b.Run("go-default", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if allow, decided := goDenyNames(&benchInput); decided || allow {
				b.Fatal("decided")
			}
		}
	})
}

// goDenyNames is deny-names.lua's store_record written in Go.
func goDenyNames(r *benchRecord) (allow, decided bool) {
	if r.Name == "" {
		return false, false
	}
	name := strings.ToLower(r.Name)
	for _, pattern := range []string{"*.spam", "casino-*.*"} {
		if globMatch(pattern, name) && !globMatch("not.spam", name) {
			return false, true
		}
	}
	return false, false
}

// BenchmarkEngineCall is the in-worker part of a call: decoding the input,
// running the script's top level and the hook in a pooled Lua state.
func BenchmarkEngineCall(b *testing.B) {
	src, _, err := readScripts([]string{filepath.Join(scriptsDir, "deny-names.lua")})
	if err != nil {
		b.Fatal(err)
	}
	e := newEngine(func(string, string, string) {}, 1)
	if res := e.load(context.Background(), src, time.Second); res[0].Error != "" {
		b.Fatal(res[0].Error)
	}
	input, _ := json.Marshal(benchInput)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	b.ReportAllocs()
	for b.Loop() {
		if res := e.call(ctx, HookStoreRecord, input, time.Hour); res.Decided || res.Err != "" {
			b.Fatalf("%+v", res)
		}
	}
}
