package main

// Peers that PUT records built to make the operator's store_record script
// overrun must not make the node refuse other peers' records. The attacker
// and the honest peer are bare libp2p hosts speaking kad-dht (attacker in
// names_attack_e2e_test.go); the daemon runs a real Lua policy worker.

import (
	"context"
	"fmt"
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

// poisonRun is one daemon with a store_record script, a poisoner and an
// honest bare host connected to it.
type poisonRun struct {
	t                testing.TB
	d                *proc
	metrics          string
	ctx              context.Context
	target           peer.ID
	honest, poisoner *attacker
	stored, refused  int
	lastRefusal      error
}

func startPoisonRun(t *testing.T, script string) *poisonRun {
	m := metricsAddr(t)
	d := startDaemon(t, filepath.Join(t.TempDir(), "n"), append(append([]string{}, lowWork...),
		"--policy.scripts="+writeScript(t, "filter.lua", script), "--metrics.listen", m)...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	r := &poisonRun{t: t, d: d, metrics: m, ctx: ctx, honest: newAttacker(t), poisoner: newAttacker(t)}
	r.target = r.honest.connect(ctx, d)
	r.poisoner.connect(ctx, d)
	return r
}

// honestPuts PUTs n valid records from the honest host, counting the stored.
func (r *poisonRun) honestPuts(n int) {
	for range n {
		key, value := honestPKRecord(r.t)
		if err := r.honest.put(r.ctx, r.target, key, value); err != nil {
			r.refused++
			r.lastRefusal = err
			continue
		}
		r.stored++
	}
}

func (r *poisonRun) metric(name string) float64 {
	return metricSum(scrapeMetrics(r.t, r.metrics), name, "")
}

// checkHonestStored fails unless 99 % of the honest PUTs were stored.
func (r *poisonRun) checkHonestStored() float64 {
	r.t.Helper()
	restarts := r.metric("avnode_policy_worker_restarts_total")
	total := r.stored + r.refused
	r.t.Logf("honest PUTs stored %d of %d, refused %d; policy worker restarts %v", r.stored, total, r.refused, restarts)
	if r.stored*100 < 99*total {
		r.t.Fatalf("only %d of %d honest PUTs stored under the poison (last refusal: %v); worker restarts %v\n%s",
			r.stored, total, r.lastRefusal, restarts, lastLines(r.d.log.String(), 20))
	}
	return restarts
}

// One poison PUT every honestPerPoison honest PUTs (the figures: one
// poison every 8 s among about 14 honest PUTs) from another peer: at least
// 99 % of the honest PUTs are stored, and the policy worker never sees a
// poison (its key is invalid), so it is never restarted.
func TestPoisonPutsLeaveHonestPutsStored(t *testing.T) {
	const rounds, honestPerPoison = 5, 20
	r := startPoisonRun(t, deepSpamFilter)
	for round := range rounds {
		for _, ns := range []string{"pk", "x"} {
			if err := r.poisoner.put(r.ctx, r.target, poisonKey(ns), []byte("poison")); err == nil {
				t.Fatalf("round %d: the poison under /%s/ was stored", round, ns)
			}
		}
		r.honestPuts(honestPerPoison)
	}
	if restarts := r.checkHonestStored(); restarts != 0 {
		t.Fatalf("the poison made the policy worker restart %v times", restarts)
	}
	if !strings.Contains(r.d.log.String(), "is not valid, so no policy was asked") {
		t.Fatalf("the poison's refusal does not say why:\n%s", lastLines(r.d.log.String(), 20))
	}
}

// slowOnSomeNames is a filter with a slow spot that valid records reach: on a
// name of 68 characters its six lazy captures try every way to cut it in six,
// for seconds inside one string.find.
const slowOnSomeNames = `
return {
  store_record = function(r)
    if r.name and string.find(r.name, "^(.-)(.-)(.-)(.-)(.-)(.-)%-spam%.") then
      return {allow = false, reason = "no spam names"}
    end
    return nil
  end,
}`

// Valid claims that stick the worker in the script, one every
// honestPerPoison honest PUTs once the spare is back: each costs its own
// call only (the spare takes over), the poisoner's peer is cut off after
// its budget of failures, and 99 % of the honest PUTs are stored.
func TestSlowValidRecordsCostOnlyTheirPeer(t *testing.T) {
	const rounds, honestPerPoison = 6, 20
	r := startPoisonRun(t, slowOnSomeNames)
	spareUp := func() error {
		if n := r.metric("avnode_policy_spare_workers"); n < 1 {
			return fmt.Errorf("%v spare workers", n)
		}
		return nil
	}
	for round := range rounds {
		eventually(t, 30*time.Second, "a spare policy worker is up", spareUp)
		_, claim := mintClaim(t, fmt.Sprintf("%s%03d.avtr", strings.Repeat("a", 60), round))
		value, err := claim.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := r.poisoner.put(r.ctx, r.target, claim.Key(), value); err == nil {
			t.Fatalf("round %d: a claim whose call overran was stored", round)
		}
		r.honestPuts(honestPerPoison)
	}
	// Three failures are the poisoner's budget: its later claims never reach
	// the worker, so no more than three workers were replaced.
	if restarts := r.checkHonestStored(); restarts < 1 || restarts > 3 {
		t.Fatalf("%d claims that overrun replaced %v workers; want 1 to 3, the poisoner's budget", rounds, restarts)
	}
}
