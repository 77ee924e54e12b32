package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/keystore"
	"github.com/avnode/avnode/core/repo"
)

// avatarOnEstate makes, on node d, an avatar name with a one-page site on
// an estate of its own, and returns the estate. It calls the control API
// as the CLI does, from this process: hundreds of CLI processes would cost
// minutes under the race detector. It returns its error rather than
// failing the test, so that it can run on goroutines of its own.
func avatarOnEstate(d *proc, i int, provider, ttl string) (api.Estate, error) {
	label := fmt.Sprintf("a%d", i)
	name := label + ".avtr"
	keys, err := keystore.Open(filepath.Join(d.repo, repo.KeystoreDir))
	if err != nil {
		return api.Estate{}, err
	}
	if _, err := keys.Generate(label); err != nil {
		return api.Estate{}, fmt.Errorf("avatar %s: key: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := api.NewClient(d.repo, repo.SocketFile)
	// A claim needs holders to answer: under load one may not in time, and
	// the CLI's user would claim again.
	var tries []string
	for try := 1; ; try++ {
		err = c.CallStream(ctx, "POST", "/v1/name/claim", url.Values{"name": {name}, "key": {label}}, nil, nil)
		if err == nil || try == 3 {
			break
		}
		tries = append(tries, err.Error())
	}
	if err != nil {
		return api.Estate{}, fmt.Errorf("avatar %s: claim: %w (before: %q)", name, err, tries)
	}
	var e api.Estate
	if err := c.Call(ctx, "POST", "/v1/estate/create", url.Values{"label": {label}, "provider": {provider}, "ttl": {ttl}}, nil, &e); err != nil {
		return e, fmt.Errorf("avatar %s: estate create: %w", name, err)
	}
	site, err := os.MkdirTemp("", "avnode-site-")
	if err != nil {
		return e, err
	}
	defer os.RemoveAll(site)
	if err := os.WriteFile(filepath.Join(site, "index.html"), []byte(name+"\n"), 0o644); err != nil {
		return e, err
	}
	if err := c.CallStream(ctx, "POST", "/v1/publish", url.Values{"path": {site}, "name": {name}, "estate": {label}}, nil, nil); err != nil {
		return e, fmt.Errorf("avatar %s: publish: %w", name, err)
	}
	return e, nil
}

// inParallel runs f(i) for i in [0, n) on workers goroutines and returns
// the errors f returned, in no particular order.
func inParallel(n, workers int, f func(i int) error) []error {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed []error
	)
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					failed = append(failed, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return failed
}

// getPage fetches name's index.html on d, through the control API as
// `avnode get` does, and checks it is the avatar's.
func getPage(t testing.TB, d *proc, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var page bytes.Buffer
	if _, err := api.NewClient(d.repo, repo.SocketFile).Stream(ctx, "GET", "/v1/cat", url.Values{"target": {name + "/index.html"}}, &page); err != nil {
		return fmt.Errorf("get %s/index.html: %w", name, err)
	}
	if page.String() != name+"\n" {
		return fmt.Errorf("get %s/index.html: %q", name, page.String())
	}
	return nil
}

// resolveName resolves name on d through the control API.
func resolveName(t testing.TB, d *proc, name string) (api.Resolution, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var res api.Resolution
	err := api.NewClient(d.repo, repo.SocketFile).Call(ctx, "GET", "/v1/resolve", url.Values{"name": {name}}, nil, &res)
	return res, err
}

// One provider machine hosts 200 estates, each with its own avatar name and
// site; another node resolves and fetches every one. The provider's memory
// and the setup time per estate are reported.
func TestProviderHostsManyEstates(t *testing.T) {
	t.Parallel()
	const estates = 200
	nodes := startNetwork(t, 4)
	provider := startDaemon(t, filepath.Join(t.TempDir(), "provider"), append(lowWork, "--bootstrap", nodes[0].addr)...)
	waitPeers(t, provider, 3)
	rssBefore := rssBytes(t, provider)
	start := time.Now()
	if failed := inParallel(estates, 4, func(i int) error {
		_, err := avatarOnEstate(provider, i, "acme.node", "")
		return err
	}); len(failed) > 0 {
		t.Fatalf("%d of %d avatars could not be set up on the provider; first: %v", len(failed), estates, failed[0])
	}
	setup := time.Since(start)
	rssAfter := rssBytes(t, provider)

	var listed []api.Estate
	cliJSON(t, provider.repo, &listed, "estate", "ls")
	if len(listed) != estates {
		t.Fatalf("estate ls lists %d estates; want %d", len(listed), estates)
	}
	for _, e := range listed {
		if len(e.Names) != 1 || e.Names[0] != e.Label+".avtr" || e.Provider != "acme.node" || e.Retired != "" {
			t.Fatalf("estate ls: %+v; want one name, %s.avtr, provider acme.node", e, e.Label)
		}
	}

	reader := nodes[3]
	start = time.Now()
	failed := inParallel(estates, 4, func(i int) error {
		name := fmt.Sprintf("a%d.avtr", i)
		res, err := resolveName(t, reader, name)
		if err == nil {
			err = getPage(t, reader, name)
		}
		if err == nil && (len(res.Estates) != 1 || !slices.Equal(res.Estates[0].Hosts, []string{provider.peerID}) || res.Estates[0].Provider != "acme.node") {
			err = fmt.Errorf("resolve %s: estates %+v", name, res.Estates)
		}
		return err
	})
	if len(failed) > 0 {
		t.Fatalf("%d of %d names failed from another node; first: %v", len(failed), estates, failed[0])
	}
	t.Logf("%d estates on one provider: setup %v per estate (key, claim, estate, publish through the API; 4 at once); "+
		"provider RSS %d → %d MiB, %.1f KiB per estate; resolve and get from another node %v per name",
		estates, (setup / estates).Round(time.Millisecond), rssBefore>>20, rssAfter>>20,
		float64(rssAfter-rssBefore)/1024/estates, (time.Since(start) / estates).Round(time.Millisecond))
}

// Three provider machines under acme.node, whose zone lists them, host two
// estates each, and the fleet keeps each site on a second machine. One
// machine is killed; the operator imports its estates, exported
// beforehand, on the machine with the copies; every name resolves and
// fetches again. A dead machine lingers in routing tables, so the import's
// DHT walks wait for dials to it to fail: the CLI gets minutes here.
func TestProviderFleetMovesEstatesOfALostMachine(t *testing.T) {
	t.Parallel()
	setCLITimeout(t, 3*time.Minute)
	nodes := startNetwork(t, 4)
	args := append(append([]string{}, lowWork...), "--bootstrap", nodes[0].addr)
	var fleet []*proc
	for i := range 3 {
		fleet = append(fleet, startDaemon(t, filepath.Join(t.TempDir(), fmt.Sprintf("m%d", i)), args...))
	}
	for _, m := range fleet {
		waitPeers(t, m, 3)
	}
	mustCLI(t, fleet[0].repo, "key", "gen", "acme")
	mustCLI(t, fleet[0].repo, "name", "claim", "acme.node", "--key", "acme")
	for _, m := range fleet {
		mustCLI(t, fleet[0].repo, "record", "set", "acme.node", "HOST", m.peerID)
	}
	var acme api.Resolution
	cliJSON(t, nodes[3].repo, &acme, "resolve", "acme.node")
	if len(acme.Hosts) != 3 {
		t.Fatalf("acme.node lists %d machines; want 3", len(acme.Hosts))
	}

	pass := writePass(t)
	backups := map[int]string{}
	for i := range 6 {
		m := fleet[i%3]
		e, err := avatarOnEstate(m, i, "acme.node", "3s")
		if err != nil {
			t.Fatal(err)
		}
		if i%3 == 1 { // the machine that will be lost: its operator keeps sealed keys, the heir the sites
			backups[i] = filepath.Join(t.TempDir(), e.Label+".estate")
			mustCLI(t, m.repo, "estate", "export", e.Label, "-o", backups[i], "--passphrase-file", pass)
			mustCLI(t, fleet[2].repo, "get", e.Label+".avtr", "-o", filepath.Join(t.TempDir(), e.Label))
		}
	}
	reader := nodes[3]
	for i := range 6 {
		if err := getPage(t, reader, fmt.Sprintf("a%d.avtr", i)); err != nil {
			t.Fatal(err)
		}
	}

	lost, heir := fleet[1], fleet[2]
	lost.kill()
	for _, file := range backups {
		var e api.Estate
		cliJSON(t, heir.repo, &e, "estate", "import", file, "--passphrase-file", pass)
		if e.Pinned != 1 {
			t.Fatalf("import on the heir: %+v", e)
		}
	}
	for i := range 6 {
		name := fmt.Sprintf("a%d.avtr", i)
		want := fleet[i%3].peerID
		if i%3 == 1 {
			want = heir.peerID
		}
		eventually(t, 2*time.Minute, name+" resolves to a live machine", func() error {
			_, e := estateOfName(t, reader, name)
			if !slices.Equal(e.Hosts, []string{want}) {
				return fmt.Errorf("estate %+v; want it on %s", e, want)
			}
			return getPage(t, reader, name)
		})
	}
	// The heir lists its own estates and the lost machine's, each name
	// served by at least the heir.
	var listed []api.Estate
	cliJSON(t, heir.repo, &listed, "estate", "ls", "--replication")
	if len(listed) != 4 {
		t.Fatalf("estate ls on the heir: %d estates; want its 2 and the lost machine's 2", len(listed))
	}
	for _, e := range listed {
		for _, n := range e.Names {
			if e.Replication[n] < 1 {
				t.Errorf("estate ls --replication: %s served by %d machines", n, e.Replication[n])
			}
		}
	}
}
