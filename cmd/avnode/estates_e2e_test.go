package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/names"
)

// estateHosts is what a resolve of name on d says of its one estate.
func estateOfName(t testing.TB, d *proc, name string) (api.Resolution, api.EstateInfo) {
	t.Helper()
	var res api.Resolution
	cliJSON(t, d.repo, &res, "resolve", name)
	if len(res.Estates) != 1 {
		t.Fatalf("resolve %s: estates %+v; want one", name, res.Estates)
	}
	return res, res.Estates[0]
}

// An avatar on estate E, hosted by machine P1, moves to P2 by `estate
// export` and `estate import`; P1 stops. A resolver that resolved the name
// before the move and one that never did follow to P2 within the estate
// record's TTL, the zone's sequence number is unchanged, and the content
// comes from P2. P1, started again, sees the newer record and retires its
// copy.
func TestEstateMovesBetweenMachines(t *testing.T) {
	t.Parallel()
	nodes := startNetwork(t, 4)
	base := t.TempDir()
	args := append(append([]string{}, lowWork...), "--bootstrap", nodes[0].addr)
	p1 := startDaemon(t, filepath.Join(base, "p1"), args...)
	waitPeers(t, p1, 3)
	mustCLI(t, p1.repo, "key", "gen", "alice")
	mustCLI(t, p1.repo, "name", "claim", "alice.avtr", "--key", "alice")
	var created api.Estate
	cliJSON(t, p1.repo, &created, "estate", "create", "home", "--ttl", "3s")
	site := writeSite(t)
	mustCLI(t, p1.repo, "publish", site, "--name", "alice.avtr", "--estate", "home")

	before := nodes[2]
	gw := startDaemon(t, filepath.Join(base, "gw"), append(args, "--roles", "receiver", "--gateway.listen", "127.0.0.1:0")...)
	estateOfName(t, gw, "alice.avtr") // the gateway's node knows the estate on P1
	res, e := estateOfName(t, before, "alice.avtr")
	if e.ID != created.ID || !slices.Equal(e.Hosts, []string{p1.peerID}) {
		t.Fatalf("before the move: estate %+v; want %s on %s", e, created.ID, p1.peerID)
	}
	if !hasRecord(res, "HOST", "estate:"+created.ID) || !containsHost(res, p1.peerID) {
		t.Fatalf("before the move: %+v", res)
	}
	seq := res.Seq
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := newAttacker(t)
	holder := a.connect(ctx, nodes[1])
	var firstVersion []byte
	eventually(t, 20*time.Second, "a holder has the estate record", func() error {
		if firstVersion = a.get(ctx, holder, names.EstateKey(created.ID)); firstVersion == nil {
			return fmt.Errorf("no record yet")
		}
		return nil
	})

	pass := writePass(t)
	sealed := filepath.Join(t.TempDir(), "home.estate")
	mustCLI(t, p1.repo, "estate", "export", "home", "-o", sealed, "--passphrase-file", pass)
	if data, _ := os.ReadFile(sealed); !strings.HasPrefix(string(data), "age-encryption.org/v1") {
		t.Fatalf("the export is not an age file: %.40q", data)
	}

	p2 := startDaemon(t, filepath.Join(base, "p2"), args...)
	waitPeers(t, p2, 3)
	wrong := filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(wrong, []byte("guess"), 0o600)
	if r := cli(t, p2.repo, nil, "estate", "import", sealed, "--passphrase-file", wrong); r.code != 2 || !strings.Contains(r.stderr, "passphrase") {
		t.Fatalf("import with a wrong passphrase: exit %d\n%s", r.code, r.stderr)
	}
	imported := time.Now()
	var moved api.Estate
	cliJSON(t, p2.repo, &moved, "estate", "import", sealed, "--passphrase-file", pass)
	if moved.ID != created.ID || moved.Pinned != 1 || moved.Seq <= created.Seq {
		t.Fatalf("import: %+v; want estate %s with alice.avtr's content pinned and a higher seq", moved, created.ID)
	}
	p1.stop()

	fresh := nodes[3]
	var followed time.Duration
	for _, r := range []*proc{before, fresh} {
		eventually(t, 30*time.Second, "resolvers follow the estate to P2", func() error {
			res, e := estateOfName(t, r, "alice.avtr")
			if !slices.Equal(e.Hosts, []string{p2.peerID}) {
				return fmt.Errorf("estate %+v", e)
			}
			if res.Seq != seq {
				t.Fatalf("the zone's sequence changed with the move: %d → %d", seq, res.Seq)
			}
			return nil
		})
		if followed == 0 {
			followed = time.Since(imported)
		}
	}
	t.Logf("from estate import to the first resolve that names P2 (estate TTL 3s): %v", followed)
	// The first version, P1's, replayed to a holder after the move: refused.
	if err := a.put(ctx, holder, names.EstateKey(created.ID), firstVersion); err == nil {
		t.Error("a holder took back the estate record from before the move")
	}
	out := filepath.Join(t.TempDir(), "got")
	mustCLI(t, before.repo, "get", "alice.avtr", "-o", out)
	sameTree(t, site, out)
	// The gateway's node resolved the name while it was on P1 and fetched
	// nothing: its first page comes from P2.
	gwHost := strings.TrimPrefix(gatewayURL(t, gw), "http://")
	_, port, _ := net.SplitHostPort(gwHost)
	page := "http://alice-avtr.localhost:" + port + "/index.html" // alice.avtr's own origin
	eventually(t, 30*time.Second, "the gateway serves the page from P2", func() error {
		resp, body := httpDo(t, originClient(gwHost), "GET", page)
		if resp.StatusCode != http.StatusOK || body != "<h1>coolblog</h1>\n" {
			return fmt.Errorf("GET %s: %d %.80q", page, resp.StatusCode, body)
		}
		return nil
	})

	// P1 comes back, republishing often: it finds the newer record and
	// retires its copy.
	p1 = startDaemon(t, p1.repo, append(args, "--names.republish_interval", "2s")...)
	eventually(t, 30*time.Second, "P1 retires the estate", func() error {
		var estates []api.Estate
		cliJSON(t, p1.repo, &estates, "estate", "ls")
		if len(estates) != 1 || estates[0].Retired == "" {
			return fmt.Errorf("estate ls on P1: %+v", estates)
		}
		return nil
	})
	if r := cli(t, p1.repo, nil, "publish", site, "--name", "alice.avtr", "--estate", "home"); r.code == 0 || !strings.Contains(r.stderr, "moved away") {
		t.Errorf("publish onto a retired estate: exit %d\n%s", r.code, r.stderr)
	}
	if _, e := estateOfName(t, fresh, "alice.avtr"); !slices.Equal(e.Hosts, []string{p2.peerID}) {
		t.Errorf("after P1's return the estate names %v", e.Hosts)
	}
}

