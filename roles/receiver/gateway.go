package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/avnode/avnode/sdk"
)

// gateway is the HTTP handler. It finds out which name or CID a request is
// for (from its path, its Host header or its absolute proxy URI), resolves
// and fetches through the node, and serves files read from the node's store.
// It never opens a connection to anything but the node.
type gateway struct {
	host    sdk.Host
	topics  []string // served as an HTTP proxy: names ending in .TOPIC
	addr    string   // host:port the gateway listens on
	zoneTTL time.Duration
	timeout time.Duration // one resolve or fetch, waiting for a slot included
	// fetch is the node's Fetch, or FetchUnannounced unless
	// announce_browsed: what the user browsed stays out of the node's
	// provider records.
	fetch func(ctx context.Context, target string) (sdk.Fetched, error)

	names *lru[*sdk.Resolution] // name → resolution, for the zone TTL
	paths *lru[*sdk.Fetched]    // ROOT/PATH → what is there; content-addressed, so kept until evicted
	slots chan struct{}         // one per resolve or fetch under way

	base    context.Context // ended by Stop: lookups under way end
	mu      sync.Mutex
	flights map[string]*flight // lookups under way, shared by the requests that want them
	calls   sync.WaitGroup

	requests, errors, fetches, inFlight, waiting, crossSite atomic.Int64
}

func newGateway(base context.Context, host sdk.Host, set settings, addr string, zoneTTL time.Duration) *gateway {
	fetch := host.FetchUnannounced
	if set.announce {
		fetch = host.Fetch
	}
	return &gateway{fetch: fetch,
		host: host, topics: set.topics, addr: addr, zoneTTL: zoneTTL, timeout: set.fetchTimeout,
		names: newLRU[*sdk.Resolution](set.cacheEntries), paths: newLRU[*sdk.Fetched](set.cacheEntries),
		slots: make(chan struct{}, set.maxFetches), base: base, flights: map[string]*flight{},
	}
}

// stats is what `avnode roles call receiver status` shows.
type stats struct {
	Requests     int64 `json:"requests"`
	Errors       int64 `json:"errors"`
	Fetches      int64 `json:"fetches"`
	InFlight     int64 `json:"fetches_in_flight"`
	Waiting      int64 `json:"requests_waiting"` // for a resolve or fetch (theirs or another's)
	CrossSite    int64 `json:"cross_site_refused"`
	CacheEntries int   `json:"cache_entries"`
}

func (g *gateway) stats() stats {
	return stats{Requests: g.requests.Load(), Errors: g.errors.Load(), Fetches: g.fetches.Load(),
		InFlight: g.inFlight.Load(), Waiting: g.waiting.Load(), CrossSite: g.crossSite.Load(), CacheEntries: g.names.len() + g.paths.len()}
}

