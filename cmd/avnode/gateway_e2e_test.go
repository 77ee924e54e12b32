package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/avnode/avnode/core/api"
)

// writeWebSite makes a small web site: index.html linking a stylesheet, an
// image and page2.html (relatively), and img/ without an index.
func writeWebSite(t testing.TB) (dir string, portrait []byte) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "www")
	os.MkdirAll(filepath.Join(dir, "img"), 0o755)
	img := image.NewRGBA(image.Rect(0, 0, 24, 16))
	for x := range 24 {
		for y := range 16 {
			img.Set(x, y, color.RGBA{uint8(x * 10), uint8(y * 15), 200, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"index.html": `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Einstein</title><link rel="stylesheet" href="style.css"></head>
<body><h1 id="title">Albert Einstein</h1>
<p>Imagination is more important than knowledge.</p>
<img id="portrait" src="img/portrait.png" alt="portrait">
<a id="next" href="page2.html">Relativity</a>
</body></html>
`,
		"style.css":          "h1 { color: rgb(12, 34, 56); }\n",
		"page2.html":         "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Relativity</title></head>\n<body><h1 id=\"page2\">Special relativity</h1><p>E = mc&sup2;</p></body></html>\n",
		"img/portrait.png":   buf.String(),
		"img/credits.txt":    "drawn by a test\n",
		"img/more/notes.txt": "nested\n",
	}
	for name, body := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, buf.Bytes()
}

// gatewayURL waits for the node's receiver to report its gateway in `avnode id`.
func gatewayURL(t testing.TB, d *proc) string {
	t.Helper()
	var gw string
	eventually(t, 30*time.Second, "the receiver reports its gateway", func() error {
		var id struct{ Gateway string }
		cliJSON(t, d.repo, &id, "id")
		if gw = id.Gateway; gw == "" {
			return fmt.Errorf("no gateway in avnode id\n%s", grepLog(d.log.String(), "receiver", "gateway"))
		}
		return nil
	})
	return gw
}

// httpDo sends one request (30 s at most) without following redirects. A
// "Host" header sets the request's host.
func httpDo(t testing.TB, client *http.Client, method, rawURL string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	c := *client
	c.Timeout = 30 * time.Second
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, rawURL, err)
	}
	return resp, string(body)
}

