package main

import (
	"fmt"
	"html"
	"net"
	"net/http"
	"strings"

	"github.com/ipfs/go-cid"
)

// Each name is served only at its own origin, http://LABEL.localhost:PORT/,
// where LABEL is the whole name in one DNS label: '-' becomes "--" and '.'
// becomes '-' (kubo's DNSLink inlining), so api.coolblog.code is
// api-coolblog-code.localhost. Chromium treats localhost as a public
// suffix: LABEL.localhost is a site of its own, a page there cannot set a
// cookie for Domain=localhost, and no name's host is under another's, so
// names' cookies and storage never meet. (With the name's labels kept,
// evil.avtr.localhost could set a cookie for avtr.localhost that every
// NAME.avtr.localhost receives, and x.blog.code one for blog.code.) A CID's
// origin is its CIDv1 in base32, which has no '-'.
//
// The path form (/name/NAME/, /cid/CID/), the proxy form (http://NAME/) and
// the dotted subdomain form (NAME.localhost) only redirect there, without a
// lookup; content is served on an origin of its own only.

// maxLabel is the longest DNS label; a name longer than that inlined has no
// origin of its own.
const maxLabel = 63

// originLabel is a name's host label.
func originLabel(name string) (string, error) {
	label := strings.ReplaceAll(strings.ReplaceAll(name, "-", "--"), ".", "-")
	if len(label) > maxLabel {
		return "", fmt.Errorf("%s is %d characters as one host label (%s), and a label holds at most %d, so it cannot have an origin "+
			"of its own under localhost.\nFetch it with `avnode get %s`", name, len(label), label, maxLabel, name)
	}
	return label, nil
}

// nameOfLabel reverses originLabel: "--" is a dash, a '-' left over a dot,
// so a run of n dashes is n/2 dashes and, if n is odd, then a dot
// ("xn----a-avtr" is xn--a.avtr). It refuses a label originLabel does not make.
func nameOfLabel(label string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(label); i++ {
		if label[i] != '-' {
			b.WriteByte(label[i])
			continue
		}
		run := 1
		for i+run < len(label) && label[i+run] == '-' {
			run++
		}
		b.WriteString(strings.Repeat("-", run/2))
		if run%2 == 1 {
			b.WriteByte('.')
		}
		i += run - 1
	}
	name := b.String()
	if l, err := originLabel(name); err != nil || l != label {
		return "", false
	}
	return name, true
}

// cidLabel is a CID's host label: CIDv1 in base32, lower case.
func cidLabel(text string) (string, error) {
	if strings.HasPrefix(text, "b") && len(text) <= maxLabel {
		return text, nil // base32 already
	}
	c, err := cid.Decode(text)
	if err != nil {
		return "", err
	}
	if c.Version() == 0 {
		c = cid.NewCidV1(c.Type(), c.Hash())
	}
	label := c.String()
	if len(label) > maxLabel {
		return "", fmt.Errorf("its base32 form is %d characters, more than a host label's %d", len(label), maxLabel)
	}
	return label, nil
}

// originURL is the URL of p at a label's origin, on the gateway's port.
// p is an escaped path; leading slashes are collapsed to one.
func (g *gateway) originURL(label, p, rawQuery string) string {
	host := label + ".localhost"
	if port := portOf(g.addr); port != "80" {
		host = net.JoinHostPort(host, port)
	}
	u := "http://" + host + rootedPath(p)
	if rawQuery != "" {
		u += "?" + rawQuery
	}
	return u
}

// toOrigin redirects a request for a name's path p (escaped) to the name's
// origin. Nothing is resolved or fetched.
func (g *gateway) toOrigin(w http.ResponseWriter, r *http.Request, name, p string) {
	name, ok := g.checkedName(w, name)
	if !ok {
		return
	}
	label, err := originLabel(name)
	if err != nil {
		g.fail(w, http.StatusBadRequest, "%v.", err)
		return
	}
	redirectTo(w, g.originURL(label, p, r.URL.RawQuery), http.StatusFound)
}

// fromAnotherSite reports why a browser's request comes from another
// site's page rather than from the user: an <img>, a script's fetch, a
// frame, or a navigation no click started. Those may not make the node
// resolve or fetch anything: a web page could otherwise make it fetch what
// it likes, and learn from the timing what the user browsed. Every name is
// a site of its own, so this holds between names too. Browsers send
// Sec-Fetch-* to localhost origins; a request without them (curl, a
// program, an old browser) is allowed unless its Origin is another one.
func fromAnotherSite(r *http.Request) string {
	site := r.Header.Get("Sec-Fetch-Site")
	switch site {
	case "none", "same-origin":
		return ""
	case "":
		if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host {
			return "Origin " + o
		}
		return ""
	}
	h := r.Header
	if h.Get("Sec-Fetch-Mode") == "navigate" && h.Get("Sec-Fetch-Dest") == "document" && h.Get("Sec-Fetch-User") == "?1" {
		return "" // the user clicked a link to it
	}
	return fmt.Sprintf("Sec-Fetch-Site %s, Sec-Fetch-Dest %s", site, h.Get("Sec-Fetch-Dest"))
}

// refuseCrossSite answers a request another site's page made: a short
// page with a link, so that a user sent here by a script opens the name
// with a click. It declares an empty icon: the browser's own request for
// /favicon.ico would be same-origin and fetch.
func (g *gateway) refuseCrossSite(w http.ResponseWriter, r *http.Request, why string) {
	g.errors.Add(1)
	g.crossSite.Add(1)
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", noStore)
	w.WriteHeader(http.StatusForbidden)
	self := rootedPath(r.URL.EscapedPath())
	if r.URL.RawQuery != "" {
		self += "?" + r.URL.RawQuery
	}
	fmt.Fprintf(w, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><link rel=\"icon\" href=\"data:,\"><title>403 Forbidden</title></head>\n"+
		"<body><p>403 Forbidden: http://%s%s was asked for by another site's page (%s), not by you: "+
		"the avnode gateway fetches only what you open yourself.</p>\n<p><a href=\"%s\">Open it</a></p></body></html>\n",
		html.EscapeString(r.Host), html.EscapeString(r.URL.EscapedPath()), html.EscapeString(why), html.EscapeString(self))
}
