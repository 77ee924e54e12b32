package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/avnode/avnode/sdk"
	"github.com/avnode/avnode/sdk/sdktest"
)

// pngBytes is the start of a real PNG: its signature and IHDR chunk.
const pngBytes = "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"

// site is a published directory in the fake store.
type site struct {
	root, sub, docs string
	files           map[string]string // path → content
}

func testSite(f *sdktest.Host, name string) site {
	s := site{files: map[string]string{
		"/index.html":        "<!DOCTYPE html><h1>Hello</h1><a href=\"page2.html\">next</a>\n",
		"/page2.html":        "<h1>Page two</h1>\n",
		"/style.css":         "h1 { color: rgb(255, 0, 0); }\n",
		"/dot.png":           pngBytes,
		"/notes":             "plain words, no extension\n",
		"/range.txt":         strings.Repeat("0123456789", 300),
		"/sub/a b.txt":       "spaced",
		"/sub/<i>x.txt":      "tagged",
		"/sub/x:y.txt":       "coloned",
		"/docs/index.html":   "<h1>Docs</h1>\n",
		"/docs/more/deep.md": "# deep\n",
	}}
	s.sub = f.AddDir(map[string]string{"a b.txt": "spaced", "<i>x.txt": "tagged", "x:y.txt": "coloned"}, nil)
	more := f.AddDir(map[string]string{"deep.md": "# deep\n"}, nil)
	s.docs = f.AddDir(map[string]string{"index.html": "<h1>Docs</h1>\n"}, map[string]string{"more": more})
	top := map[string]string{}
	for p, content := range s.files {
		if strings.Count(p, "/") == 1 {
			top[p[1:]] = content
		}
	}
	s.root = f.AddDir(top, map[string]string{"sub": s.sub, "docs": s.docs})
	f.SetName(sdk.Resolution{Name: name, Root: s.root, Seq: 1, Expires: time.Now().Add(24 * time.Hour)})
	return s
}

// calls returns what the gateway asked of the node: the names resolved,
// the targets fetched (announced or not) and the number of file reads.
func calls(f *sdktest.Host) (resolves, fetched []string, reads int) {
	return f.Calls("Resolve"), append(f.Calls("Fetch"), f.Calls("FetchUnannounced")...), len(f.Calls("ReadFile"))
}

// startGateway serves a gateway on the fake host on a loopback port.
func startGateway(t *testing.T, f *sdktest.Host, change func(*settings)) (*gateway, *httptest.Server) {
	t.Helper()
	set := settings{topics: []string{"avtr"}, maxFetches: 4, fetchTimeout: 10 * time.Second, cacheEntries: 100}
	if change != nil {
		change(&set)
	}
	base, cancel := context.WithCancel(context.Background())
	srv := httptest.NewUnstartedServer(nil)
	g := newGateway(base, f, set, srv.Listener.Addr().String(), 5*time.Minute)
	srv.Config.Handler = g
	srv.Start()
	// Browsers resolve NAME.localhost to this machine by themselves; Go's
	// resolver may not: the test client dials the gateway for every host.
	srv.Client().Transport.(*http.Transport).DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
	}
	t.Cleanup(func() {
		srv.Close()
		cancel()
		g.wait(context.Background())
	})
	return g, srv
}

// request sends one request and returns the response with its body read.
// Redirects are not followed. A "Host" header sets the request's host.
func request(t *testing.T, client *http.Client, method, rawURL string, header ...string) (*http.Response, string) {
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
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.Timeout = 20 * time.Second
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, rawURL, err)
	}
	return resp, string(body)
}

// get sends a GET to the gateway. A path-form path, /name/NAME/P or
// /cid/CID/P, goes to P at its name's or CID's origin, where the gateway
// serves it (the path form only redirects there), unless a Host is given.
func get(t *testing.T, srv *httptest.Server, p string, header ...string) (*http.Response, string) {
	t.Helper()
	if !slices.Contains(header, "Host") {
		if host, rest, ok := originOf(srv, p); ok {
			p, header = rest, append(header, "Host", host)
		}
	}
	return request(t, srv.Client(), http.MethodGet, srv.URL+p, header...)
}

// getPath is get without going to the origin.
func getPath(t *testing.T, srv *httptest.Server, p string, header ...string) (*http.Response, string) {
	t.Helper()
	return request(t, srv.Client(), http.MethodGet, srv.URL+p, header...)
}

// originHost is the host of a label's origin on the test gateway.
func originHost(srv *httptest.Server, label string) string {
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return label + ".localhost:" + port
}

// originOf is the host of a path-form path's origin and the path there.
func originOf(srv *httptest.Server, p string) (host, rest string, ok bool) {
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	for _, prefix := range []string{"/name/", "/cid/"} {
		if after, found := strings.CutPrefix(p, prefix); found {
			site, rest, _ := strings.Cut(after, "/")
			label := strings.ReplaceAll(strings.ReplaceAll(site, "-", "--"), ".", "-")
			return label + ".localhost:" + port, "/" + rest, true
		}
	}
	return "", "", false
}