// A site published on one node, browsed through another node's receiver
// gateway: by plain HTTP, by a real headless Chromium in the three forms,
// and a 502 for a name whose only host has stopped.
func TestGatewayAcrossProcesses(t *testing.T) {
	t.Parallel()
	common := append(append([]string{}, lowWork...), "--names.resolve_timeout=3s")
	nodes := startNetwork(t, 4, common...)
	publisher := nodes[1]
	mustCLI(t, publisher.repo, "key", "gen", "albert")
	mustCLI(t, publisher.repo, "name", "claim", "einstein.avtr", "--key", "albert")
	siteDir, portrait := writeWebSite(t)
	bigSize := addAttackFiles(t, siteDir)
	var pub api.PublishResult
	cliJSON(t, publisher.repo, &pub, "publish", siteDir, "--name", "einstein.avtr")

	cfg := writeConfig(t, map[string]any{
		"roles":       []string{"receiver"},
		"gateway":     map[string]any{"listen": "127.0.0.1:0"},
		"role_config": map[string]any{"receiver": map[string]any{"fetch_timeout": "40s"}},
	})
	receiver := startDaemon(t, filepath.Join(t.TempDir(), "receiver"), append(common, "--bootstrap", nodes[0].addr, "--config", cfg)...)
	gw := gatewayURL(t, receiver)
	gwHost := strings.TrimPrefix(gw, "http://")
	_, port, _ := net.SplitHostPort(gwHost)
	site := "http://einstein-avtr.localhost:" + port // einstein.avtr's own origin
	t.Logf("gateway %s", gw)

	t.Run("HTTP", func(t *testing.T) {
		client := originClient(gwHost)
		resp, _ := httpDo(t, client, "GET", gw+"/name/einstein.avtr")
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != site+"/" {
			t.Errorf("the path form: %d %q, want a redirect to the name's origin %s/", resp.StatusCode, resp.Header.Get("Location"), site)
		}
		var index api.GetResult
		cliJSON(t, publisher.repo, &index, "get", "einstein.avtr/index.html", "-o", filepath.Join(t.TempDir(), "i.html"))
		resp, body := httpDo(t, client, "GET", site+"/")
		if resp.StatusCode != 200 || !strings.Contains(body, "Albert Einstein") ||
			resp.Header.Get("Content-Type") != "text/html; charset=utf-8" || resp.Header.Get("ETag") != `"`+index.CID+`"` ||
			!strings.HasPrefix(resp.Header.Get("Cache-Control"), "public, max-age=") {
			t.Fatalf("index: %d %v\n%s\n%s", resp.StatusCode, resp.Header, body, grepLog(receiver.log.String(), "receiver", "ERROR"))
		}
		resp, _ = httpDo(t, client, "GET", site+"/", "If-None-Match", `"`+index.CID+`"`)
		if resp.StatusCode != http.StatusNotModified {
			t.Errorf("If-None-Match: %d, want 304", resp.StatusCode)
		}
		for path, ctype := range map[string]string{"style.css": "text/css; charset=utf-8", "page2.html": "text/html; charset=utf-8",
			"img/portrait.png": "image/png", "img/credits.txt": "text/plain; charset=utf-8"} {
			if resp, _ := httpDo(t, client, "HEAD", site+"/"+path); resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ctype {
				t.Errorf("HEAD %s: %d %q, want %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), ctype)
			}
		}
		resp, body = httpDo(t, client, "GET", site+"/img/portrait.png")
		if resp.StatusCode != 200 || body != string(portrait) {
			t.Errorf("portrait.png: %d, %d bytes, want the %d published", resp.StatusCode, len(body), len(portrait))
		}
		resp, body = httpDo(t, client, "GET", site+"/img/portrait.png", "Range", "bytes=8-23")
		if resp.StatusCode != http.StatusPartialContent || body != string(portrait[8:24]) ||
			resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 8-23/%d", len(portrait)) {
			t.Errorf("Range: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Range"), body)
		}
		resp, body = httpDo(t, client, "GET", site+"/img/")
		if resp.StatusCode != 200 || !strings.Contains(body, `href="portrait.png"`) || !strings.Contains(body, `href="more/"`) {
			t.Errorf("img/ listing: %d\n%s", resp.StatusCode, body)
		}
		resp, _ = httpDo(t, client, "GET", gw+"/cid/"+pub.Root+"/style.css")
		if resp.StatusCode != http.StatusMovedPermanently || !strings.HasSuffix(resp.Header.Get("Location"), ".localhost:"+port+"/style.css") {
			t.Fatalf("/cid/ROOT/style.css: %d %q, want a redirect to the CID's origin", resp.StatusCode, resp.Header.Get("Location"))
		}
		resp, body = httpDo(t, client, "GET", resp.Header.Get("Location"))
		if resp.StatusCode != 200 || !strings.Contains(body, "rgb(12, 34, 56)") || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
			t.Errorf("/cid/ROOT/style.css: %d %v %q", resp.StatusCode, resp.Header, body)
		}
		start := time.Now()
		resp, body = httpDo(t, client, "GET", "http://nobody-avtr.localhost:"+port+"/")
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "no such name") {
			t.Errorf("unknown name: %d %q", resp.StatusCode, body)
		}
		t.Logf("404 for an unknown name in %s (names.resolve_timeout is 3s here)", time.Since(start).Round(time.Millisecond))
		resp, body = httpDo(t, client, "GET", site+"/nothing.html")
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("missing file: %d %q", resp.StatusCode, body)
		}
		// The dotted subdomain form redirects to the name's origin.
		resp, _ = httpDo(t, client, "GET", "http://einstein.avtr.localhost:"+port+"/page2.html")
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != site+"/page2.html" {
			t.Errorf("dotted subdomain form: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}

		resp, body = httpDo(t, client, "GET", gw+"/proxy.pac")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ns-proxy-autoconfig" ||
			!strings.Contains(body, `dnsDomainIs(host, ".avtr")`) || !strings.Contains(body, `return "PROXY `+gwHost+`"`) ||
			!strings.Contains(body, `return "DIRECT"`) {
			t.Errorf("PAC: %d %q\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}

		// As a proxy: names are served (a browser at the name's origin);
		// other hosts are refused, never contacted.
		var contacted atomic.Int64
		bait := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		bait.Config.ConnState = func(net.Conn, http.ConnState) { contacted.Add(1) }
		bait.Start()
		defer bait.Close()
		proxyURL, _ := url.Parse(gw)
		proxied := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
		resp, _ = httpDo(t, proxied, "GET", "http://einstein.avtr/page2.html", "User-Agent", browserUA)
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != site+"/page2.html" {
			t.Errorf("proxy form, a browser: %d %q, want a redirect to the name's origin", resp.StatusCode, resp.Header.Get("Location"))
		}
		resp, body = httpDo(t, proxied, "GET", "http://einstein.avtr/page2.html")
		if resp.StatusCode != 200 || !strings.Contains(body, "Special relativity") {
			t.Errorf("proxy form, a program: %d %q, want the page", resp.StatusCode, body)
		}
		resp, body = httpDo(t, proxied, "GET", site+"/page2.html")
		if resp.StatusCode != 200 || !strings.Contains(body, "Special relativity") {
			t.Errorf("proxy form, the name's origin: %d %q", resp.StatusCode, body)
		}
		for _, u := range []string{bait.URL + "/", "http://example.com/"} {
			resp, body = httpDo(t, proxied, "GET", u)
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "not an avnode name") {
				t.Errorf("proxied %s: %d %q, want 403", u, resp.StatusCode, body)
			}
		}
		conn, err := net.Dial("tcp", gwHost)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %[1]s\r\n\r\n", bait.Listener.Addr())
		if resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: "CONNECT"}); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("CONNECT: %v %v, want 405", resp, err)
		}
		if n := contacted.Load(); n != 0 {
			t.Errorf("the gateway connected to another host %d times", n)
		}

		var st struct {
			URL      string
			Requests int
		}
		cliJSON(t, receiver.repo, &st, "roles", "call", "receiver", "status")
		if st.URL != gw || st.Requests < 10 {
			t.Errorf("status: %+v", st)
		}
	})

	t.Run("Chromium", func(t *testing.T) {
		exe := chromiumPath(t)
		browser := newBrowser(t, exe)
		// Every form lands on the name's own origin.
		checkSiteInBrowser(t, browser, gw+"/name/einstein.avtr/", site+"/page2.html")
		checkSiteInBrowser(t, browser, "http://einstein.avtr.localhost:"+port+"/", site+"/page2.html")
		// Through the PAC file, as a browser set to use it: only .avtr goes to the gateway.
		proxied := newBrowser(t, exe, chromedp.Flag("proxy-pac-url", gw+"/proxy.pac"))
		checkSiteInBrowser(t, proxied, "http://einstein.avtr/", site+"/page2.html")
		// By name, as when the receiver's DNS responder answers .avtr with
		// the gateway's address (here Chromium's own resolver rule does).
		byName := newBrowser(t, exe, chromedp.Flag("host-resolver-rules", "MAP *.avtr 127.0.0.1"))
		checkSiteInBrowser(t, byName, "http://einstein.avtr:"+port+"/", site+"/page2.html")
	})

	attacks := &gatewayUnderAttack{nodes: nodes, publisher: publisher, receiver: receiver, gw: gw, gwHost: gwHost, port: port, bigSize: bigSize}
	t.Run("Attacks", attacks.run)

	t.Run("HostGone", func(t *testing.T) {
		// A name whose only host stops: it still resolves, but nobody serves it.
		gone := nodes[2]
		mustCLI(t, gone.repo, "key", "gen", "k")
		mustCLI(t, gone.repo, "name", "claim", "gone.avtr", "--key", "k")
		other, _ := writeWebSite(t)
		os.WriteFile(filepath.Join(other, "index.html"), []byte("<h1>soon gone</h1>\n"), 0o644)
		cliJSON(t, gone.repo, &pub, "publish", other, "--name", "gone.avtr")
		gone.stop()
		start := time.Now()
		resp, body := httpDo(t, originClient(gwHost), "GET", "http://gone-avtr.localhost:"+port+"/")
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "could not be fetched") {
			t.Fatalf("a name with its host gone: %d %q, want 502 with an explanation", resp.StatusCode, body)
		}
		t.Logf("502 in %s: %s", time.Since(start).Round(time.Millisecond), body)
	})
}

