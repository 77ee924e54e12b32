package main

// Attacks on a claimed name, across real daemons on loopback. The attacker is
// a bare go-libp2p host written here: it speaks kad-dht's wire protocol and
// the claim protocol itself, frame by frame. It builds its records with
// core/names, the published format any outsider can use, and builds the
// hostile encodings byte by byte with protowire.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	dhtpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-msgio/pbio"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/names"
)

const (
	kadProtocol   = protocol.ID("/avtr/kad/1.0.0")
	claimProtocol = protocol.ID("/avtr/claim/2.0.0")
)

// attacker is one bare libp2p host, no avnode code behind it.
type attacker struct {
	t testing.TB
	h host.Host
}

func newAttacker(t testing.TB) *attacker {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return &attacker{t: t, h: h}
}

func (a *attacker) connect(ctx context.Context, d *proc) peer.ID {
	a.t.Helper()
	info, err := peer.AddrInfoFromString(d.addr)
	if err != nil {
		a.t.Fatal(err)
	}
	if err := a.h.Connect(ctx, *info); err != nil {
		a.t.Fatalf("attacker connect to %s: %v", d.repo, err)
	}
	return info.ID
}

// request sends one kad-dht message and reads the answer.
// connectAll connects to every node and returns their peer IDs, in order.
func (a *attacker) connectAll(ctx context.Context, nodes []*proc) []peer.ID {
	ids := make([]peer.ID, len(nodes))
	for i, d := range nodes {
		ids[i] = a.connect(ctx, d)
	}
	return ids
}