func containsHost(res api.Resolution, id string) bool {
	for _, h := range res.Hosts {
		if h.PeerID == id {
			return true
		}
	}
	return false
}

// A bare host puts estate records of its own making to a node: another
// key's record under the estate's ID, a forged signature, junk. The node
// keeps the owner's record. A provider holding the estate key signs a claim
// and a zone for the avatar's name with it: refused, the zone unchanged.
func TestForgedEstateRecordsAreRefused(t *testing.T) {
	t.Parallel()
	nodes := startNetwork(t, 4)
	owner := nodes[1]
	mustCLI(t, owner.repo, "key", "gen", "alice")
	mustCLI(t, owner.repo, "name", "claim", "alice.avtr", "--key", "alice")
	var est api.Estate
	cliJSON(t, owner.repo, &est, "estate", "create", "home")
	mustCLI(t, owner.repo, "publish", writeSite(t), "--name", "alice.avtr", "--estate", "home")
	key := names.EstateKey(est.ID)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := newAttacker(t)
	holder := a.connect(ctx, nodes[2])
	var held []byte
	eventually(t, 20*time.Second, "the holder has the estate record", func() error {
		if held = a.get(ctx, holder, key); held == nil {
			return fmt.Errorf("no record yet")
		}
		return nil
	})
	good, err := names.DecodeEstate(held)
	if err != nil {
		t.Fatal(err)
	}
	thief, _, _ := crypto.GenerateEd25519Key(nil)
	thiefHost, _ := peer.IDFromPrivateKey(thief)
	stolen := &names.Estate{Seq: good.Seq + 100, Expiry: time.Now().Add(time.Hour), TTL: time.Minute, Hosts: []peer.ID{thiefHost}}
	stolenBytes, err := stolen.Sign(thief)
	if err != nil {
		t.Fatal(err)
	}
	forged := append([]byte{}, held...)
	forged[len(forged)-1] ^= 1
	for what, value := range map[string][]byte{"another key's record": stolenBytes, "a forged signature": forged, "junk": []byte("junk")} {
		if err := a.put(ctx, holder, key, value); err == nil {
			t.Errorf("the holder stored %s under %s", what, key)
		}
	}
	if got := a.get(ctx, holder, key); !bytes.Equal(got, held) {
		t.Fatalf("the holder's estate record changed under attack")
	}

	// The provider's side: it holds the estate key, and tries to take the
	// avatar's name with it.
	pass := writePass(t)
	sealed := filepath.Join(t.TempDir(), "home.estate")
	mustCLI(t, owner.repo, "estate", "export", "home", "-o", sealed, "--passphrase-file", pass)
	estateKey := openEstateFile(t, sealed, "correct horse battery staple")
	if names.KeyID(estateKey.GetPublic()) != est.ID {
		t.Fatalf("the exported key is not the estate's")
	}
	n, _ := names.Parse("alice.avtr")
	c, err := names.MintClaim(ctx, n, estateKey, 8, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	claim, _ := c.Marshal()
	z := &names.Zone{Name: n, Seq: 1 << 40, Expiry: time.Now().Add(24 * time.Hour), TTL: time.Minute, Claim: c,
		Records: []names.Record{{Type: names.TypeTXT, Value: "pwned"}}}
	zone, err := z.Sign(estateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.put(ctx, holder, names.ClaimKey(n), claim); err == nil {
		t.Error("a holder stored a claim of alice.avtr by the estate key")
	}
	if err := a.put(ctx, holder, names.ZoneKey(n), zone); err == nil {
		t.Error("a holder stored a zone of alice.avtr signed by the estate key")
	}
	var res api.Resolution
	cliJSON(t, nodes[2].repo, &res, "resolve", "alice.avtr")
	if res.Key == est.ID || hasRecord(res, "TXT", "pwned") {
		t.Fatalf("the estate key changed alice.avtr: %+v", res)
	}
}

// A crafted estate file, imported on another node: one listing a name
// that is not on the estate gets that name neither fetched nor pinned; one
// asking for 4 GiB of scrypt work is refused before the work.
func TestCraftedEstateFiles(t *testing.T) {
	t.Parallel()
	nodes := startNetwork(t, 4)
	owner, importer := nodes[1], nodes[2]
	mustCLI(t, owner.repo, "key", "gen", "bob")
	mustCLI(t, owner.repo, "name", "claim", "bob.avtr", "--key", "bob")
	mustCLI(t, owner.repo, "publish", writeSite(t), "--name", "bob.avtr") // hosted directly, on no estate
	key, _, _ := crypto.GenerateEd25519Key(nil)
	raw, _ := crypto.MarshalPrivateKey(key)
	body, _ := json.Marshal(map[string]any{"format": "avnode-estate/1", "label": "lure", "key": raw, "seq": 1, "ttl": "1m",
		"names": []string{"bob.avtr"}})
	pass := writePass(t)
	lure := sealFile(t, body, "correct horse battery staple", 18)
	var e api.Estate
	cliJSON(t, importer.repo, &e, "estate", "import", lure, "--passphrase-file", pass)
	if e.Pinned != 0 || len(e.Problems) != 1 || !strings.Contains(e.Problems[0], "not on estate") {
		t.Fatalf("import of a file listing bob.avtr: %+v; want it not fetched", e)
	}
	var gc api.GCResult
	cliJSON(t, importer.repo, &gc, "repo", "gc")
	if gc.Kept != 0 {
		t.Errorf("the importer keeps %d pinned blocks after the lure", gc.Kept)
	}

	// The stanza of a real file with its work factor raised to 2^22: the
	// importer must refuse it from the header, before any scrypt work.
	sealed, _ := os.ReadFile(lure)
	header := strings.Replace(string(sealed), " 18\n", " 22\n", 1)
	if header == string(sealed) {
		t.Fatalf("no work factor 18 in the age header:\n%.120q", sealed)
	}
	bomb := filepath.Join(t.TempDir(), "bomb.estate")
	os.WriteFile(bomb, []byte(header), 0o600)
	start := time.Now()
	r := cli(t, importer.repo, nil, "estate", "import", bomb, "--passphrase-file", pass)
	if r.code != 2 || !strings.Contains(r.stderr, "work factor") {
		t.Fatalf("import of a 4 GiB scrypt file: exit %d\n%s", r.code, r.stderr)
	}
	t.Logf("the scrypt bomb was refused in %v", time.Since(start))
}

// sealFile seals body with passphrase at scrypt work factor logN, as age does.
func sealFile(t testing.TB, body []byte, passphrase string, logN int) string {
	t.Helper()
	rcpt, err := age.NewScryptRecipient(passphrase)
	if err != nil {
		t.Fatal(err)
	}
	rcpt.SetWorkFactor(logN)
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, rcpt)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(body)
	w.Close()
	path := filepath.Join(t.TempDir(), "crafted.estate")
	os.WriteFile(path, buf.Bytes(), 0o600)
	return path
}

func writePass(t testing.TB) string {
	pass := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(pass, []byte("correct horse battery staple\n"), 0o600)
	return pass
}

// openEstateFile opens an `estate export` file as its importer would, and
// returns the estate key in it.
func openEstateFile(t testing.TB, path, passphrase string) crypto.PrivKey {
	t.Helper()
	data, _ := os.ReadFile(path)
	id, err := age.NewScryptIdentity(passphrase)
	if err != nil {
		t.Fatal(err)
	}
	r, err := age.Decrypt(bytes.NewReader(data), id)
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Key []byte }
	if err := json.NewDecoder(r).Decode(&f); err != nil {
		t.Fatal(err)
	}
	priv, err := crypto.UnmarshalPrivateKey(f.Key)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}