// wait waits for the lookups under way to end (Stop has ended their context).
func (g *gateway) wait(ctx context.Context) {
	done := make(chan struct{})
	go func() { g.calls.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.requests.Add(1)
	if r.Method == http.MethodConnect {
		w.Header().Set("Allow", "GET, HEAD")
		g.fail(w, http.StatusMethodNotAllowed, "CONNECT (an HTTPS tunnel to %s) is not supported: the avnode gateway serves avnode names over plain http:// "+
			"and never opens connections to other hosts.\nOpen http://NAME/ (for example http://einstein.avtr/), not https://.", r.Host)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		g.fail(w, http.StatusMethodNotAllowed, "%s is not supported: the avnode gateway is read-only; use GET or HEAD.", r.Method)
		return
	}
	hostname, port := splitHost(r.Host)
	switch {
	case strings.HasSuffix(hostname, ".localhost"):
		g.serveOrigin(w, r, strings.TrimSuffix(hostname, ".localhost"))
	case g.underTopic(hostname):
		// The proxy form, or the name form (the DNS responder sent the
		// client here). A browser goes to the name's own origin, where its
		// Sec-Fetch-* headers tell whether the user or another site's page
		// asked; at http://NAME/ it sends none. Another client is served
		// the name here.
		if fromBrowser(r) {
			g.toOrigin(w, r, hostname, r.URL.EscapedPath())
			return
		}
		g.serveName(w, r, hostname, r.URL.Path)
	case g.isSelf(hostname, port) || (r.URL.Host == "" && isLocalHost(hostname)): // the gateway itself
		g.servePage(w, r)
	case r.URL.Host == "":
		// A name that is no avnode name and not this machine's: a page of
		// another site whose name now resolves here (DNS rebinding), or a
		// Host the gateway does not know. It reads nothing of the gateway.
		g.fail(w, http.StatusForbidden, "%s is neither an avnode name nor this gateway's address: the avnode gateway serves names under %s, "+
			"and its own pages at http://%s/ (an IP address or localhost).", r.Host, g.topicList(), reachableHost(g.addr))
	default:
		g.fail(w, http.StatusForbidden, "%s is not an avnode name: the avnode gateway serves only names under %s and never forwards requests to other hosts.\n"+
			"Set your browser's proxy with the PAC file at http://%s/proxy.pac: it sends only avnode names here and everything else direct.",
			r.Host, g.topicList(), reachableHost(g.addr))
	}
}

// isLocalHost reports whether a Host of a request sent straight to the
// gateway names it without a domain name another site may own: an IP
// address, localhost, or none (HTTP/1.0). A browser reaching the gateway
// by another name is on that name's site, which DNS rebinding may have
// pointed here.
func isLocalHost(hostname string) bool {
	hostname = strings.TrimSuffix(strings.TrimPrefix(hostname, "["), "]")
	return hostname == "" || hostname == "localhost" || net.ParseIP(hostname) != nil
}

// fromBrowser reports whether a request may come from a web browser, or
// from a page in one: a User-Agent with "Mozilla/" (every browser's has
// it, and a page cannot send another without a CORS preflight, which the
// gateway refuses), or any header only browsers add. Such a request for a
// name is sent to the name's origin rather than served: there a page of
// another site that asked can be told apart.
func fromBrowser(r *http.Request) bool {
	h := r.Header
	if strings.Contains(h.Get("User-Agent"), "Mozilla/") {
		return true
	}
	for _, k := range []string{"Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest", "Origin", "Referer", "Upgrade-Insecure-Requests"} {
		if h.Get(k) != "" {
			return true
		}
	}
	return false
}

// serveOrigin serves the origin of a name or a CID, LABEL.localhost (see
// origin.go); a dotted NAME.localhost redirects to its name's.
func (g *gateway) serveOrigin(w http.ResponseWriter, r *http.Request, sub string) {
	if strings.Contains(sub, ".") {
		g.toOrigin(w, r, sub, r.URL.EscapedPath())
		return
	}
	if why := fromAnotherSite(r); why != "" {
		g.refuseCrossSite(w, r, why)
		return
	}
	if name, ok := nameOfLabel(sub); ok && strings.Contains(name, ".") {
		g.serveName(w, r, name, r.URL.Path)
		return
	}
	if cidPattern.MatchString(sub) {
		g.serveContent(w, r, target{root: sub, path: cleanPath(r.URL.Path)})
		return
	}
	g.fail(w, http.StatusBadRequest, "%s is neither a name nor a CID. A name's address is the name with '-' written '--' and '.' written '-', "+
		"like einstein-avtr.localhost for einstein.avtr; /name/NAME/ on the gateway redirects there.", r.Host)
}

// isSelf reports whether a proxied request is for the gateway itself.
func (g *gateway) isSelf(hostname, port string) bool {
	ownHost, ownPort := splitHost(g.addr)
	if port != ownPort {
		return false
	}
	if hostname == "localhost" || hostname == ownHost {
		return true
	}
	ip := net.ParseIP(hostname)
	return ip != nil && (ip.IsLoopback() || net.ParseIP(ownHost).IsUnspecified())
}

func (g *gateway) underTopic(hostname string) bool {
	for _, t := range g.topics {
		if strings.HasSuffix(hostname, "."+t) {
			return true
		}
	}
	return false
}

func (g *gateway) topicList() string {
	if len(g.topics) == 0 {
		return "no topic (proxy_topics is empty)"
	}
	return "." + strings.Join(g.topics, ", .")
}

// splitHost splits host[:port] and lower-cases the host, without a
// trailing dot: hostnames are not case-sensitive.
func splitHost(hostport string) (host, port string) {
	host = hostport
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		host, port = h, p
	}
	return strings.TrimSuffix(strings.ToLower(host), "."), port
}

// reachableHost is addr as a browser on this machine reaches it.
func reachableHost(addr string) string {
	if a, err := net.ResolveTCPAddr("tcp", addr); err == nil {
		return reachable(a)
	}
	return addr
}

