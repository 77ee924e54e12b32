package main

// Attacks on the receiver's gateway, as issue #18 made them: a request
// with thousands of byte ranges, a redirect to //another.host, a name's
// page reading or planting another name's storage and cookies in Chromium,
// another web site's page making the gateway fetch, and the node's
// provider records telling the network what its user browsed.

import (
	"bytes"
	"context"
	"fmt"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/ipfs/go-cid"
	dhtpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/avnode/avnode/core/api"
)

// gatewayUnderAttack is what the attacks need of TestGatewayAcrossProcesses.
type gatewayUnderAttack struct {
	nodes     []*proc // the network; nodes[1] publishes
	receiver  *proc
	gw        string // http://127.0.0.1:PORT
	gwHost    string
	port      string
	bigSize   int // einstein.avtr/big.bin, bytes
	publisher *proc
}

// addAttackFiles adds what the attacks need to the einstein.avtr site: a
// 4 MiB file for the ranges and a directory named like a host.
func addAttackFiles(t *testing.T, dir string) int {
	t.Helper()
	big := bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16)
	os.MkdirAll(filepath.Join(dir, "evil.example.com"), 0o755)
	if os.WriteFile(filepath.Join(dir, "big.bin"), big, 0o644) != nil ||
		os.WriteFile(filepath.Join(dir, "evil.example.com", "index.html"), []byte("a directory named like a host\n"), 0o644) != nil {
		t.Fatal("write the attack files")
	}
	return len(big)
}

func (e *gatewayUnderAttack) run(t *testing.T) {
	t.Run("OpenRedirect", e.openRedirect)
	t.Run("ManyRanges", e.manyRanges)
	t.Run("Origins", e.origins)
	t.Run("CrossSiteAndPrivacy", e.crossSiteAndPrivacy)
}

// GET //evil.example.com on a name's origin, where the site has a
// directory of that name: the redirect to its slash stays on the origin.
func (e *gatewayUnderAttack) openRedirect(t *testing.T) {
	client := originClient(e.gwHost)
	for _, c := range []struct{ url, host string }{
		{"http://einstein-avtr.localhost:" + e.port + "//evil.example.com", ""},
		{e.gw + "//evil.example.com", "einstein.avtr.localhost:" + e.port},
		{e.gw + "/name/einstein.avtr//evil.example.com", ""},
	} {
		var header []string
		if c.host != "" {
			header = []string{"Host", c.host}
		}
		resp, _ := httpDo(t, client, "GET", c.url, header...)
		loc, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode/100 != 3 || err != nil {
			t.Errorf("GET %s: %d %q, want a redirect", c.url, resp.StatusCode, resp.Header.Get("Location"))
			continue
		}
		asked, _ := url.Parse(c.url)
		if c.host != "" {
			asked.Host = c.host
		}
		if to := asked.ResolveReference(loc); !strings.HasSuffix(to.Hostname(), ".localhost") || to.Port() != e.port {
			t.Errorf("GET %s (Host %q): Location %q sends the browser to %s, off the gateway", c.url, c.host, loc, to)
		}
	}
}