func TestContentTypesAndHeaders(t *testing.T) {
	f := sdktest.NewHost(t)
	s := testSite(f, "site.avtr")
	_, srv := startGateway(t, f, nil)
	for _, c := range []struct{ path, file, ctype string }{
		{"/name/site.avtr/", "/index.html", "text/html; charset=utf-8"},
		{"/name/site.avtr/page2.html", "/page2.html", "text/html; charset=utf-8"},
		{"/name/site.avtr/style.css", "/style.css", "text/css; charset=utf-8"},
		{"/name/site.avtr/dot.png", "/dot.png", "image/png"},
		{"/name/site.avtr/notes", "/notes", "text/plain; charset=utf-8"}, // sniffed: no extension
		{"/name/site.avtr/docs/", "/docs/index.html", "text/html; charset=utf-8"},
		{"/name/site.avtr/sub/a%20b.txt", "/sub/a b.txt", "text/plain; charset=utf-8"},
	} {
		resp, body := get(t, srv, c.path)
		want := s.files[c.file]
		if resp.StatusCode != 200 || body != want {
			t.Errorf("GET %s: %d %q, want 200 %q", c.path, resp.StatusCode, body, want)
			continue
		}
		if got := resp.Header.Get("Content-Type"); got != c.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", c.path, got, c.ctype)
		}
		if got, want := resp.Header.Get("ETag"), `"`+sdktest.CID(want)+`"`; got != want {
			t.Errorf("GET %s: ETag %s, want %s", c.path, got, want)
		}
		if got := resp.Header.Get("Cache-Control"); !strings.HasPrefix(got, "public, max-age=") || got == "public, max-age=0" {
			t.Errorf("GET %s: Cache-Control %q, want the zone TTL", c.path, got)
		}
	}
	// A CID's content never changes: browsers may keep it.
	resp, body := get(t, srv, "/cid/"+s.root+"/style.css")
	if resp.StatusCode != 200 || body != s.files["/style.css"] || resp.Header.Get("Cache-Control") != immutable {
		t.Errorf("GET /cid/ROOT/style.css: %d %q %q", resp.StatusCode, resp.Header.Get("Cache-Control"), body)
	}
	// A file's own CID serves the file.
	resp, body = get(t, srv, "/cid/"+sdktest.CID(s.files["/dot.png"]))
	if resp.StatusCode != 200 || body != pngBytes || resp.Header.Get("Content-Type") != "image/png" {
		t.Errorf("GET /cid/FILE: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	// HEAD: the headers of GET, no body.
	resp, body = request(t, srv.Client(), http.MethodHead, srv.URL+"/style.css", "Host", originHost(srv, "site-avtr"))
	if resp.StatusCode != 200 || body != "" || resp.Header.Get("Content-Type") != "text/css; charset=utf-8" ||
		resp.ContentLength != int64(len(s.files["/style.css"])) {
		t.Errorf("HEAD style.css: %d %v len %d body %q", resp.StatusCode, resp.Header, resp.ContentLength, body)
	}
}

func TestRangesAndConditionalRequests(t *testing.T) {
	f := sdktest.NewHost(t)
	s := testSite(f, "site.avtr")
	_, srv := startGateway(t, f, nil)
	full := s.files["/range.txt"]
	const p = "/name/site.avtr/range.txt"
	for _, c := range []struct {
		rng        string
		code       int
		body, span string
	}{
		{"bytes=0-9", 206, full[:10], "bytes 0-9/3000"},
		{"bytes=1000-2499", 206, full[1000:2500], "bytes 1000-2499/3000"}, // past the first bytes read for sniffing
		{"bytes=2990-", 206, full[2990:], "bytes 2990-2999/3000"},
		{"bytes=-5", 206, full[2995:], "bytes 2995-2999/3000"},
		{"bytes=5000-", 416, "", "bytes */3000"},
	} {
		resp, body := get(t, srv, p, "Range", c.rng)
		if resp.StatusCode != c.code || resp.Header.Get("Content-Range") != c.span || (c.code == 206 && body != c.body) {
			t.Errorf("Range %s: %d %q %q, want %d %q", c.rng, resp.StatusCode, resp.Header.Get("Content-Range"), body, c.code, c.span)
		}
	}
	// Ranges close together are served as one; ranges far apart as parts.
	resp, body := get(t, srv, p, "Range", "bytes=2998-2999,0-1")
	if resp.StatusCode != 206 || resp.Header.Get("Content-Range") != "bytes 0-2999/3000" || body != full {
		t.Errorf("two ranges close together: %d %q", resp.StatusCode, resp.Header.Get("Content-Range"))
	}
	big := strings.Repeat("x", 4*rangeGap)
	f.SetName(sdk.Resolution{Name: "big.avtr", Root: f.AddDir(map[string]string{"big.txt": big}, nil)})
	resp, body = get(t, srv, "/name/big.avtr/big.txt", "Range", fmt.Sprintf("bytes=0-1,%d-%d", 3*rangeGap, 3*rangeGap+1))
	if resp.StatusCode != 206 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges") || strings.Count(body, "Content-Range") != 2 {
		t.Errorf("two ranges far apart: %d %q\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	// Empty items in the list are skipped by net/http: they must not hide
	// thousands of ranges from the bound.
	var spread []string
	for i := range 4000 {
		spread = append(spread, fmt.Sprintf("%d-%d", i*2*rangeGap%len(big), i*2*rangeGap%len(big)), "")
	}
	if resp, body = get(t, srv, "/name/big.avtr/big.txt", "Range", "bytes="+strings.Join(spread, ",")); strings.Count(body, "Content-Range") > maxRanges {
		t.Errorf("ranges with empty items between them: %d, %d parts", resp.StatusCode, strings.Count(body, "Content-Range"))
	}
	// An attacker's thousands of ranges: merged, or the whole file once.
	var many []string
	for i := range 4000 {
		many = append(many, fmt.Sprintf("%d-%d", (i*7919)%len(big), (i*7919)%len(big)))
	}
	_, _, readsBefore := calls(f)
	resp, body = get(t, srv, "/name/big.avtr/big.txt", "Range", "bytes="+strings.Join(many, ","))
	_, _, reads := calls(f)
	if resp.StatusCode != 206 || !strings.HasPrefix(resp.Header.Get("Content-Range"), "bytes 0-") || !strings.HasPrefix(big, body) {
		t.Errorf("4000 ranges: %d %q, %d bytes, want them merged into one", resp.StatusCode, resp.Header.Get("Content-Range"), len(body))
	}
	if reads-readsBefore > 3 {
		t.Errorf("4000 ranges made %d reads of the node's store", reads-readsBefore)
	}
	for i := range many {
		many[i] = fmt.Sprintf("%d-%d", i*2*rangeGap, i*2*rangeGap)
	}
	huge := strings.Repeat("y", 2*rangeGap*(maxRanges+1))
	f.SetName(sdk.Resolution{Name: "huge.avtr", Root: f.AddDir(map[string]string{"huge.txt": huge}, nil)})
	resp, body = get(t, srv, "/name/huge.avtr/huge.txt", "Range", "bytes="+strings.Join(many[:maxRanges+1], ","))
	if resp.StatusCode != 200 || body != huge {
		t.Errorf("%d ranges far apart: %d, %d bytes, want the whole file (200)", maxRanges+1, resp.StatusCode, len(body))
	}

	// A short range costs the node a short read, not the rest of the file;
	// the whole file still arrives whole through several windows.
	large := strings.Repeat("z", 4<<20)
	f.SetName(sdk.Resolution{Name: "large.avtr", Root: f.AddDir(map[string]string{"large.bin": large}, nil)})
	get(t, srv, "/name/large.avtr/large.bin") // warm: the first request also sniffs the type
	askedBefore := f.BytesRead()
	resp, body = get(t, srv, "/name/large.avtr/large.bin", "Range", "bytes=2000000-2000000")
	asked := f.BytesRead() - askedBefore
	if resp.StatusCode != 206 || body != "z" || asked > firstReadWindow+sniffLen {
		t.Errorf("one byte of a 4 MiB file: %d %q, the node asked for %d bytes", resp.StatusCode, body, asked)
	}
	if resp, body = get(t, srv, "/name/large.avtr/large.bin"); resp.StatusCode != 200 || body != large {
		t.Errorf("the whole 4 MiB file: %d, %d bytes", resp.StatusCode, len(body))
	}

	etag := `"` + sdktest.CID(full) + `"`
	resp, body = get(t, srv, p, "If-None-Match", etag)
	if resp.StatusCode != http.StatusNotModified || body != "" {
		t.Errorf("If-None-Match with the ETag: %d %q, want 304", resp.StatusCode, body)
	}
	resp, _ = get(t, srv, p, "If-None-Match", `"`+sdktest.CID("older")+`"`)
	if resp.StatusCode != 200 {
		t.Errorf("If-None-Match with another ETag: %d, want 200", resp.StatusCode)
	}
	// The listing has an ETag too: its directory's CID.
	resp, _ = get(t, srv, "/name/site.avtr/sub/", "If-None-Match", `"`+s.sub+`"`)
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("listing If-None-Match: %d, want 304", resp.StatusCode)
	}
}

func TestDirectoriesAndRedirects(t *testing.T) {
	f := sdktest.NewHost(t)
	s := testSite(f, "site.avtr")
	_, srv := startGateway(t, f, nil)
	for _, c := range []struct {
		path, host string
		code       int
		location   string
	}{
		// The path form redirects to the name's or CID's origin; nothing is looked up.
		{"/name/site.avtr", "", 302, "http://" + originHost(srv, "site-avtr") + "/"},
		{"/name/site.avtr?x=1", "", 302, "http://" + originHost(srv, "site-avtr") + "/?x=1"},
		{"/name/My-Site.avtr/a%20b/", "", 302, "http://" + originHost(srv, "my--site-avtr") + "/a%20b/"},
		{"/name/api.blog.code//x", "", 302, "http://" + originHost(srv, "api-blog-code") + "/x"},
		{"/cid/" + s.root + "/sub", "", 301, "http://" + originHost(srv, s.root) + "/sub"},
		// The dotted subdomain form too: the labels of a name are no origin.
		{"/docs?y", "site.avtr.localhost:1", 302, "http://" + originHost(srv, "site-avtr") + "/docs?y"},
		// At the origin, a directory's slash.
		{"/sub", "site-avtr", 302, "/sub/"},
		{"/style.css/", "site-avtr", 302, "/style.css"},
		{"/docs", s.root, 301, "/docs/"},
		// //docs is a path here: the Location stays on this origin, not //docs/.
		{"//docs", "site-avtr", 302, "/docs/"},
	} {
		resp, _ := getPath(t, srv, c.path, "Host", c.host)
		if c.host != "" && !strings.Contains(c.host, ".") {
			resp, _ = getPath(t, srv, c.path, "Host", originHost(srv, c.host))
		}
		if resp.StatusCode != c.code || resp.Header.Get("Location") != c.location {
			t.Errorf("GET %s (host %s): %d Location %q, want %d %q", c.path, c.host, resp.StatusCode, resp.Header.Get("Location"), c.code, c.location)
		}
	}

	// A directory without index.html is listed, with escaped names and links.
	resp, body := get(t, srv, "/name/site.avtr/sub/")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("listing: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		`<a href="a%20b.txt">a b.txt</a>`,
		`<a href="%3Ci%3Ex.txt">&lt;i&gt;x.txt</a>`,
		`<a href="./x:y.txt">x:y.txt</a>`,
		`<a href="../">../</a>`,
		"6 B",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("listing lacks %s:\n%s", want, body)
		}
	}
	if strings.Contains(body, "<i>") {
		t.Errorf("listing has an unescaped name:\n%s", body)
	}
	// A subdirectory with index.html serves it; one without is listed.
	if _, body := get(t, srv, "/name/site.avtr/docs/"); body != "<h1>Docs</h1>\n" {
		t.Errorf("docs/: %q", body)
	}
	if _, body := get(t, srv, "/name/site.avtr/docs/more/"); !strings.Contains(body, `<a href="deep.md">deep.md</a>`) {
		t.Errorf("docs/more/: %q", body)
	}
	// ".." does not climb out of the site.
	if resp, body := get(t, srv, "/name/site.avtr/sub/../../../style.css"); resp.StatusCode != 200 || body != s.files["/style.css"] {
		t.Errorf("dot-dot: %d %q", resp.StatusCode, body)
	}
}