// browserUA is a browser's User-Agent: the gateway sends a browser asking
// for http://NAME/ to the name's origin, and serves other programs there.
const browserUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/139.0.0.0 Safari/537.36"

// originClient reaches the gateway whatever the host: browsers resolve
// NAME.localhost to this machine by themselves, Go's resolver may not.
func originClient(gwHost string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, gwHost)
	}}}
}

// chromiumPath finds Chromium, or skips the test (fails it on CI, where
// `make test-deps` installs it).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed; `make test-deps` installs it (apt-get install chromium)")
	}
	t.Skip("chromium is not installed: skipping the browser test (`make test-deps` as root installs it)")
	return ""
}

// newBrowser starts a headless Chromium, stopped when the test ends.
func newBrowser(t *testing.T, exe string, opts ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	all := append(append([]chromedp.ExecAllocatorOption{}, chromedp.DefaultExecAllocatorOptions[:]...),
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU) // no sandbox: tests run as root
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(all, opts...)...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first Run starts the browser, which lives as long as the context
	// of that Run: bound the wait without a deadline on the context.
	started := make(chan error, 1)
	go func() { started <- chromedp.Run(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start chromium: %v", err)
		}
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("chromium did not start in 30s")
	}
	return ctx
}

// checkSiteInBrowser opens the site's index at start and checks what a
// reader sees: the heading, the stylesheet applied, the image drawn; then
// follows the relative link to page2.
func checkSiteInBrowser(t *testing.T, browser context.Context, start, page2 string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(browser, 60*time.Second)
	defer cancel()
	var heading, headingColor, next, location string
	var imageDrawn bool
	err := chromedp.Run(ctx,
		chromedp.Navigate(start), // returns after the load event: stylesheet and image are in
		chromedp.Text("#title", &heading, chromedp.ByQuery),
		chromedp.Evaluate(`getComputedStyle(document.getElementById("title")).color`, &headingColor),
		chromedp.Evaluate(`(() => { const i = document.getElementById("portrait"); return i.complete && i.naturalWidth === 24 })()`, &imageDrawn),
		chromedp.Click("#next", chromedp.ByQuery),
		chromedp.Text("#page2", &next, chromedp.ByQuery), // waits for page2
		chromedp.Location(&location),
	)
	if err != nil {
		t.Fatalf("browse %s: %v", start, err)
	}
	if heading != "Albert Einstein" || headingColor != "rgb(12, 34, 56)" || !imageDrawn || next != "Special relativity" || location != page2 {
		t.Errorf("browse %s: heading %q color %q image drawn %v; after the click %q at %s (want %s)",
			start, heading, headingColor, imageDrawn, next, location, page2)
	}
}