// One request with 8,000 byte ranges of big.bin: answered with the ranges
// merged (or the whole file), never 8,000 parts.
func (e *gatewayUnderAttack) manyRanges(t *testing.T) {
	client := originClient(e.gwHost)
	target := "http://einstein-avtr.localhost:" + e.port + "/big.bin"
	if resp, _ := httpDo(t, client, "HEAD", target); resp.StatusCode != 200 { // fetched before the count starts
		t.Fatalf("HEAD big.bin: %d", resp.StatusCode)
	}
	step := e.bigSize / 8000
	spec := make([]string, 8000)
	for i := range spec {
		spec[i] = fmt.Sprintf("%d-%d", i*step, i*step)
	}
	header := "bytes=" + strings.Join(spec, ",")
	pids := []int{e.receiver.cmd.Process.Pid, rolePID(t, e.receiver, "receiver")}
	cpuBefore := []float64{cpuSeconds(t, pids[0]), cpuSeconds(t, pids[1])}
	resp, body := httpDo(t, client, "GET", target, "Range", header)
	t.Logf("%d ranges in a %d-byte Range header: %d, %d bytes answered; CPU node %.2fs, receiver %.2fs",
		len(spec), len(header), resp.StatusCode, len(body),
		cpuSeconds(t, pids[0])-cpuBefore[0], cpuSeconds(t, pids[1])-cpuBefore[1])
	parts := 1
	if mt, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "multipart/byteranges" {
		parts = 0
		for r := multipart.NewReader(strings.NewReader(body), params["boundary"]); ; parts++ {
			if _, err := r.NextPart(); err != nil {
				break
			}
		}
	}
	if (resp.StatusCode != 200 && resp.StatusCode != 206) || parts > 16 || len(body) > e.bigSize {
		t.Errorf("8000 ranges answered with %d, %d parts, %d bytes; want at most 16 parts and at most the file's %d bytes",
			resp.StatusCode, parts, len(body), e.bigSize)
	}
}

// publishPage claims name with a new key on the publisher and publishes a
// site of one index.html.
func (e *gatewayUnderAttack) publishPage(t *testing.T, name, index string) api.PublishResult {
	t.Helper()
	key := strings.ReplaceAll(name, ".", "-")
	mustCLI(t, e.publisher.repo, "key", "gen", key)
	mustCLI(t, e.publisher.repo, "name", "claim", name, "--key", key)
	dir := filepath.Join(t.TempDir(), key)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(index), 0o644); err != nil {
		t.Fatal(err)
	}
	var pub api.PublishResult
	cliJSON(t, e.publisher.repo, &pub, "publish", dir, "--name", name)
	return pub
}

// rolePID is the process ID of a node's role plugin.
func rolePID(t *testing.T, d *proc, role string) int {
	t.Helper()
	var roles []api.RoleStatus
	cliJSON(t, d.repo, &roles, "roles")
	for _, r := range roles {
		if r.Name == role && r.PID != 0 {
			return r.PID
		}
	}
	t.Fatalf("no running %s in %+v", role, roles)
	return 0
}

// The page of evil.avtr, another name, tries, in Chromium, to read einstein.avtr's localStorage
// and cookies and to plant a cookie it would receive: in the path form,
// the dotted subdomain form, the proxy form and by name.
func (e *gatewayUnderAttack) origins(t *testing.T) {
	exe := chromiumPath(t)
	e.publishPage(t, "evil.avtr", "<!DOCTYPE html><title>evil</title><h1 id=evil>evil</h1>\n")

	// What the attacker's page runs: read what it can, and set a cookie
	// on every domain above its own host.
	const attack = `(() => {
		const labels = location.hostname.split(".");
		for (let i = 1; i < labels.length; i++) {
			document.cookie = "planted=1; path=/; domain=" + labels.slice(i).join(".");
		}
		return JSON.stringify({storage: localStorage.getItem("secret"), cookie: document.cookie});
	})()`
	for _, form := range []struct {
		name, victim, attacker string
		flag, value            string // a browser flag the form needs
	}{
		{"path", e.gw + "/name/einstein.avtr/", e.gw + "/name/evil.avtr/", "", ""},
		{"subdomain", "http://einstein.avtr.localhost:" + e.port + "/", "http://evil.avtr.localhost:" + e.port + "/", "", ""},
		{"proxy", "http://einstein.avtr/", "http://evil.avtr/", "proxy-pac-url", e.gw + "/proxy.pac"},
		// As the receiver's DNS responder resolves names (here Chromium's own rule).
		{"name", "http://einstein.avtr:" + e.port + "/", "http://evil.avtr:" + e.port + "/", "host-resolver-rules", "MAP *.avtr 127.0.0.1"},
	} {
		t.Run(form.name, func(t *testing.T) {
			var opts []chromedp.ExecAllocatorOption
			if form.flag != "" {
				opts = append(opts, chromedp.Flag(form.flag, form.value))
			}
			browser := newBrowser(t, exe, opts...) // a fresh profile
			ctx, cancel := context.WithTimeout(browser, 60*time.Second)
			defer cancel()
			var victimAt, stolen, victimCookies string
			err := chromedp.Run(ctx,
				chromedp.Navigate(form.victim),
				chromedp.Evaluate(`localStorage.setItem("secret", "s3cret"); document.cookie = "secret=s3cret; path=/"; location.origin`, &victimAt),
				chromedp.Navigate(form.attacker),
				chromedp.WaitVisible("#evil", chromedp.ByQuery),
				chromedp.Evaluate(attack, &stolen),
				chromedp.Navigate(form.victim),
				chromedp.Evaluate(`document.cookie`, &victimCookies),
			)
			if err != nil {
				t.Fatalf("browse: %v", err)
			}
			t.Logf("%s form: einstein.avtr at %s; the attacker's page saw %s; einstein.avtr's cookies %q", form.name, victimAt, stolen, victimCookies)
			if strings.Contains(stolen, "s3cret") {
				t.Errorf("%s form: evil.avtr's page read einstein.avtr's storage or cookies: %s", form.name, stolen)
			}
			if strings.Contains(victimCookies, "planted") {
				t.Errorf("%s form: evil.avtr's page planted a cookie einstein.avtr receives: %q", form.name, victimCookies)
			}
		})
	}
}