func TestSubdomainAndProxyForms(t *testing.T) {
	f := sdktest.NewHost(t)
	s := testSite(f, "site.avtr")
	testSite(f, "blog.code")
	_, srv := startGateway(t, f, nil)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	resp, body := get(t, srv, "/", "Host", "site-avtr.localhost:"+port)
	if resp.StatusCode != 200 || body != s.files["/index.html"] {
		t.Errorf("subdomain /: %d %q", resp.StatusCode, body)
	}
	// Any topic in the subdomain form: it cannot reach the internet anyway.
	resp, body = get(t, srv, "/page2.html", "Host", "BLOG-code.localhost:"+port)
	if resp.StatusCode != 200 || body != s.files["/page2.html"] {
		t.Errorf("subdomain, another topic: %d %q", resp.StatusCode, body)
	}
	for _, host := range []string{"bad_name.avtr.localhost", "bad_name-avtr.localhost", "a---b-avtr.localhost", "nodot.localhost"} {
		if resp, _ = get(t, srv, "/", "Host", host+":"+port); resp.StatusCode != 400 {
			t.Errorf("subdomain %s: %d, want 400", host, resp.StatusCode)
		}
	}

	// The proxy form sends a browser to the name's origin; it follows.
	proxy, _ := url.Parse(srv.URL)
	transport := srv.Client().Transport.(*http.Transport).Clone()
	transport.Proxy = http.ProxyURL(proxy)
	client := &http.Client{Transport: transport}
	resp, body = request(t, client, http.MethodGet, "http://site.avtr/page2.html?q", "User-Agent", firefox)
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "http://site-avtr.localhost:"+port+"/page2.html?q" {
		t.Errorf("proxy form: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	req, _ := http.NewRequest(http.MethodGet, "http://site.avtr/page2.html", nil)
	req.Header.Set("User-Agent", firefox)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != s.files["/page2.html"] || resp.Request.URL.Host != "site-avtr.localhost:"+port {
		t.Errorf("proxy form, followed: %d %q at %s", resp.StatusCode, b, resp.Request.URL)
	}
	// Another client (Go's, here) is served the name where it asked.
	resp, body = request(t, client, http.MethodGet, "http://site.avtr/page2.html")
	if resp.StatusCode != 200 || body != s.files["/page2.html"] {
		t.Errorf("proxy form, not a browser: %d %q", resp.StatusCode, body)
	}
	// The gateway's own pages through the proxy.
	resp, body = request(t, client, http.MethodGet, srv.URL+"/proxy.pac")
	if resp.StatusCode != 200 || !strings.Contains(body, "FindProxyForURL") {
		t.Errorf("the gateway itself through the proxy: %d %q", resp.StatusCode, body)
	}
}

// firefox is a browser's User-Agent.
const firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

// The name form: a request sent straight to the gateway for Host NAME.TOPIC,
// as a program makes once the DNS responder answered NAME.TOPIC with the
// gateway's address. A program is served the name there; a browser (or a
// page in one) is sent to the name's own origin without a lookup, where
// Sec-Fetch-* tell another site's requests apart.
func TestNameForm(t *testing.T) {
	f := sdktest.NewHost(t)
	s := testSite(f, "site.avtr")
	testSite(f, "blog.code")
	_, srv := startGateway(t, f, nil)
	_, port := splitHost(srv.Listener.Addr().String())
	for _, host := range []string{"site.avtr", "site.avtr:" + port, "SITE.Avtr.", "site.avtr:80"} {
		resp, body := getPath(t, srv, "/page2.html", "Host", host)
		if resp.StatusCode != 200 || body != s.files["/page2.html"] {
			t.Errorf("Host %s: %d %q", host, resp.StatusCode, body)
		}
	}
	if resp, body := getPath(t, srv, "/", "Host", "site.avtr"); resp.StatusCode != 200 || body != s.files["/index.html"] ||
		!strings.HasPrefix(resp.Header.Get("Cache-Control"), "public, max-age=") {
		t.Errorf("Host site.avtr, /: %d %v %q", resp.StatusCode, resp.Header, body)
	}

	// A browser's request, or a page's: a redirect, and the node is asked nothing.
	f2 := sdktest.NewHost(t)
	testSite(f2, "site.avtr")
	_, srv2 := startGateway(t, f2, nil)
	_, port2 := splitHost(srv2.Listener.Addr().String())
	for _, header := range [][]string{
		{"User-Agent", firefox},
		{"User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/139.0.0.0 Safari/537.36"},
		{"Referer", "http://evil.example/"},
		{"Origin", "http://evil.example"},
		{"Upgrade-Insecure-Requests", "1"},
		{"Sec-Fetch-Site", "cross-site"},
	} {
		resp, _ := getPath(t, srv2, "/page2.html?x", append([]string{"Host", "site.avtr"}, header...)...)
		if resp.StatusCode != 302 || resp.Header.Get("Location") != "http://site-avtr.localhost:"+port2+"/page2.html?x" {
			t.Errorf("%v: %d %q, want a redirect to the name's origin", header, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if resolves, fetched, reads := calls(f2); len(resolves)+len(fetched)+reads != 0 {
		t.Errorf("browsers' requests for the name form asked the node: resolves %v fetches %v reads %d", resolves, fetched, reads)
	}
	// A page's fetch() with a User-Agent of its choosing needs a CORS
	// preflight: refused, without a header that would allow it.
	resp, _ := request(t, srv2.Client(), http.MethodOptions, srv2.URL+"/", "Host", "site.avtr",
		"Origin", "http://evil.example", "Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "user-agent")
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	// Only the configured topics: blog.code is not served in this form.
	if resp, _ := getPath(t, srv, "/", "Host", "blog.code"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("Host blog.code outside proxy_topics: %d, want 403", resp.StatusCode)
	}
}

// A page of another site whose name its attacker pointed at 127.0.0.1 (DNS
// rebinding) reaches the gateway with its own name as Host: refused, the
// node asked nothing. The gateway's own address and localhost are served.
func TestRebindingHostsRefused(t *testing.T) {
	f := sdktest.NewHost(t)
	testSite(f, "site.avtr")
	_, srv := startGateway(t, f, nil)
	_, port := splitHost(srv.Listener.Addr().String())
	for _, host := range []string{"evil.example", "evil.example:" + port, "attacker.example.com.", "127.0.0.1.nip.io:" + port, "avtr", "localhost.evil.example"} {
		for _, p := range []string{"/", "/proxy.pac", "/name/site.avtr/", "/cid/" + "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi/"} {
			resp, body := getPath(t, srv, p, "Host", host, "User-Agent", firefox)
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "neither an avnode name nor this gateway's address") {
				t.Errorf("Host %s, %s: %d %q, want 403", host, p, resp.StatusCode, body)
			}
		}
	}
	if resolves, fetched, reads := calls(f); len(resolves)+len(fetched)+reads != 0 {
		t.Errorf("refused hosts asked the node: resolves %v fetches %v reads %d", resolves, fetched, reads)
	}
	for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port, "[::1]:" + port, "127.0.0.1:9999"} {
		if resp, body := getPath(t, srv, "/", "Host", host); resp.StatusCode != 200 || !strings.Contains(body, "avnode gateway") {
			t.Errorf("Host %q: %d %q, want the home page", host, resp.StatusCode, body)
		}
	}
}

// The gateway is no open proxy: other hosts and tunnels are refused and
// nothing is forwarded.
func TestProxyRefusesOtherHosts(t *testing.T) {
	f := sdktest.NewHost(t)
	testSite(f, "site.avtr")
	_, srv := startGateway(t, f, nil)

	var contacted atomic.Int64 // a stand-in for the internet
	bait := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	bait.Config.ConnState = func(net.Conn, http.ConnState) { contacted.Add(1) }
	bait.Start()
	defer bait.Close()

	proxy, _ := url.Parse(srv.URL)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}
	for _, u := range []string{bait.URL + "/", "http://example.com/", "http://blog.code/", "http://avtr/", "http://localhost:1/"} {
		resp, body := request(t, client, http.MethodGet, u)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "not an avnode name") ||
			!strings.Contains(body, "/proxy.pac") {
			t.Errorf("proxied %s: %d %q, want 403 with an explanation", u, resp.StatusCode, body)
		}
	}
	if n := contacted.Load(); n != 0 {
		t.Errorf("the gateway connected to another host %d times", n)
	}

	// CONNECT, by hand: Go's client would tunnel only for https.
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %[1]s\r\n\r\n", bait.Listener.Addr())
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(string(body), "CONNECT") || contacted.Load() != 0 {
		t.Errorf("CONNECT: %d %q, bait contacted %d times", resp.StatusCode, body, contacted.Load())
	}
	resp2, _ := request(t, srv.Client(), http.MethodPost, srv.URL+"/name/site.avtr/")
	if resp2.StatusCode != http.StatusMethodNotAllowed || resp2.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d Allow %q", resp2.StatusCode, resp2.Header.Get("Allow"))
	}
}

func TestPAC(t *testing.T) {
	f := sdktest.NewHost(t)
	_, srv := startGateway(t, f, func(s *settings) { s.topics = []string{"avtr", "code"} })
	host := srv.Listener.Addr().String()
	resp, body := get(t, srv, "/proxy.pac")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ns-proxy-autoconfig" {
		t.Fatalf("PAC: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		"function FindProxyForURL(url, host)",
		`if (dnsDomainIs(host, ".avtr") || dnsDomainIs(host, ".code")) return "PROXY ` + host + `";`,
		`return "DIRECT";`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("PAC lacks %s:\n%s", want, body)
		}
	}
	// With no topic, everything goes direct.
	_, srv = startGateway(t, f, func(s *settings) { s.topics = nil })
	if _, body := get(t, srv, "/proxy.pac"); !strings.Contains(body, "if (false)") {
		t.Errorf("PAC with no topics:\n%s", body)
	}
}

