package main

// A name's key changes across real daemons on loopback: an owner rotates to
// a hybrid key and pinned resolvers follow, the old key stolen afterwards
// takes nothing; a thief holding the main key rotates the name to itself and
// the owner's recovery key takes it back for good. The thief of the old key
// is a bare go-libp2p host (the attacker of names_attack_e2e_test.go) that
// signs with core/names, the published format.

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/idkey"
	"github.com/avnode/avnode/core/names"
	"github.com/avnode/avnode/core/repo"
)

// Key types as `key gen --json`, `key ls --json`, `resolve --json` and
// `key recovery show --json` print them.
const (
	keyTypeEd25519 = "Ed25519"
	keyTypeHybrid  = "Ed25519+ML-DSA-65"
)

// generatedKey is what `key gen --json` and `key ls --json` print of a key.
type generatedKey struct {
	Name string `json:"name"`
	Type string `json:"type"`
	ID   string `json:"id"`
}

// recoveryStep is one step of a name's key chain in `key recovery show --json`.
type recoveryStep struct {
	Index   int    `json:"index"`
	Kind    string `json:"kind"`
	Key     string `json:"key"`
	KeyType string `json:"key_type"`
}

// recoveryInfo is what `key recovery show --json` prints.
type recoveryInfo struct {
	Name     string         `json:"name"`
	Key      string         `json:"key"`
	KeyType  string         `json:"key_type"`
	Recovery string         `json:"recovery"`
	Steps    []recoveryStep `json:"steps"`
	Seq      uint64         `json:"seq"`
}

// rotateKey runs `key rotate NAME --to toKey --json` on d and checks what
// it prints: the name's key chain, now ending at step `step`, a rotation to
// key ID to, published at some sequence.
func rotateKey(t testing.TB, d *proc, name, toKey, from, to string, step int) {
	t.Helper()
	var got recoveryInfo
	cliJSON(t, d.repo, &got, "key", "rotate", name, "--to", toKey)
	last := recoveryStep{}
	if len(got.Steps) > 0 {
		last = got.Steps[len(got.Steps)-1]
	}
	if got.Name != name || got.Key != to || len(got.Steps) != step || last.Kind != "rotate" || last.Key != to || got.Seq == 0 {
		t.Fatalf("key rotate %s --to %s (from %s) on %s: %+v; want the chain to end at step %d, a rotation to %s, with a seq", name, toKey, from, d.repo, got, step, to)
	}
}

// keyResolution is the part of `resolve --json` that says whose the name is.
type keyResolution struct {
	Key       string           `json:"key"`
	KeyType   string           `json:"key_type"`
	Rotations int              `json:"rotations"`
	Seq       uint64           `json:"seq"`
	Records   []api.RecordInfo `json:"records"`
}

func (r keyResolution) String() string {
	return fmt.Sprintf("key %s (%s) after %d rotations, seq %d, TXT %q", r.Key, r.KeyType, r.Rotations, r.Seq, recordValues(r.Records, "TXT"))
}

// genKey runs `key gen NAME [--type typ] --json` on d's repo.
func genKey(t testing.TB, d *proc, name, typ string) generatedKey {
	t.Helper()
	args := []string{"key", "gen", name}
	if typ != "" {
		args = append(args, "--type", typ)
	}
	var k generatedKey
	cliJSON(t, d.repo, &k, args...)
	if k.Name != name || k.ID == "" {
		t.Fatalf("key gen %s: %+v", name, k)
	}
	return k
}

// resolveKeyed resolves name on d; a failed resolve is an error, not fatal,
// so it can sit in an eventually while a name changes hands.
func resolveKeyed(t testing.TB, d *proc, name string) (keyResolution, error) {
	t.Helper()
	var res keyResolution
	r := cli(t, d.repo, nil, "resolve", name, "--json")
	if r.code != 0 {
		return res, fmt.Errorf("resolve %s on %s: exit %d: %s", name, d.repo, r.code, strings.TrimSpace(r.stderr))
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		return res, fmt.Errorf("resolve %s --json on %s: %v\n%s", name, d.repo, err, r.stdout)
	}
	return res, nil
}

// waitResolves waits until d resolves name to key, with rotations steps in
// its chain and a TXT record txt.
func waitResolves(t testing.TB, d *proc, name, key, keyType string, rotations int, txt string) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("%s resolves %s to %s with TXT %q", d.repo, name, key, txt), func() error {
		res, err := resolveKeyed(t, d, name)
		if err != nil {
			return err
		}
		if res.Key != key || res.KeyType != keyType || res.Rotations != rotations || !containsString(recordValues(res.Records, "TXT"), txt) {
			return fmt.Errorf("%s", res)
		}
		return nil
	})
}

