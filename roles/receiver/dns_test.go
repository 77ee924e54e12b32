package main

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/avnode/avnode/sdk/sdktest"
)

// startTestResponder serves DNS on a free loopback port for a gateway at
// gw, stopped when the test ends.
func startTestResponder(t *testing.T, gw string, topics ...string) *responder {
	t.Helper()
	addr, err := net.ResolveTCPAddr("tcp", gw)
	if err != nil {
		t.Fatal(err)
	}
	r, err := startResponder("127.0.0.1:0", topics, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.stop(ctx)
	})
	return r
}

// ask sends one query over network ("udp" or "tcp") and returns the reply.
func ask(t *testing.T, network, server, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	in, _, err := c.Exchange(m, server)
	if err != nil {
		t.Fatalf("%s %s %s: %v", network, name, dns.TypeToString[qtype], err)
	}
	return in
}

func TestDNSAnswers(t *testing.T) {
	r := startTestResponder(t, "127.0.0.1:8080", "avtr", "code")
	for _, network := range []string{"udp", "tcp"} {
		// A name under a topic: the gateway's address, authoritative, short TTL.
		for _, name := range []string{"einstein.avtr.", "EINSTEIN.AvTr.", "api.coolblog.code.", "a.b.c.avtr."} {
			in := ask(t, network, r.addr, name, dns.TypeA)
			if in.Rcode != dns.RcodeSuccess || !in.Authoritative || in.RecursionAvailable || len(in.Answer) != 1 {
				t.Fatalf("%s A %s: %v", network, name, in)
			}
			a, ok := in.Answer[0].(*dns.A)
			if !ok || !a.A.Equal(net.IPv4(127, 0, 0, 1)) || a.Hdr.Ttl != dnsTTL || a.Hdr.Name != name {
				t.Errorf("%s A %s: %v", network, name, in.Answer[0])
			}
		}
		// No IPv6 gateway: NODATA, with the SOA for the negative cache.
		in := ask(t, network, r.addr, "einstein.avtr.", dns.TypeAAAA)
		if in.Rcode != dns.RcodeSuccess || !in.Authoritative || len(in.Answer) != 0 || len(in.Ns) != 1 || in.Ns[0].Header().Rrtype != dns.TypeSOA {
			t.Errorf("%s AAAA: %v", network, in)
		}
		// Outside the topics: refused, never an answer, never forwarded.
		for _, name := range []string{"google.com.", "avtr.example.", "einstein\\.avtr.", ".", "localhost.", "einstein.avtr.example."} {
			in := ask(t, network, r.addr, name, dns.TypeA)
			if in.Rcode != dns.RcodeRefused || len(in.Answer) != 0 || in.Authoritative {
				t.Errorf("%s A %s: %v, want REFUSED", network, name, in)
			}
		}
	}
	// The topic itself: no address, its SOA when asked.
	if in := ask(t, "udp", r.addr, "avtr.", dns.TypeA); in.Rcode != dns.RcodeSuccess || len(in.Answer) != 0 {
		t.Errorf("A avtr.: %v", in)
	}
	if in := ask(t, "udp", r.addr, "Avtr.", dns.TypeSOA); in.Rcode != dns.RcodeSuccess || len(in.Answer) != 1 || in.Answer[0].Header().Rrtype != dns.TypeSOA {
		t.Errorf("SOA avtr.: %v", in)
	}
	// Other types under a topic: NODATA.
	if in := ask(t, "udp", r.addr, "einstein.avtr.", dns.TypeMX); in.Rcode != dns.RcodeSuccess || len(in.Answer) != 0 {
		t.Errorf("MX: %v", in)
	}
	// Another class: refused.
	m := new(dns.Msg)
	m.SetQuestion("einstein.avtr.", dns.TypeTXT)
	m.Question[0].Qclass = dns.ClassCHAOS
	if in, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, r.addr); err != nil || in.Rcode != dns.RcodeRefused {
		t.Errorf("CHAOS: %v %v", in, err)
	}
	// EDNS: answered with EDNS; an unknown version is BADVERS.
	m = new(dns.Msg)
	m.SetQuestion("einstein.avtr.", dns.TypeA)
	m.SetEdns0(4096, false)
	if in, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, r.addr); err != nil || in.IsEdns0() == nil || len(in.Answer) != 1 {
		t.Errorf("EDNS: %v %v", in, err)
	}
	m.IsEdns0().SetVersion(1)
	if in, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, r.addr); err != nil || in.Rcode != dns.RcodeBadVers || len(in.Answer) != 0 {
		t.Errorf("EDNS version 1: %v %v", in, err)
	}
	if q, refused := r.queries.Load(), r.refused.Load(); q < 20 || refused != 13 {
		t.Errorf("counted %d queries, %d refused", q, refused)
	}
}