// servePage serves the gateway's own paths: /name/, /cid/, /proxy.pac and a
// short home page.
func (g *gateway) servePage(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/proxy.pac":
		g.servePAC(w, r)
	case strings.HasPrefix(p, "/name/"):
		name, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.EscapedPath(), "/name/"), "/")
		g.toOrigin(w, r, name, rest)
	case strings.HasPrefix(p, "/cid/"):
		root, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.EscapedPath(), "/cid/"), "/")
		if !cidPattern.MatchString(root) {
			g.fail(w, http.StatusBadRequest, "%q is not a CID: avnode CIDs look like bafy… (CIDv1, base32) or Qm… (CIDv0).", root)
			return
		}
		label, err := cidLabel(root)
		if err != nil {
			g.fail(w, http.StatusBadRequest, "%s cannot have an origin of its own: %v.", root, err)
			return
		}
		redirectTo(w, g.originURL(label, rest, r.URL.RawQuery), http.StatusMovedPermanently)
	case p == "/":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, "avnode gateway\n\nOpen a name:  http://einstein-avtr.localhost:%[2]s/ (its own origin: '.' written '-', '-' written '--')\n"+
			"   or:        http://%[1]s/name/einstein.avtr/ (redirects there)\nContent:      http://%[1]s/cid/CID/PATH (redirects to CID.localhost)\n"+
			"As a proxy:   set your browser's automatic proxy configuration to http://%[1]s/proxy.pac,\n"+
			"              then open http://einstein.avtr/ (names under %[3]s).\n",
			r.Host, portOf(g.addr), g.topicList())
	default:
		g.fail(w, http.StatusNotFound, "%s is not a gateway path: open /name/NAME/ (like /name/einstein.avtr/) or /cid/CID/.", p)
	}
}

func portOf(addr string) string { _, p := splitHost(addr); return p }

// servePAC sends hosts under the proxy topics to the gateway and everything
// else direct. The proxy address is the one the browser fetched the PAC
// file from, so that it works whatever gateway.listen is.
func (g *gateway) servePAC(w http.ResponseWriter, r *http.Request) {
	proxy := r.Host
	if proxy == "" {
		proxy = reachableHost(g.addr)
	}
	var conds []string
	for _, t := range g.topics {
		conds = append(conds, fmt.Sprintf("dnsDomainIs(host, %q)", "."+t))
	}
	if len(conds) == 0 {
		conds = []string{"false"}
	}
	w.Header().Set("Content-Type", "application/x-ns-proxy-autoconfig")
	w.Header().Set("Cache-Control", "no-cache")
	fmt.Fprintf(w, "// avnode gateway: avnode names (%s) go through the gateway, everything else goes direct.\n"+
		"function FindProxyForURL(url, host) {\n"+
		"  host = host.toLowerCase();\n"+
		"  if (%s) return \"PROXY %s\";\n"+
		"  return \"DIRECT\";\n"+
		"}\n", g.topicList(), strings.Join(conds, " || "), proxy)
}

// cidPattern accepts CIDv0 (base58btc, Qm…) and base32 CIDv1 (b…), the
// forms avnode prints: a shape check, the node parses it.
var cidPattern = regexp.MustCompile(`^(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{58,})$`)

// checkName checks a name's shape (label(.label)*.topic; a-z, 0-9 and '-')
// as the node does, so that a malformed one is a 400 without a lookup.
func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("the name is empty")
	}
	if len(name) > 253 {
		return fmt.Errorf("%d characters, at most 253 allowed", len(name))
	}
	labels := strings.Split(name, ".")
	if len(labels) < 2 {
		return fmt.Errorf("it needs a topic, like %s.avtr", name)
	}
	for _, l := range labels {
		if err := checkLabel(l); err != nil {
			return err
		}
	}
	return nil
}

func checkLabel(l string) error {
	switch {
	case l == "":
		return fmt.Errorf("empty label (two dots in a row, or a leading or trailing dot)")
	case len(l) > 63:
		return fmt.Errorf("label %q is longer than 63 characters", l)
	case l[0] == '-' || l[len(l)-1] == '-':
		return fmt.Errorf("label %q must not start or end with '-'", l)
	}
	for i := 0; i < len(l); i++ {
		if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("label %q has %q; use only a-z, 0-9 and '-'", l, rune(c))
		}
	}
	return nil
}

var _ http.Handler = (*gateway)(nil)