// storedKeyPath is where d's keystore keeps the identity key keyName.
func storedKeyPath(d *proc, keyName string) string {
	return filepath.Join(d.repo, repo.KeystoreDir, keyName+".key")
}

// readStoredKey reads an identity key straight from d's keystore file, as
// someone who copied the file would.
func readStoredKey(t testing.TB, d *proc, keyName string) crypto.PrivKey {
	t.Helper()
	data, err := os.ReadFile(storedKeyPath(d, keyName))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := idkey.UnmarshalPrivate(data)
	if err != nil {
		t.Fatalf("key file %s: %v", storedKeyPath(d, keyName), err)
	}
	return priv
}

// commitmentOf is the recovery commitment to d's key keyName as `key
// recovery show` prints it: sha256:<hex>.
func commitmentOf(t testing.TB, d *proc, keyName string) string {
	t.Helper()
	c, err := names.RecoveryCommitment(readStoredKey(t, d, keyName).GetPublic())
	if err != nil {
		t.Fatal(err)
	}
	return "sha256:" + hex.EncodeToString(c)
}

// refusalLogged says whether a node's log has a refused record naming key.
func refusalLogged(log, key string) bool {
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "record refused") && strings.Contains(line, key) {
			return true
		}
	}
	return false
}

// An owner claims a name with an Ed25519 key, five resolvers pin it, and the
// owner rotates to a hybrid key and changes its zone: every resolver follows
// to the new key. Then the old key is stolen: its thief signs a zone of the
// old chain with a far higher sequence and PUTs it to every node with
// kad-dht's PUT_VALUE. No node stores it, each counts and logs the refusal,
// the resolvers keep answering with the new key's records and follow its
// next change.
func TestRotatedNameIsFollowedByPinnedResolvers(t *testing.T) {
	t.Parallel()
	const name = "alice-rot.avtr"
	dir := t.TempDir()
	nodes, metrics := startDaemons(t, dir, 7, nil, "--names.resolve_timeout=5s")
	owner, resolvers := nodes[1], nodes[2:]
	for _, d := range nodes {
		waitPeers(t, d, 2)
	}
	alice := genKey(t, owner, "alice", "")
	if alice.Type != keyTypeEd25519 {
		t.Fatalf("key gen alice without --type: %+v; want an %s key", alice, keyTypeEd25519)
	}
	var claim api.ClaimResult
	cliJSON(t, owner.repo, &claim, "name", "claim", name, "--key", "alice")
	if claim.Key != alice.ID {
		t.Fatalf("claim: %+v; want key %s", claim, alice.ID)
	}
	// A 1 s TTL lets resolvers see each change quickly.
	mustCLI(t, owner.repo, "record", "set", name, "TXT", "before-rotation", "--ttl", "1s")
	for _, d := range resolvers {
		waitResolves(t, d, name, alice.ID, keyTypeEd25519, 0, "before-rotation")
	}

	// The owner rotates to a hybrid key; the zone is signed by it from now on.
	alice2 := genKey(t, owner, "alice2", "hybrid")
	if alice2.Type != keyTypeHybrid || alice2.ID == alice.ID {
		t.Fatalf("key gen alice2 --type hybrid: %+v", alice2)
	}
	var keys []generatedKey
	cliJSON(t, owner.repo, &keys, "key", "ls")
	if len(keys) != 2 || keys[0] != alice || keys[1] != alice2 {
		t.Fatalf("key ls: %+v; want %+v and %+v", keys, alice, alice2)
	}
	rotateKey(t, owner, name, "alice2", alice.ID, alice2.ID, 1)
	var chain recoveryInfo
	cliJSON(t, owner.repo, &chain, "key", "recovery", "show", name)
	wantStep := recoveryStep{Index: 1, Kind: "rotate", Key: alice2.ID, KeyType: keyTypeHybrid}
	if chain.Name != name || chain.Key != alice2.ID || chain.KeyType != keyTypeHybrid || chain.Recovery != "" ||
		len(chain.Steps) != 1 || chain.Steps[0] != wantStep {
		t.Fatalf("key recovery show after the rotation: %+v; want the one step %+v and no recovery key", chain, wantStep)
	}
	mustCLI(t, owner.repo, "record", "set", name, "TXT", "after-rotation", "--ttl", "1s")
	for _, d := range resolvers {
		waitResolves(t, d, name, alice2.ID, keyTypeHybrid, 1, "after-rotation")
	}

	// The old key is stolen: its file, copied out of the owner's keystore.
	oldKey := readStoredKey(t, owner, "alice")
	if names.KeyID(oldKey.GetPublic()) != alice.ID {
		t.Fatalf("the key file of alice is key %s, not %s", names.KeyID(oldKey.GetPublic()), alice.ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	mallory := newAttacker(t)
	ids := mallory.connectAll(ctx, nodes)
	n, _ := names.Parse(name)
	claimKey, zoneKey := names.ClaimKey(n), names.ZoneKey(n)
	var highest uint64
	for i, id := range ids {
		eventually(t, 30*time.Second, nodes[i].repo+" holds the rotated zone", func() error {
			z, err := names.DecodeZone(mallory.get(ctx, id, zoneKey))
			if err != nil {
				return err
			}
			if got := names.KeyID(z.Owner); got != alice2.ID || len(z.Rotations) != 1 {
				return fmt.Errorf("zone by %s after %d rotations", got, len(z.Rotations))
			}
			highest = max(highest, z.Seq)
			return nil
		})
	}
	c, err := names.DecodeClaim(mallory.get(ctx, ids[0], claimKey))
	if err != nil {
		t.Fatalf("node 0's claim of %s: %v", name, err)
	}
	if names.KeyID(c.Owner) != alice.ID {
		t.Fatalf("node 0's claim of %s is by %s, want %s", name, names.KeyID(c.Owner), alice.ID)
	}
	const pwned = "pwned-by-the-old-key"
	old := &names.Zone{Name: c.Name, Seq: highest + 1<<40, Expiry: time.Now().Add(24 * time.Hour), TTL: time.Minute, Claim: c,
		Records: []names.Record{{Type: names.TypeTXT, Value: pwned}}}
	forged, err := old.Sign(oldKey)
	if err != nil {
		t.Fatalf("signing a zone of the old chain with the old key: %v", err)
	}

	refusedBefore := make([]float64, len(nodes))
	for i := range nodes {
		refusedBefore[i] = metricSum(scrapeMetrics(t, metrics[i]), "avnode_names_refused_total", "")
	}
	for i, id := range ids {
		if err := mallory.put(ctx, id, zoneKey, forged); err == nil {
			t.Errorf("node %d stored the old key's zone", i)
		}
	}
	attacked := time.Now()
	for i, id := range ids {
		z, err := names.DecodeZone(mallory.get(ctx, id, zoneKey))
		if err != nil || names.KeyID(z.Owner) != alice2.ID || z.Seq >= old.Seq {
			t.Errorf("node %d serves another zone after the attack: %v", i, err)
		} else {
			for _, r := range z.Records {
				if r.Value == pwned {
					t.Errorf("node %d serves the thief's TXT", i)
				}
			}
		}
		if after := metricSum(scrapeMetrics(t, metrics[i]), "avnode_names_refused_total", ""); after <= refusedBefore[i] {
			t.Errorf("node %d counted no refusal for the old key's zone (avnode_names_refused_total %v before, %v after)", i, refusedBefore[i], after)
		}
		if log := nodes[i].log.String(); !refusalLogged(log, alice.ID) {
			t.Errorf("node %d's log does not say it refused a record by the old key %s:\n%s", i, alice.ID, lastLines(log, 10))
		}
	}

	// Over several TTLs, every resolver answers with the new key's zone.
	for round := 0; round < 3 || time.Since(attacked) < 4*time.Second; round++ {
		for _, d := range resolvers {
			res, err := resolveKeyed(t, d, name)
			txt := recordValues(res.Records, "TXT")
			if err != nil || res.Key != alice2.ID || res.KeyType != keyTypeHybrid || res.Rotations != 1 ||
				!containsString(txt, "after-rotation") || containsString(txt, pwned) {
				t.Fatalf("round %d after the attack: %s: %s, %v; want key %s", round, d.repo, res, err, alice2.ID)
			}
		}
	}
	// The owner still changes its zone, and every resolver follows.
	mustCLI(t, owner.repo, "record", "set", name, "TXT", "after-attack", "--ttl", "1s")
	for _, d := range resolvers {
		waitResolves(t, d, name, alice2.ID, keyTypeHybrid, 1, "after-attack")
	}
}

// An owner claims a name with a main key committing to a recovery key. A
// thief copies the main key's file, rotates the name to a key of its own and
// publishes: resolvers follow the thief, since the main key signed that
// rotation. The owner recovers the name with the recovery key to a fresh
// key: every resolver follows the owner, and what the thief signs
// afterwards reaches nobody.
func TestThiefIsUndoneByTheRecoveryKey(t *testing.T) {
	t.Parallel()
	const name = "robbed.avtr"
	dir := t.TempDir()
	nodes, _ := startDaemons(t, dir, 5, nil, "--names.resolve_timeout=5s")
	owner, thief := nodes[1], nodes[2]
	resolvers := []*proc{nodes[0], nodes[3], nodes[4]}
	for _, d := range nodes {
		waitPeers(t, d, 2)
	}
	mainKey := genKey(t, owner, "main", "ed25519")
	if mainKey.Type != keyTypeEd25519 {
		t.Fatalf("key gen main --type ed25519: %+v", mainKey)
	}
	rescue := genKey(t, owner, "rescue", "")
	fresh := genKey(t, owner, "fresh", "")
	var claim api.ClaimResult
	cliJSON(t, owner.repo, &claim, "name", "claim", name, "--key", "main", "--recovery-key", "rescue")
	if claim.Key != mainKey.ID {
		t.Fatalf("claim: %+v; want key %s", claim, mainKey.ID)
	}
	commitment := commitmentOf(t, owner, "rescue")
	var chain recoveryInfo
	cliJSON(t, owner.repo, &chain, "key", "recovery", "show", name)
	if chain.Key != mainKey.ID || chain.KeyType != keyTypeEd25519 || chain.Recovery != commitment || len(chain.Steps) != 0 {
		t.Fatalf("key recovery show after the claim: %+v; want key %s, recovery %s (key %s), no steps", chain, mainKey.ID, commitment, rescue.ID)
	}
	mustCLI(t, owner.repo, "record", "set", name, "TXT", "owner-1", "--ttl", "1s")
	for _, d := range resolvers {
		waitResolves(t, d, name, mainKey.ID, keyTypeEd25519, 0, "owner-1")
	}

	// The main key is stolen: its file lands in the thief's keystore.
	stolen, err := os.ReadFile(storedKeyPath(owner, "main"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(storedKeyPath(thief, "stolen"), stolen, 0o600); err != nil {
		t.Fatal(err)
	}
	thiefKey := genKey(t, thief, "thief", "")
	waitResolves(t, thief, name, mainKey.ID, keyTypeEd25519, 0, "owner-1")
	rotateKey(t, thief, name, "thief", mainKey.ID, thiefKey.ID, 1)
	mustCLI(t, thief.repo, "record", "set", name, "TXT", "thief", "--ttl", "1s")
	for _, d := range resolvers {
		waitResolves(t, d, name, thiefKey.ID, keyTypeEd25519, 1, "thief")
	}

	// The owner recovers the name with the recovery key, to a fresh key.
	mustCLI(t, owner.repo, "name", "recover", name, "--recovery-key", "rescue", "--to", "fresh")
	mustCLI(t, owner.repo, "record", "set", name, "TXT", "owner-2", "--ttl", "1s")
	cliJSON(t, owner.repo, &chain, "key", "recovery", "show", name)
	// Without --after the recovery goes on top of a chain the owner's node
	// knows: after the thief's step (two steps), or after the last step it
	// signed itself, here the claim (one step, overruling the thief's).
	steps := len(chain.Steps)
	wantLast := recoveryStep{Index: steps, Kind: "recover", Key: fresh.ID, KeyType: keyTypeEd25519}
	thiefStep := recoveryStep{Index: 1, Kind: "rotate", Key: thiefKey.ID, KeyType: keyTypeEd25519}
	if chain.Key != fresh.ID || chain.Recovery != commitment || steps < 1 || steps > 2 || chain.Steps[steps-1] != wantLast ||
		(steps == 2 && chain.Steps[0] != thiefStep) {
		t.Fatalf("key recovery show after the recovery: %+v; want the last step %+v, recovery %s", chain, wantLast, commitment)
	}
	for _, d := range append([]*proc{owner}, resolvers...) {
		waitResolves(t, d, name, fresh.ID, keyTypeEd25519, steps, "owner-2")
	}

	// The thief signs again with its key: its node refuses, or nobody
	// takes it.
	if r := cli(t, thief.repo, nil, "record", "set", name, "TXT", "thief-2", "--ttl", "1s"); r.code == 0 {
		t.Logf("the thief's node signed and put a zone after the recovery: %s", strings.TrimSpace(r.stdout))
	} else {
		t.Logf("the thief's node refused to sign after the recovery: exit %d: %s", r.code, strings.TrimSpace(r.stderr))
	}
	signed := time.Now()
	for round := 0; round < 3 || time.Since(signed) < 4*time.Second; round++ {
		for _, d := range append([]*proc{owner}, resolvers...) {
			res, err := resolveKeyed(t, d, name)
			txt := recordValues(res.Records, "TXT")
			if err != nil || res.Key != fresh.ID || res.Rotations != steps || !containsString(txt, "owner-2") || containsString(txt, "thief-2") {
				t.Fatalf("round %d after the thief signed again: %s: %s, %v; want key %s", round, d.repo, res, err, fresh.ID)
			}
		}
	}
	// The owner keeps changing its zone, and everyone follows.
	mustCLI(t, owner.repo, "record", "set", name, "TXT", "owner-3", "--ttl", "1s")
	for _, d := range append([]*proc{owner}, resolvers...) {
		waitResolves(t, d, name, fresh.ID, keyTypeEd25519, steps, "owner-3")
	}
}