// Another web site's page (a plain server on another port) points an
// <img>, a frame, a stylesheet and a fetch() at a name nobody browsed yet,
// in every form (by name too, as the DNS responder resolves it), then
// sends the tab there by script: the gateway asks the node for
// nothing. Then the user opens the name, and the node's provider records,
// read from the other nodes by a bare libp2p host, do not list it for the
// name's content, while they do list it for content it got with `avnode get`.
func (e *gatewayUnderAttack) crossSiteAndPrivacy(t *testing.T) {
	exe := chromiumPath(t)
	hidden := e.publishPage(t, "hidden.avtr", "<!DOCTYPE html><title>hidden</title><h1>what the user reads</h1>\n")

	targets := []string{
		e.gw + "/name/hidden.avtr/index.html",
		"http://hidden-avtr.localhost:" + e.port + "/index.html",
		"http://hidden.avtr.localhost:" + e.port + "/",
		e.gw + "/cid/" + hidden.Root + "/index.html",
		// By name, as the receiver's DNS responder makes it resolve
		// (the browser's resolver rule below): a browser has no
		// Sec-Fetch-* there, so it is sent to the name's origin first.
		"http://hidden.avtr:" + e.port + "/index.html",
	}
	var page strings.Builder
	page.WriteString("<!DOCTYPE html><html><body>\n")
	for i, u := range targets {
		fmt.Fprintf(&page, "<img src=%q><iframe src=%q></iframe><link rel=stylesheet href=\"%s?css\">\n", u, u+"?frame"+strconv.Itoa(i), u)
	}
	fmt.Fprintf(&page, "<script>window.settled = Promise.allSettled([%s]).then(() => new Promise(r => {\n"+
		"  const wait = () => [...document.images].every(i => i.complete) ? r(true) : setTimeout(wait, 50); wait(); }));</script>\n",
		"fetch("+strings.Join(quoteAll(targets), ", {mode: 'no-cors'}), fetch(")+", {mode: 'no-cors'})")
	page.WriteString("</body></html>\n")
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.URL.Path == "/go" { // sends the tab to the name, no click
			fmt.Fprintf(w, "<!DOCTYPE html><script>location.href = %q;</script>\n", targets[1])
			return
		}
		fmt.Fprint(w, page.String())
	}))
	defer attacker.Close()

	fetchesBefore, refusedBefore := gatewayCounts(t, e.receiver)
	browser := newBrowser(t, exe, chromedp.Flag("host-resolver-rules", "MAP *.avtr 127.0.0.1"))
	ctx, cancel := context.WithTimeout(browser, 60*time.Second)
	defer cancel()
	var settled bool
	var landed string
	err := chromedp.Run(ctx,
		chromedp.Navigate(attacker.URL+"/"),
		chromedp.Evaluate(`window.settled`, &settled, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }),
		chromedp.Navigate(attacker.URL+"/go"),
		chromedp.Poll(`location.host.startsWith("hidden-avtr.localhost") && document.readyState === "complete"`, nil),
		chromedp.Evaluate(`document.body.innerText`, &landed),
	)
	if err != nil {
		t.Fatalf("the attacker's pages: %v", err)
	}
	fetches, refused := gatewayCounts(t, e.receiver)
	if fetches != fetchesBefore || strings.Contains(landed, "what the user reads") {
		t.Fatalf("another site's page made the gateway resolve or fetch %d times (the tab sent there shows %q)", fetches-fetchesBefore, landed)
	}
	if refused-refusedBefore < len(targets) {
		t.Fatalf("only %d of the attacker's requests reached the gateway (and were refused): the attack did not run", refused-refusedBefore)
	}
	t.Logf("%d requests refused; the tab a script sent to hidden.avtr shows: %s", refused-refusedBefore, landed)

	// The user opens hidden.avtr, then gets other content with the CLI.
	resp, body := httpDo(t, originClient(e.gwHost), "GET", "http://hidden-avtr.localhost:"+e.port+"/")
	if resp.StatusCode != 200 || !strings.Contains(body, "what the user reads") {
		t.Fatalf("the user opening hidden.avtr: %d %q", resp.StatusCode, body)
	}
	other := filepath.Join(t.TempDir(), "other")
	os.MkdirAll(other, 0o755)
	os.WriteFile(filepath.Join(other, "a.txt"), []byte("fetched with avnode get\n"), 0o644)
	var got api.PublishResult
	cliJSON(t, e.publisher.repo, &got, "publish", other)
	mustCLI(t, e.receiver.repo, "get", "/cid/"+got.Root, "-o", filepath.Join(t.TempDir(), "out"))

	spy := newAttacker(t)
	receiverID, _ := peer.Decode(e.receiver.peerID)
	eventually(t, 30*time.Second, "the receiver announced what `avnode get` fetched", func() error {
		if !providedBy(t, spy, e.nodes, got.Root, receiverID) {
			return fmt.Errorf("no node lists %s as a provider of %s", receiverID, got.Root)
		}
		return nil
	})
	if providedBy(t, spy, e.nodes, hidden.Root, receiverID) {
		t.Errorf("the receiver announced hidden.avtr's content %s, which its user only browsed", hidden.Root)
	}
}