func TestErrors(t *testing.T) {
	f := sdktest.NewHost(t)
	testSite(f, "site.avtr")
	f.SetName(sdk.Resolution{Name: "gone.avtr", Root: sdktest.CID("elsewhere")})
	f.Fail("FetchUnannounced", "gone.avtr", status.Error(codes.Unknown, "get gone.avtr: fetch: no source to fetch from (no host or provider found)"))
	f.SetName(sdk.Resolution{Name: "empty.avtr"})
	f.Fail("Resolve", "lonely.avtr", status.Error(codes.Unavailable, "resolve lonely.avtr: this node knows no peers yet"))
	_, srv := startGateway(t, f, nil)
	for _, c := range []struct {
		path string
		code int
		says string
	}{
		{"/name/nobody.avtr/", 404, "no such name"},
		{"/name/site.avtr/missing.html", 404, "not found"},
		{"/name/site.avtr/style.css/x", 404, "not found"},
		{"/name/empty.avtr/", 404, "no content yet"},
		{"/name/Bad_Name.avtr/", 400, "not an avnode name"},
		{"/name/nodot/", 400, "needs a topic"},
		{"/name/", 400, "empty"},
		{"/cid/nocid/", 400, "not a CID"},
		{"/cid/" + sdktest.CID("nothing") + "/", 404, "not found"},
		{"/name/gone.avtr/", 502, "no source to fetch from"},
		{"/name/lonely.avtr/", 503, "knows no peers"},
		{"/elsewhere", 404, "not a gateway path"},
	} {
		resp, body := get(t, srv, c.path)
		if c.code == 400 {
			resp, body = getPath(t, srv, c.path) // refused before the redirect
		}
		if resp.StatusCode != c.code || !strings.Contains(body, c.says) || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" ||
			resp.Header.Get("Cache-Control") != noStore {
			t.Errorf("GET %s: %d %q %v, want %d saying %q", c.path, resp.StatusCode, body, resp.Header, c.code, c.says)
		}
	}
	if resp, _ := get(t, srv, "/name/lonely.avtr/"); resp.Header.Get("Retry-After") == "" {
		t.Error("503 for a node that cannot resolve now has no Retry-After")
	}
	if _, body := get(t, srv, "/name/gone.avtr/"); !strings.Contains(body, "Try again later") {
		t.Errorf("502 does not say what to do: %q", body)
	}
	// A name that does not exist is remembered for a while: a page's
	// further requests do not each wait for the node.
	resolves, _, _ := calls(f)
	if resp, body := get(t, srv, "/name/nobody.avtr/favicon.ico"); resp.StatusCode != 404 || !strings.Contains(body, "no such name") {
		t.Errorf("unknown name again: %d %q", resp.StatusCode, body)
	}
	if again, _, _ := calls(f); len(again) != len(resolves) {
		t.Errorf("an unknown name was resolved again at once: %v", again[len(resolves):])
	}
}

