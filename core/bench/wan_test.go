package bench

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestWANSpike(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rep, err := Run(t.Context(), Options{Nodes: 12, WAN: true, FetchMiB: 2, RestartFor: 5 * time.Second, ReadyTrials: 1,
			Dir: t.TempDir(), Progress: testWriter{t}})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rep.Rows {
			t.Logf("%s: %s vs %s ratio %.2f", r.Name, r.Value, r.Base, r.Ratio)
		}
		time.Sleep(2 * time.Second)
	})
}