func (a *attacker) request(ctx context.Context, p peer.ID, m *dhtpb.Message) (*dhtpb.Message, error) {
	s, err := a.h.NewStream(ctx, p, kadProtocol)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(15 * time.Second))
	if err := pbio.NewDelimitedWriter(s).WriteMsg(m); err != nil {
		return nil, err
	}
	resp := new(dhtpb.Message)
	if err := pbio.NewDelimitedReader(s, 1<<20).ReadMsg(resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// put is a plain PUT_VALUE; nil means the peer stored it (it echoes the record).
func (a *attacker) put(ctx context.Context, p peer.ID, key string, value []byte) error {
	rec := &recpb.Record{Key: []byte(key), Value: value}
	resp, err := a.request(ctx, p, &dhtpb.Message{Type: dhtpb.Message_PUT_VALUE, Key: []byte(key), Record: rec})
	if err != nil {
		return err
	}
	if !bytes.Equal(resp.GetRecord().GetValue(), value) {
		return fmt.Errorf("answer does not echo the record")
	}
	return nil
}

// get is a plain GET_VALUE: the value p holds for key, or nil.
func (a *attacker) get(ctx context.Context, p peer.ID, key string) []byte {
	a.t.Helper()
	resp, err := a.request(ctx, p, &dhtpb.Message{Type: dhtpb.Message_GET_VALUE, Key: []byte(key)})
	if err != nil {
		a.t.Fatalf("GET_VALUE %s from %s: %v", key, p, err)
	}
	return resp.GetRecord().GetValue()
}

// askToHold sends a claim on the claim protocol: a frame of status 0, a
// uvarint length and the claim; the answer is a frame of the same shape.
func (a *attacker) askToHold(ctx context.Context, p peer.ID, claim []byte) (byte, string, error) {
	s, err := a.h.NewStream(ctx, p, claimProtocol)
	if err != nil {
		return 0, "", err
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(20 * time.Second))
	msg := append(binary.AppendUvarint([]byte{0}, uint64(len(claim))), claim...)
	if _, err := s.Write(msg); err != nil {
		return 0, "", err
	}
	s.CloseWrite()
	r := bufio.NewReader(s)
	status, err := r.ReadByte()
	if err != nil {
		return 0, "", err
	}
	n, err := binary.ReadUvarint(r)
	if err != nil || n > 4096 {
		return 0, "", fmt.Errorf("answer length %d: %v", n, err)
	}
	body := make([]byte, n)
	_, err = io.ReadFull(r, body)
	return status, string(body), err
}

// rival is what an outsider mints for a name it does not own.
type rival struct {
	key           crypto.PrivKey
	id            string // its KeyID
	claim, zone   []byte
	withWitnesses map[int][]byte // the claim with n forged countersignatures
}

// mintClaim makes a valid claim for name under a fresh key, with the work
// the test daemons ask for (lowWork).
func mintClaim(t testing.TB, name string) (crypto.PrivKey, *names.Claim) {
	t.Helper()
	n, err := names.Parse(name)
	if err != nil {
		t.Fatal(err)
	}
	key, _, _ := crypto.GenerateEd25519Key(nil)
	c, err := names.MintClaim(context.Background(), n, key, 8, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return key, c
}

func mintRival(t testing.TB, name string) *rival {
	t.Helper()
	key, c := mintClaim(t, name)
	claim, _ := c.Marshal()
	z := &names.Zone{Name: c.Name, Seq: 1 << 40, Expiry: time.Now().Add(24 * time.Hour), TTL: time.Minute, Claim: c,
		Records: []names.Record{{Type: names.TypeTXT, Value: "pwned"}}}
	zone, err := z.Sign(key)
	if err != nil {
		t.Fatal(err)
	}
	r := &rival{key: key, id: names.KeyID(key.GetPublic()), claim: claim, zone: zone, withWitnesses: map[int][]byte{}}
	for _, count := range []int{20, 200} {
		r.withWitnesses[count] = forgeWitnesses(t, claim, count)
	}
	return r
}

// forgeWitnesses appends count countersignatures by throw-away keys to a
// claim, in the field 2 that older claims carried them in.
func forgeWitnesses(t testing.TB, claim []byte, count int) []byte {
	t.Helper()
	out := bytes.Clone(claim)
	for range count {
		k, _, _ := crypto.GenerateEd25519Key(nil)
		pub, _ := crypto.MarshalPublicKey(k.GetPublic())
		sig, _ := k.Sign([]byte("avtr-claim-witness/v1\nI held no other claim"))
		var w []byte
		w = protowire.AppendTag(w, 1, protowire.BytesType)
		w = protowire.AppendBytes(w, pub)
		w = protowire.AppendTag(w, 2, protowire.VarintType)
		w = protowire.AppendVarint(w, uint64(time.Now().Unix()))
		w = protowire.AppendTag(w, 3, protowire.BytesType)
		w = protowire.AppendBytes(w, sig)
		out = protowire.AppendTag(out, 2, protowire.BytesType)
		out = protowire.AppendBytes(out, w)
	}
	return out
}

// padEnvelope puts junk inside the signed envelope (field 1) of a claim or
// zone, where the signature does not reach: an unknown field 99.
func padEnvelope(t testing.TB, value []byte, junk int) []byte {
	t.Helper()
	var out []byte
	for len(value) > 0 {
		num, typ, n := protowire.ConsumeTag(value)
		if n < 0 {
			t.Fatal("bad record")
		}
		value = value[n:]
		if typ != protowire.BytesType {
			t.Fatal("unexpected field type")
		}
		field, m := protowire.ConsumeBytes(value)
		value = value[m:]
		if num == 1 {
			field = protowire.AppendTag(bytes.Clone(field), 99, protowire.BytesType)
			field = protowire.AppendBytes(field, bytes.Repeat([]byte{'x'}, junk))
		}
		out = protowire.AppendTag(out, num, protowire.BytesType)
		out = protowire.AppendBytes(out, field)
	}
	return out
}

func startDaemons(t testing.TB, dir string, count int, bootstrap *proc, extra ...string) ([]*proc, []string) {
	t.Helper()
	var nodes []*proc
	var metrics []string
	for i := range count {
		m := metricsAddr(t)
		args := append(append([]string{}, lowWork...), extra...)
		args = append(args, "--metrics.listen", m)
		if bootstrap != nil {
			args = append(args, "--bootstrap", bootstrap.addr)
		} else if len(nodes) > 0 {
			args = append(args, "--bootstrap", nodes[0].addr)
		}
		nodes = append(nodes, startDaemon(t, filepath.Join(dir, fmt.Sprintf("n%d", i)), args...))
		metrics = append(metrics, m)
	}
	return nodes, metrics
}

func resolveKeyAndTXT(t testing.TB, d *proc, name string) (string, []string) {
	t.Helper()
	var res api.Resolution
	cliJSON(t, d.repo, &res, "resolve", name)
	return res.Key, recordValues(res.Records, "TXT")
}

// An outsider mints a rival claim and zone for a claimed name (clean, with
// 20 and 200 forged witnesses, and the owner's own zone padded inside its
// envelope) and PUTs them to every node with kad-dht's PUT_VALUE: no node
// stores or serves them, each says why and counts it, nodes started later
// (asked to hold the rival's claim, or PUT the rival first) take the owner,
// the owner still changes its zone and pinned readers follow.
func TestRivalCannotTakeAClaimedName(t *testing.T) {
	t.Parallel()
	const name = "victim.avtr"
	dir := t.TempDir()
	nodes, metrics := startDaemons(t, dir, 5, nil, "--names.resolve_timeout=5s")
	owner, reader := nodes[1], nodes[2]
	for _, d := range nodes {
		waitPeers(t, d, 2)
	}
	mustCLI(t, owner.repo, "key", "gen", "alice")
	var claim api.ClaimResult
	cliJSON(t, owner.repo, &claim, "name", "claim", name, "--key", "alice")
	mustCLI(t, owner.repo, "record", "set", name, "TXT", "owner-v1", "--ttl", "1s")
	if key, txt := resolveKeyAndTXT(t, reader, name); key != claim.Key || len(txt) != 1 || txt[0] != "owner-v1" {
		t.Fatalf("reader resolves %s to %s %v before the attack", name, key, txt)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	mallory := newAttacker(t)
	ids := mallory.connectAll(ctx, nodes)
	n, _ := names.Parse(name)
	claimKey, zoneKey := names.ClaimKey(n), names.ZoneKey(n)
	ownerClaim, ownerZone := mallory.get(ctx, ids[0], claimKey), mallory.get(ctx, ids[0], zoneKey)
	if ownerClaim == nil || ownerZone == nil {
		t.Fatal("node 0 holds no claim or zone of the name")
	}
	r := mintRival(t, name)
	attacks := []struct {
		what, key string
		value     []byte
	}{
		{"rival claim", claimKey, r.claim},
		{"rival zone", zoneKey, r.zone},
		{"rival claim with 20 forged witnesses", claimKey, r.withWitnesses[20]},
		{"rival claim with 200 forged witnesses", claimKey, r.withWitnesses[200]},
		{"owner's zone padded inside its envelope", zoneKey, padEnvelope(t, ownerZone, 3000)},
		{"owner's claim padded inside its envelope", claimKey, padEnvelope(t, ownerClaim, 3000)},
	}
	for _, a := range attacks {
		for i, id := range ids {
			if err := mallory.put(ctx, id, a.key, a.value); err == nil {
				t.Errorf("%s: node %d stored it", a.what, i)
			}
		}
	}
	for i, id := range ids {
		if got := mallory.get(ctx, id, claimKey); !bytes.Equal(got, ownerClaim) {
			t.Errorf("node %d serves another claim (%d bytes) after the attack", i, len(got))
		}
		if got := mallory.get(ctx, id, zoneKey); !bytes.Equal(got, ownerZone) {
			t.Errorf("node %d serves another zone (%d bytes, owner's is %d) after the attack", i, len(got), len(ownerZone))
		}
		page := scrapeMetrics(t, metrics[i])
		if taken := metricSum(page, "avnode_names_refused_total", `reason="name_taken"`); taken < 2 {
			t.Errorf("node %d counted %v name_taken refusals, want at least 2 (claim and zone)", i, taken)
		}
		if bad := metricSum(page, "avnode_names_refused_total", `reason="malformed"`); bad < 3 {
			t.Errorf("node %d counted %v malformed refusals, want at least 3 (forged witnesses, padding)", i, bad)
		}
		if log := nodes[i].log.String(); !strings.Contains(log, "held by key "+claim.Key+"; refused a record by key "+r.id) {
			t.Errorf("node %d's log does not say why it refused the rival:\n%s", i, lastLines(log, 10))
		}
	}

	// A node that joined after the claim, asked first of all to hold the
	// rival's claim, looks the name up and refuses.
	late, _ := startDaemons(t, filepath.Join(dir, "late"), 2, nodes[0], "--names.resolve_timeout=5s")
	for _, d := range late {
		waitPeers(t, d, 3)
	}
	lateID := mallory.connect(ctx, late[0])
	status, reason, err := mallory.askToHold(ctx, lateID, r.claim)
	if err != nil || status == 0 || !strings.Contains(reason, "held by key "+claim.Key) {
		t.Fatalf("late joiner asked to hold the rival's claim: status %d, %q, %v", status, reason, err)
	}
	// Another late node gets the rival's PUTs before it ever heard of the name.
	late2 := mallory.connect(ctx, late[1])
	for _, a := range attacks[:2] {
		if err := mallory.put(ctx, late2, a.key, a.value); err == nil {
			t.Errorf("%s: the late node stored it", a.what)
		}
	}
	for _, d := range append(late, nodes...) {
		if key, _ := resolveKeyAndTXT(t, d, name); key != claim.Key {
			t.Fatalf("%s resolves %s to %s, want the owner %s", d.repo, name, key, claim.Key)
		}
	}

	// The owner still changes its zone, and everyone, pinned or not, follows.
	mustCLI(t, owner.repo, "record", "set", name, "TXT", "owner-v2")
	for _, d := range append(late, nodes...) {
		eventually(t, 20*time.Second, d.repo+" sees the owner's new version", func() error {
			key, txt := resolveKeyAndTXT(t, d, name)
			if key != claim.Key || !containsString(txt, "owner-v2") {
				return fmt.Errorf("key %s TXT %v", key, txt)
			}
			return nil
		})
	}
}

// All of the owner's first holders are replaced by nodes that joined after
// the claim, then the rival tries: the name stays the owner's. The new nodes
// got the records from the owner's and holders' re-puts, each asking the
// name's holders who owns it before it took them.
func TestNameSurvivesItsHoldersReplaced(t *testing.T) {
	t.Parallel()
	const name = "steady.avtr"
	dir := t.TempDir()
	fast := []string{"--names.resolve_timeout=5s", "--names.reput_interval=2s", "--names.republish_interval=4s"}
	first, _ := startDaemons(t, filepath.Join(dir, "first"), 5, nil, fast...)
	owner := first[0]
	for _, d := range first {
		waitPeers(t, d, 2)
	}
	mustCLI(t, owner.repo, "key", "gen", "alice")
	var claim api.ClaimResult
	cliJSON(t, owner.repo, &claim, "name", "claim", name, "--key", "alice")
	mustCLI(t, owner.repo, "record", "set", name, "TXT", "kept", "--ttl", "1s")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	mallory := newAttacker(t)
	n, _ := names.Parse(name)
	claimKey, zoneKey := names.ClaimKey(n), names.ZoneKey(n)
	newcomers, metrics := startDaemons(t, filepath.Join(dir, "new"), 4, owner, fast...)
	newIDs := make([]peer.ID, len(newcomers))
	for i, d := range newcomers {
		newIDs[i] = mallory.connect(ctx, d)
		eventually(t, 30*time.Second, d.repo+" holds the owner's claim and zone", func() error {
			c, z := mallory.get(ctx, newIDs[i], claimKey), mallory.get(ctx, newIDs[i], zoneKey)
			if c == nil || z == nil {
				return fmt.Errorf("claim %d bytes, zone %d bytes", len(c), len(z))
			}
			return nil
		})
	}
	for _, d := range first[1:] {
		d.kill()
	}
	ownerID := mallory.connect(ctx, owner)
	r := mintRival(t, name)
	for i, id := range append(newIDs, ownerID) {
		if err := mallory.put(ctx, id, claimKey, r.claim); err == nil {
			t.Errorf("node %d stored the rival's claim", i)
		}
		if err := mallory.put(ctx, id, zoneKey, r.zone); err == nil {
			t.Errorf("node %d stored the rival's zone", i)
		}
		if status, reason, err := mallory.askToHold(ctx, id, r.claim); err != nil || status == 0 || !strings.Contains(reason, "held by key "+claim.Key) {
			t.Errorf("node %d asked to hold the rival's claim: status %d %q %v", i, status, reason, err)
		}
	}
	for i := range newcomers {
		if taken := metricSum(scrapeMetrics(t, metrics[i]), "avnode_names_refused_total", `reason="name_taken"`); taken < 3 {
			t.Errorf("newcomer %d counted %v name_taken refusals, want 3", i, taken)
		}
	}
	fresh, _ := startDaemons(t, filepath.Join(dir, "fresh"), 1, newcomers[0], fast...)
	waitPeers(t, fresh[0], 3)
	for _, d := range append(fresh, newcomers...) {
		if key, txt := resolveKeyAndTXT(t, d, name); key != claim.Key || !containsString(txt, "kept") {
			t.Fatalf("%s resolves %s to %s %v, want the owner %s", d.repo, name, key, txt, claim.Key)
		}
	}
}

func waitPeers(t testing.TB, d *proc, want int) {
	t.Helper()
	eventually(t, 20*time.Second, d.repo+" connected", func() error {
		var peers []struct{}
		cliJSON(t, d.repo, &peers, "peers")
		if len(peers) < want {
			return fmt.Errorf("%d peers", len(peers))
		}
		return nil
	})
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