// A fetch that does not end in fetch_timeout is a 504; a request that finds
// every slot taken until then is a 503 with Retry-After.
func TestTimeoutAndBusy(t *testing.T) {
	f := sdktest.NewHost(t)
	testSite(f, "site.avtr")
	_, release := f.HoldFetches()
	defer release()
	_, srv := startGateway(t, f, func(s *settings) { s.maxFetches, s.fetchTimeout = 1, 300*time.Millisecond })
	resp, body := get(t, srv, "/name/site.avtr/")
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(body, "fetch_timeout") {
		t.Errorf("a fetch that does not end: %d %q, want 504", resp.StatusCode, body)
	}

	g, srv := startGateway(t, f, func(s *settings) { s.maxFetches, s.fetchTimeout = 1, 300*time.Millisecond })
	g.slots <- struct{}{} // the only slot is taken
	resp, body = get(t, srv, "/name/site.avtr/")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "busy") {
		t.Errorf("no free slot: %d %v %q, want 503 with Retry-After", resp.StatusCode, resp.Header, body)
	}
	<-g.slots
}

// Repeated requests use the cache: a name is resolved once per TTL, a root
// fetched once, files found in its directory without another fetch, and
// requests at the same time share one fetch.
func TestCache(t *testing.T) {
	f := sdktest.NewHost(t)
	testSite(f, "site.avtr")
	g, srv := startGateway(t, f, nil)
	for range 3 {
		for _, p := range []string{"/", "/style.css", "/dot.png", "/page2.html"} {
			if resp, _ := get(t, srv, "/name/site.avtr"+p); resp.StatusCode != 200 {
				t.Fatalf("GET %s: %d", p, resp.StatusCode)
			}
		}
	}
	resolves, fetched, _ := calls(f)
	if len(resolves) != 1 || len(fetched) != 1 || fetched[0] != "site.avtr" {
		t.Errorf("12 requests made resolves %v and fetches %v; want one each", resolves, fetched)
	}
	if st := g.stats(); st.Requests != 12 || st.CacheEntries == 0 || st.Fetches != 2 || st.InFlight != 0 {
		t.Errorf("stats %+v", st)
	}

	// Ten requests at once for a path not yet known: one fetch.
	started, release := f.HoldFetches()
	var wg sync.WaitGroup
	codes := make(chan int, 10)
	for range 10 {
		wg.Go(func() {
			resp, err := srv.Client().Get(srv.URL + "/name/site.avtr/docs/more/")
			if err == nil {
				resp.Body.Close()
				codes <- resp.StatusCode
			}
		})
	}
	<-started
	sdktest.Eventually(t, 10*time.Second, "ten requests waiting for one fetch", func() error {
		if n := g.waiting.Load(); n < 10 {
			return fmt.Errorf("%d waiting", n)
		}
		return nil
	})
	release()
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Errorf("concurrent request: %d", c)
		}
	}
	if _, fetched, _ = calls(f); len(fetched) != 2 {
		t.Errorf("ten requests at once made fetches %v; want one more", fetched)
	}
}