// Where the gateway listens decides the answers: a wildcard is loopback.
func TestDNSAnswersByGatewayAddress(t *testing.T) {
	for _, c := range []struct {
		gw      string
		a, aaaa string // "" for NODATA
	}{
		{"127.0.0.1:80", "127.0.0.1", ""},
		{"127.0.0.2:8080", "127.0.0.2", ""},
		{"0.0.0.0:8080", "127.0.0.1", ""},
		{"[::]:8080", "127.0.0.1", "::1"},
		{"[::1]:8080", "", "::1"},
	} {
		r := startTestResponder(t, c.gw, "avtr")
		for qtype, want := range map[uint16]string{dns.TypeA: c.a, dns.TypeAAAA: c.aaaa} {
			in := ask(t, "udp", r.addr, "einstein.avtr.", qtype)
			var got string
			switch {
			case in.Rcode != dns.RcodeSuccess || len(in.Answer) > 1:
				got = in.String()
			case len(in.Answer) == 0:
			case qtype == dns.TypeA:
				got = in.Answer[0].(*dns.A).A.String()
			default:
				got = in.Answer[0].(*dns.AAAA).AAAA.String()
			}
			if got != want {
				t.Errorf("gateway %s, %s: %q, want %q", c.gw, dns.TypeToString[qtype], got, want)
			}
		}
	}
}

// Malformed packets, responses and a client that sends half a TCP query
// crash nothing and hold nothing: the next query is answered at once.
func TestDNSMalformed(t *testing.T) {
	r := startTestResponder(t, "127.0.0.1:8080", "avtr")
	conn, err := net.Dial("udp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	query := new(dns.Msg)
	query.SetQuestion("einstein.avtr.", dns.TypeA)
	good, _ := query.Pack()
	two := new(dns.Msg)
	two.Question = []dns.Question{{Name: "a.avtr.", Qtype: dns.TypeA, Qclass: dns.ClassINET}, {Name: "b.avtr.", Qtype: dns.TypeA, Qclass: dns.ClassINET}}
	twoPacked, _ := two.Pack()
	response := query.Copy()
	response.Response = true
	responsePacked, _ := response.Pack()
	update := query.Copy()
	update.Opcode = dns.OpcodeUpdate
	updatePacked, _ := update.Pack()
	for _, junk := range [][]byte{
		{},
		{0x12},
		[]byte("not a dns message at all, just bytes"),
		good[:len(good)-3],                           // the question cut short
		append(good[:12:12], 0xc0, 0x0c, 0, 1, 0, 1), // a name that points at itself
		twoPacked,
		responsePacked,
		updatePacked,
		make([]byte, 1500),
	} {
		conn.Write(junk)
	}
	// A TCP client that sends a length and two bytes, then nothing.
	slow, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.Write([]byte{0, 40, 1, 2})

	start := time.Now()
	for _, network := range []string{"udp", "tcp"} {
		if in := ask(t, network, r.addr, "einstein.avtr.", dns.TypeA); len(in.Answer) != 1 {
			t.Errorf("%s after junk: %v", network, in)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("answers after junk took %s", d)
	}
	// What came back for the junk: FORMERR or NOTIMP, never an answer.
	conn.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 2048)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			break
		}
		var m dns.Msg
		if m.Unpack(buf[:n]) == nil && len(m.Answer) != 0 {
			t.Errorf("junk was answered: %v", &m)
		}
	}
}

// dns_listen in the role: Start serves it, status shows it, Stop closes it.
func TestStartWithDNS(t *testing.T) {
	f := sdktest.NewHost(t)
	testSite(f, "site.avtr")
	f.SetConfig("gateway.listen", "127.0.0.1:0")
	r := &receiver{}
	ctx := context.Background()
	if diags := r.Start(ctx, json.RawMessage(`{"dns_listen": "127.0.0.1:0", "proxy_topics": ["avtr", "code"]}`), f); diags.HasError() {
		t.Fatal(diags)
	}
	out, _ := r.Command(ctx, "status", nil)
	var st struct {
		URL, DNS   string
		DNSQueries int64 `json:"dns_queries"`
	}
	data, _ := json.Marshal(out)
	json.Unmarshal(data, &st)
	if !strings.HasPrefix(st.DNS, "127.0.0.1:") || strings.HasSuffix(st.DNS, ":0") {
		t.Fatalf("status: %s", data)
	}
	in := ask(t, "udp", st.DNS, "site.avtr.", dns.TypeA)
	if len(in.Answer) != 1 || !in.Answer[0].(*dns.A).A.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("A site.avtr: %v", in)
	}
	if in := ask(t, "tcp", st.DNS, "x.code.", dns.TypeA); len(in.Answer) != 1 {
		t.Errorf("TCP A x.code: %v", in)
	}
	out, _ = r.Command(ctx, "status", nil)
	data, _ = json.Marshal(out)
	if !strings.Contains(string(data), `"dns_queries":2`) {
		t.Errorf("status after two queries: %s", data)
	}
	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if diags := r.Stop(stopCtx); diags.HasError() {
		t.Fatal(diags)
	}
	if _, _, err := (&dns.Client{Net: "tcp", Timeout: time.Second}).Exchange(new(dns.Msg).SetQuestion("site.avtr.", dns.TypeA), st.DNS); err == nil {
		t.Error("the responder still answers after Stop")
	}

	// An address taken: a clear Start error naming dns_listen, and the
	// gateway's port is let go.
	taken, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	r2 := &receiver{}
	diags := r2.Start(ctx, json.RawMessage(`{"dns_listen": "`+taken.LocalAddr().String()+`"}`), f)
	if !diags.HasError() || !strings.Contains(diags.Err().Error(), "dns_listen") {
		t.Errorf("Start on a taken DNS port: %v", diags)
	}
}
