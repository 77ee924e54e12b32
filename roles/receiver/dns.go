package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/netutil"
)

// The DNS responder (dns_listen) makes NAME.TOPIC resolve to the gateway in
// every program on the machine, once the system's resolver sends the
// topics there (configs/systemd/resolved/). It answers only for names under
// proxy_topics, with the gateway's address, and refuses everything else: it
// is no recursive resolver, and it never asks another server.

const (
	dnsTTL = 60 // seconds: an answer, and a negative one (the SOA's minimum)
	// What one client can hold: a TCP connection gets dnsTCPQueries
	// queries, each within dnsIdle, and at most dnsTCPConns are open at
	// once; more wait in the kernel's backlog. A UDP query costs one
	// short goroutine.
	dnsTCPConns   = 64
	dnsTCPQueries = 16
	dnsIdle       = 3 * time.Second
	dnsUDPSize    = 1232 // the EDNS buffer size the DNS flag day of 2020 settled on
)

// responder answers DNS queries for the names under the topics.
type responder struct {
	topics []string
	// a and aaaa are the gateway's address by family; nil answers NODATA.
	a, aaaa net.IP
	addr    string // host:port it serves on, UDP and TCP

	udp, tcp *dns.Server
	served   sync.WaitGroup

	queries, refused atomic.Int64
}

// answersFor is what the responder answers for A and AAAA, given where the
// gateway listens. A wildcard address is reached on loopback (Go's listener
// on 0.0.0.0 or :: takes both families where the system has IPv6).
func answersFor(gw *net.TCPAddr) (a, aaaa net.IP) {
	switch ip := gw.IP; {
	case ip == nil || ip.IsUnspecified():
		a = net.IPv4(127, 0, 0, 1).To4()
		if ip == nil || ip.To4() == nil {
			aaaa = net.IPv6loopback
		}
	case ip.To4() != nil:
		a = ip.To4()
	default:
		aaaa = ip
	}
	return a, aaaa
}

// dnsTries is how often a port 0 is tried again when the free UDP port
// found is taken for TCP.
const dnsTries = 8

// listenDNS binds UDP and TCP on the same address. A port 0 picks one free
// for both.
func listenDNS(addr string) (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range dnsTries {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		lastErr = err
		if _, port, _ := net.SplitHostPort(addr); port != "0" || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	return nil, nil, lastErr
}

// startResponder serves DNS on addr until stop. It returns once both
// sockets are bound and served.
func startResponder(addr string, topics []string, gw *net.TCPAddr) (*responder, error) {
	pc, ln, err := listenDNS(addr)
	if err != nil {
		return nil, err
	}
	r := &responder{topics: topics, addr: pc.LocalAddr().String()}
	r.a, r.aaaa = answersFor(gw)
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	r.udp = &dns.Server{PacketConn: pc, Handler: r, UDPSize: dnsUDPSize, NotifyStartedFunc: notify}
	r.tcp = &dns.Server{Listener: netutil.LimitListener(ln, dnsTCPConns), Handler: r, MaxTCPQueries: dnsTCPQueries,
		ReadTimeout: dnsIdle, WriteTimeout: dnsIdle, IdleTimeout: func() time.Duration { return dnsIdle }, NotifyStartedFunc: notify}
	errs := make(chan error, 2)
	for _, srv := range []*dns.Server{r.udp, r.tcp} {
		r.served.Add(1)
		go func() {
			defer r.served.Done()
			errs <- srv.ActivateAndServe()
		}()
	}
	for range 2 {
		select {
		case <-started:
		case err := <-errs:
			// The other server may not have started: closing the sockets
			// ends it either way.
			pc.Close()
			ln.Close()
			r.served.Wait()
			return nil, err
		}
	}
	return r, nil
}

// stop closes both sockets and waits for the queries under way, within ctx.
func (r *responder) stop(ctx context.Context) {
	for _, srv := range []*dns.Server{r.udp, r.tcp} {
		srv.ShutdownContext(ctx) // an error: not started, or ctx ended; the sockets are closed either way
	}
	done := make(chan struct{})
	go func() { r.served.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// ServeDNS answers one query. miekg/dns has already dropped what is not a
// query and answered FORMERR to a message it could not parse or with other
// than one question.
func (r *responder) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	r.queries.Add(1)
	m := r.answer(q)
	if m.Rcode == dns.RcodeRefused {
		r.refused.Add(1)
	}
	w.WriteMsg(m)
}

// answer builds the reply to q.
func (r *responder) answer(q *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(q)
	m.RecursionAvailable = false
	if opt := q.IsEdns0(); opt != nil {
		m.SetEdns0(dnsUDPSize, false)
		if opt.Version() != 0 {
			m.Rcode = dns.RcodeBadVers // the upper bits go in the OPT record
			return m
		}
	}
	if q.Opcode != dns.OpcodeQuery {
		m.Rcode = dns.RcodeNotImplemented
		return m
	}
	if len(q.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return m
	}
	question := q.Question[0]
	zone, ok := r.zoneOf(question.Name)
	if !ok || question.Qclass != dns.ClassINET {
		m.Rcode = dns.RcodeRefused
		return m
	}
	m.Authoritative = true
	hdr := dns.RR_Header{Name: question.Name, Class: dns.ClassINET, Ttl: dnsTTL}
	atName := !strings.EqualFold(question.Name, zone) // a name under the topic, not the topic itself
	switch {
	case atName && question.Qtype == dns.TypeA && r.a != nil:
		hdr.Rrtype = dns.TypeA
		m.Answer = []dns.RR{&dns.A{Hdr: hdr, A: r.a}}
	case atName && question.Qtype == dns.TypeAAAA && r.aaaa != nil:
		hdr.Rrtype = dns.TypeAAAA
		m.Answer = []dns.RR{&dns.AAAA{Hdr: hdr, AAAA: r.aaaa}}
	case !atName && question.Qtype == dns.TypeSOA:
		m.Answer = []dns.RR{soa(zone)}
	default:
		// NODATA: the name exists, not with this type. The SOA lets a
		// resolver remember that for dnsTTL.
		m.Ns = []dns.RR{soa(zone)}
	}
	return m
}

// zoneOf is the topic a query name is at or under, as a fully qualified
// name in lower case.
func (r *responder) zoneOf(name string) (string, bool) {
	labels := dns.SplitDomainName(name) // escaped dots stay inside their label
	if len(labels) == 0 {
		return "", false
	}
	last := strings.ToLower(labels[len(labels)-1])
	for _, t := range r.topics {
		if last == t {
			return t + ".", true
		}
	}
	return "", false
}

// soa is the topic's start of authority: the responder is its only server.
func soa(zone string) dns.RR {
	return &dns.SOA{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: dnsTTL},
		Ns: "localhost.", Mbox: "hostmaster.localhost.", Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: dnsTTL}
}

// checkDNSListen checks dns_listen's shape: an IP address and a port.
func checkDNSListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %v", addr, err)
	}
	if net.ParseIP(host) == nil {
		return fmt.Errorf("%q: the host must be an IP address (127.0.0.1, ::1), not %q", addr, host)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%q: the port must be a number from 0 to 65535", addr)
	}
	return nil
}

var _ dns.Handler = (*responder)(nil)