// When the node's store lost a file the gateway remembered (its cache was
// collected), the gateway fetches again instead of failing.
func TestRefetchAfterCollection(t *testing.T) {
	f := sdktest.NewHost(t)
	s := testSite(f, "site.avtr")
	_, srv := startGateway(t, f, nil)
	if resp, _ := get(t, srv, "/name/site.avtr/style.css"); resp.StatusCode != 200 {
		t.Fatalf("first GET: %d", resp.StatusCode)
	}
	f.Evict(sdktest.CID(s.files["/style.css"]))
	resp, body := get(t, srv, "/name/site.avtr/style.css")
	if resp.StatusCode != 200 || body != s.files["/style.css"] {
		t.Errorf("after collection: %d %q", resp.StatusCode, body)
	}
	if _, fetched, _ := calls(f); len(fetched) != 2 {
		t.Errorf("fetches %v; want a second one after the collection", fetched)
	}
}

func TestHomePage(t *testing.T) {
	f := sdktest.NewHost(t)
	_, srv := startGateway(t, f, nil)
	resp, body := get(t, srv, "/")
	if resp.StatusCode != 200 || !strings.Contains(body, "/name/einstein.avtr/") || !strings.Contains(body, "/proxy.pac") {
		t.Errorf("home: %d %q", resp.StatusCode, body)
	}
}

