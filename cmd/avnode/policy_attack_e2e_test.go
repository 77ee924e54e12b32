package main

// A peer that PUTs records built to make the operator's store_record script
// overrun must not make the node refuse other peers' records. The attacker
// and the honest peer are bare libp2p hosts speaking kad-dht (attacker in
// names_attack_e2e_test.go); the daemon runs a real Lua policy worker.

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// deepSpamFilter is an ordinary store_record filter: Lua patterns over the
// key. On a key of a few labels it takes microseconds; on one of 1,500
// labels its three lazy captures backtrack over every triple of dots, for
// seconds, inside one string.find that no Lua deadline can interrupt.
const deepSpamFilter = `
return {
  store_record = function(r)
    if string.find(r.key, "^/[^/]+/(.-)%.(.-)%.(.-)%.spam$") then
      return {allow = false, reason = "no deep spam names"}
    end
    return nil
  end,
}`

// poisonKey is a 3 KB key of 1,500 labels: what the filter chokes on.
func poisonKey(namespace string) string {
	return "/" + namespace + "/" + strings.Repeat("a.", 1500) + "x"
}

// honestPKRecord is a valid /pk/ record: a fresh public key under the
// key the DHT's public-key validator expects.
func honestPKRecord(t testing.TB) (string, []byte) {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	value, err := crypto.MarshalPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return "/pk/" + string(id), value
}

// One poison PUT every honestPerPoison honest PUTs (the figures: one
// poison every 8 s among about 14 honest PUTs) from another peer: at least
// 99 % of the honest PUTs are stored and the policy worker is never killed.
func TestPoisonPutsLeaveHonestPutsStored(t *testing.T) {
	const rounds, honestPerPoison = 5, 20
	script := writeScript(t, "deep-spam.lua", deepSpamFilter)
	m := metricsAddr(t)
	d := startDaemon(t, filepath.Join(t.TempDir(), "n"), append(append([]string{}, lowWork...),
		"--policy.scripts="+script, "--metrics.listen", m)...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	honest, poisoner := newAttacker(t), newAttacker(t)
	target := honest.connect(ctx, d)
	poisoner.connect(ctx, d)

	stored, refused := 0, 0
	var lastRefusal error
	for round := range rounds {
		for _, ns := range []string{"pk", "x"} {
			if err := poisoner.put(ctx, target, poisonKey(ns), []byte("poison")); err == nil {
				t.Fatalf("round %d: the poison under /%s/ was stored", round, ns)
			}
		}
		for range honestPerPoison {
			key, value := honestPKRecord(t)
			if err := honest.put(ctx, target, key, value); err != nil {
				refused++
				lastRefusal = err
				continue
			}
			stored++
		}
	}
	restarts := metricSum(scrapeMetrics(t, m), "avnode_policy_worker_restarts_total", "")
	total := stored + refused
	t.Logf("honest PUTs stored %d of %d, refused %d; policy worker restarts %v", stored, total, refused, restarts)
	if stored*100 < 99*total {
		t.Fatalf("only %d of %d honest PUTs stored under the poison (last refusal: %v); worker restarts %v\n%s",
			stored, total, lastRefusal, restarts, lastLines(d.log.String(), 20))
	}
	if restarts != 0 {
		t.Fatalf("the poison made the policy worker restart %v times", restarts)
	}
}