// providedBy asks every node, as a bare DHT client, for the providers of a
// root, and reports whether any lists p.
func providedBy(t *testing.T, spy *attacker, nodes []*proc, root string, p peer.ID) bool {
	t.Helper()
	c, err := cid.Decode(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, n := range nodes {
		if n.cmd.ProcessState != nil {
			continue // stopped
		}
		id := spy.connect(ctx, n)
		resp, err := spy.request(ctx, id, &dhtpb.Message{Type: dhtpb.Message_GET_PROVIDERS, Key: c.Hash()})
		if err != nil {
			t.Fatalf("GET_PROVIDERS %s from %s: %v", root, n.repo, err)
		}
		for _, pp := range resp.GetProviderPeers() {
			if peer.ID(pp.GetId()) == p {
				return true
			}
		}
	}
	return false
}

// gatewayCounts is the receiver's count of resolves and fetches asked of
// the node, and of the requests it refused as other sites'.
func gatewayCounts(t *testing.T, receiver *proc) (fetches, refused int) {
	t.Helper()
	var st struct {
		Fetches int
		Refused int `json:"cross_site_refused"`
	}
	cliJSON(t, receiver.repo, &st, "roles", "call", "receiver", "status")
	return st.Fetches, st.Refused
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strconv.Quote(s)
	}
	return out
}