// A page of another site (or of another name: each is a site) cannot make
// the gateway resolve or fetch: not with an <img>, a fetch() or a frame,
// nor by sending the tab there without a click. The user's own navigation
// (typed, or a click) and the page's own files are served.
func TestCrossSiteRequests(t *testing.T) {
	for _, c := range []struct {
		what   string
		header []string
		code   int
	}{
		{"an <img> on another site", []string{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "no-cors", "Sec-Fetch-Dest", "image"}, 403},
		{"fetch() from another site", []string{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "cors", "Sec-Fetch-Dest", "empty", "Origin", "http://127.0.0.1:9"}, 403},
		{"a frame on another site", []string{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "iframe", "Sec-Fetch-User", "?1"}, 403},
		{"a script moving the tab", []string{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document"}, 403},
		{"same-site is another name", []string{"Sec-Fetch-Site", "same-site", "Sec-Fetch-Mode", "no-cors", "Sec-Fetch-Dest", "image"}, 403},
		{"no Sec-Fetch-Site, another Origin", []string{"Origin", "http://evil.example"}, 403},
		{"the user typed it", []string{"Sec-Fetch-Site", "none", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document", "Sec-Fetch-User", "?1"}, 200},
		{"the user clicked a link on another site", []string{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document", "Sec-Fetch-User", "?1"}, 200},
		{"the page's own image", []string{"Sec-Fetch-Site", "same-origin", "Sec-Fetch-Mode", "no-cors", "Sec-Fetch-Dest", "image"}, 200},
		{"curl", nil, 200},
	} {
		f := sdktest.NewHost(t) // no calls yet: a fetch would show
		testSite(f, "site.avtr")
		g, srv := startGateway(t, f, nil) // a fresh cache
		resp, body := getPath(t, srv, "/", append([]string{"Host", "site-avtr.localhost"}, c.header...)...)
		resolves, fetched, _ := calls(f)
		if resp.StatusCode != c.code {
			t.Errorf("%s: %d, want %d: %s", c.what, resp.StatusCode, c.code, body)
		}
		if refused := g.stats().CrossSite; (refused == 1) != (c.code == 403) {
			t.Errorf("%s: cross_site_refused %d", c.what, refused)
		}
		if c.code == 403 && (len(resolves) != 0 || len(fetched) != 0 || !strings.Contains(body, "another site's page")) {
			t.Errorf("%s: refused, but the node was asked: resolves %v fetches %v; %s", c.what, resolves, fetched, body)
		}
	}
}

// What the gateway fetches is not announced unless announce_browsed.
func TestBrowsingNotAnnounced(t *testing.T) {
	for _, announce := range []bool{false, true} {
		f := sdktest.NewHost(t)
		testSite(f, "site.avtr")
		_, srv := startGateway(t, f, func(s *settings) { s.announce = announce })
		if resp, _ := get(t, srv, "/name/site.avtr/"); resp.StatusCode != 200 {
			t.Fatalf("GET: %d", resp.StatusCode)
		}
		_, fetched, _ := calls(f)
		if quiet := len(f.Calls("FetchUnannounced")); (quiet == len(fetched)) == announce || len(fetched) == 0 {
			t.Errorf("announce_browsed %v: %d fetches, %d of them unannounced", announce, len(fetched), quiet)
		}
	}
}

func TestOriginLabels(t *testing.T) {
	for name, label := range map[string]string{
		"einstein.avtr":     "einstein-avtr",
		"api.coolblog.code": "api-coolblog-code",
		"my-site.avtr":      "my--site-avtr",
		"a-b.c-d.e":         "a--b-c--d-e",
		"xn--a.avtr":        "xn----a-avtr",
		"my--site.avtr":     "my----site-avtr",
	} {
		if got, err := originLabel(name); got != label || err != nil {
			t.Errorf("originLabel(%s) = %q, %v, want %q", name, got, err, label)
		}
		if got, ok := nameOfLabel(label); got != name || !ok {
			t.Errorf("nameOfLabel(%s) = %q, %v, want %q", label, got, ok, name)
		}
	}
	for _, label := range []string{"a---b-avtr", "-a-avtr", "a-avtr-", "a----b"} {
		if name, ok := nameOfLabel(label); ok && checkName(name) == nil {
			t.Errorf("nameOfLabel(%s) = %q, a valid name", label, name)
		}
	}
	// On port 80 (a browser's own, for http://einstein.avtr/) the origin has no port.
	for addr, want := range map[string]string{"127.0.0.1:80": "http://einstein-avtr.localhost/a?q", "127.0.0.1:8080": "http://einstein-avtr.localhost:8080/a?q"} {
		if got := (&gateway{addr: addr}).originURL("einstein-avtr", "/a", "q"); got != want {
			t.Errorf("gateway on %s: origin URL %s, want %s", addr, got, want)
		}
	}
	long := strings.Repeat("a", 60) + ".avtr"
	if _, err := originLabel(long); err == nil || !strings.Contains(err.Error(), "avnode get") {
		t.Errorf("a name too long for one label: %v", err)
	}
}
