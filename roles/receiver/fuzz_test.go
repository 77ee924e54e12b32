package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/avnode/avnode/sdk/sdktest"
)

// FuzzGatewayRequest sends the gateway requests as a browser, a proxy
// client or anyone on the machine may: it never panics, never answers 500,
// and a request it refuses (a foreign host, a method it does not serve)
// reaches nothing behind it: no resolve, no fetch.
func FuzzGatewayRequest(f *testing.F) {
	f.Add("GET", "/name/einstein.avtr/index.html", "127.0.0.1:8080")
	f.Add("GET", "/", "einstein.avtr.localhost:8080")
	f.Add("HEAD", "/name/einstein.avtr/../../../etc/passwd", "")
	f.Add("GET", "http://example.com/", "example.com")
	f.Add("GET", "http://einstein.avtr/sub/a%20b.txt", "einstein.avtr")
	f.Add("CONNECT", "example.com:443", "example.com:443")
	f.Add("POST", "/name/einstein.avtr/", "")
	f.Add("GET", "/cid/bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy/x", "")
	f.Add("GET", "/proxy.pac", "[::1]:8080")
	f.Add("GET", "//evil.example.com", "einstein-avtr.localhost:8080")
	f.Add("GET", "/x.png", "my--site-avtr.localhost")
	f.Add("GET", "/", "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy.localhost:8080")
	fh := sdktest.NewHost(f)
	testSite(fh, "einstein.avtr")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	set := settings{topics: []string{"avtr"}, maxFetches: 4, fetchTimeout: 2 * time.Second, cacheEntries: 100}
	g := newGateway(ctx, fh, set, "127.0.0.1:8080", 5*time.Minute)
	f.Fuzz(func(t *testing.T, method, target, host string) {
		u, err := url.ParseRequestURI(target)
		if err != nil || method == "" {
			return
		}
		req := (&http.Request{Method: method, URL: u, RequestURI: target, Host: host, Header: http.Header{},
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}).WithContext(ctx)
		resolves, fetches, reads := calls(fh)
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, req)
		if rec.Code == http.StatusInternalServerError {
			t.Fatalf("%s %s (Host %q): 500: %s", method, target, host, rec.Body)
		}
		if rec.Code == http.StatusForbidden || rec.Code == http.StatusMethodNotAllowed {
			r2, f2, n2 := calls(fh)
			if len(r2) != len(resolves) || len(f2) != len(fetches) || n2 != reads {
				t.Fatalf("%s %s (Host %q) was refused with %d but reached the node", method, target, host, rec.Code)
			}
		}
	})
}

// FuzzDNSQuery answers whatever bytes parse as a DNS message: it never
// panics, the reply packs, and a name outside the topics gets no answer.
func FuzzDNSQuery(f *testing.F) {
	for _, q := range []*dns.Msg{
		new(dns.Msg).SetQuestion("einstein.avtr.", dns.TypeA),
		new(dns.Msg).SetQuestion("EINSTEIN.AVTR.", dns.TypeAAAA),
		new(dns.Msg).SetQuestion("avtr.", dns.TypeSOA),
		new(dns.Msg).SetQuestion("google.com.", dns.TypeA),
		new(dns.Msg).SetQuestion("einstein\\.avtr.", dns.TypeA),
		new(dns.Msg).SetEdns0(4096, true),
	} {
		b, err := q.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	r := &responder{topics: []string{"avtr"}, a: net.IPv4(127, 0, 0, 1).To4()}
	f.Fuzz(func(t *testing.T, data []byte) {
		q := new(dns.Msg)
		if q.Unpack(data) != nil {
			return
		}
		m := r.answer(q)
		if _, err := m.Pack(); err != nil {
			t.Fatalf("reply to %v does not pack: %v\n%v", q, err, m)
		}
		if len(q.Question) == 1 {
			if _, ours := r.zoneOf(q.Question[0].Name); !ours && len(m.Answer) != 0 {
				t.Fatalf("%s answered: %v", q.Question[0].Name, m)
			}
		}
	})
}
