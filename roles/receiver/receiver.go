package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/avnode/avnode/sdk"
)

// config is the receiver's section of the node's config, role_config.receiver.
// The gateway's address is the node's gateway.listen, not a role setting, so
// that `avnode run --gateway.listen` and `avnode id` agree.
type config struct {
	ProxyTopics          *[]string `json:"proxy_topics"`           // default ["avtr"]; [] turns the proxy form off
	MaxConcurrentFetches int       `json:"max_concurrent_fetches"` // default 16
	FetchTimeout         string    `json:"fetch_timeout"`          // default 1m
	CacheEntries         int       `json:"cache_entries"`          // default 1024
	AnnounceBrowsed      bool      `json:"announce_browsed"`       // default false
	DNSListen            string    `json:"dns_listen"`             // default "": no DNS responder
}

const (
	defaultFetchTimeout = time.Minute
	defaultListen       = "127.0.0.1:8080"
	// defaultZoneTTL is the node's default names.zone_ttl, for a node that
	// does not share its config.
	defaultZoneTTL = 5 * time.Minute
	reportInterval = 5 * time.Second
)

const configSchema = `{"type":"object","additionalProperties":false,"properties":{` +
	`"proxy_topics":{"type":"array","items":{"type":"string"},"description":"topics the gateway serves as an HTTP proxy and its PAC file sends to it (default [\"avtr\"])"},` +
	`"max_concurrent_fetches":{"type":"integer","minimum":1,"description":"resolves and fetches under way at once; more wait (default 16)"},` +
	`"fetch_timeout":{"type":"string","description":"how long a request may wait for a resolve or fetch, a Go duration (default 1m, at least 1s)"},` +
	`"cache_entries":{"type":"integer","minimum":1,"description":"resolved names and fetched paths remembered (default 1024 each)"},` +
	`"announce_browsed":{"type":"boolean","description":"announce what the gateway fetched as a DHT provider, which publishes what was browsed (default false)"},` +
	`"dns_listen":{"type":"string","description":"IP:port of a DNS responder (UDP and TCP) answering names under proxy_topics with the gateway's address, like 127.0.0.1:5335 (default \"\": none)"}}}`

// settings are a config with its defaults applied and its values checked.
type settings struct {
	topics       []string
	maxFetches   int
	fetchTimeout time.Duration
	cacheEntries int
	// announce lets the node announce what the gateway fetched as a DHT
	// provider; off, the node's provider records do not tell the network
	// what its user browsed.
	announce bool
	// dnsListen is where the DNS responder listens; "" runs none.
	dnsListen string
}

// receiver is the role: it owns the gateway's HTTP server.
type receiver struct {
	set    settings
	host   sdk.Host
	gw     *gateway
	srv    *http.Server
	dns    *responder    // nil without dns_listen
	served chan struct{} // closed when srv.Serve returns
	url    string
	stop   context.CancelFunc // ends the metrics loop and the gateway's lookups
	done   sync.WaitGroup
}

func (r *receiver) Describe() sdk.Description {
	return sdk.Description{
		Name: "receiver", Version: "0.1.0",
		Summary:      "local HTTP gateway: browse avnode names by path, NAME.localhost, as an HTTP proxy, or by name through its DNS responder",
		Capabilities: []string{"gateway"},
		// README.md, "Permissions": why each is needed.
		Permissions:  []string{"names.resolve", "content.fetch", "config.read:gateway.listen", "config.read:names.zone_ttl", "services"},
		ConfigSchema: configSchema,
	}
}

func (r *receiver) ValidateConfig(raw json.RawMessage) sdk.Diagnostics {
	_, diags := parseConfig(raw)
	return diags
}

func parseConfig(raw json.RawMessage) (settings, sdk.Diagnostics) {
	c := config{MaxConcurrentFetches: 16, CacheEntries: 1024}
	if err := sdk.DecodeStrict(raw, &c); err != nil {
		return settings{}, sdk.Diagnostics{sdk.Errorf("config is not valid: %v", err).
			WithDetail("the receiver takes proxy_topics, max_concurrent_fetches, fetch_timeout, cache_entries, announce_browsed and dns_listen")}
	}
	set := settings{topics: []string{"avtr"}, maxFetches: c.MaxConcurrentFetches, fetchTimeout: defaultFetchTimeout,
		cacheEntries: c.CacheEntries, announce: c.AnnounceBrowsed, dnsListen: c.DNSListen}
	var diags sdk.Diagnostics
	if c.ProxyTopics != nil {
		set.topics = nil
		for i, topic := range *c.ProxyTopics {
			if err := checkLabel(topic); err != nil {
				diags = append(diags, sdk.Errorf("%q is not a topic: %v", topic, err).
					WithAttribute(fmt.Sprintf("proxy_topics[%d]", i)).WithDetail("a topic is the last label of a name, like avtr or code"))
			}
			set.topics = append(set.topics, topic)
		}
	}
	if c.FetchTimeout != "" {
		d, err := time.ParseDuration(c.FetchTimeout)
		if err != nil || d < time.Second {
			diags = append(diags, sdk.Errorf("%q is not a duration of at least 1s", c.FetchTimeout).WithAttribute("fetch_timeout"))
		}
		set.fetchTimeout = d
	}
	if c.MaxConcurrentFetches < 1 {
		diags = append(diags, sdk.Errorf("max_concurrent_fetches must be at least 1").WithAttribute("max_concurrent_fetches"))
	}
	if c.CacheEntries < 1 {
		diags = append(diags, sdk.Errorf("cache_entries must be at least 1").WithAttribute("cache_entries"))
	}
	if c.DNSListen != "" {
		if err := checkDNSListen(c.DNSListen); err != nil {
			diags = append(diags, sdk.Errorf("dns_listen: %v", err).WithAttribute("dns_listen").
				WithDetail("the DNS responder listens on an IP address and port, like 127.0.0.1:5335; leave it out for none"))
		} else if len(set.topics) == 0 {
			diags = append(diags, sdk.Warningf("dns_listen is set but proxy_topics is empty: the DNS responder refuses every name").
				WithAttribute("dns_listen"))
		}
	}
	return set, diags
}

// lowPort says why a port below 1024 was refused, and what to do.
const lowPort = "a port below 1024 needs CAP_NET_BIND_SERVICE in the role's process: a node run as root has its plugins' capabilities dropped, " +
	"and a node run by systemd needs AmbientCapabilities=CAP_NET_BIND_SERVICE (configs/systemd/README.md); " +
	"or let every program bind them (sysctl net.ipv4.ip_unprivileged_port_start=80), or choose a port above 1023"

// gatewayTries is how many ports after the default one the gateway tries.
const gatewayTries = 16

func (r *receiver) Start(ctx context.Context, raw json.RawMessage, host sdk.Host) sdk.Diagnostics {
	set, diags := parseConfig(raw)
	if diags.HasError() {
		return diags
	}
	r.set, r.host = set, host
	listen := defaultListen
	// A node that does not share its config, or predates gateway.listen, gets the default.
	if err := host.NodeConfig(ctx, "gateway.listen", &listen); err != nil && !sdk.IsUnimplemented(err) && !sdk.IsNotFound(err) {
		return sdk.Diagnostics{sdk.Errorf("read the node's gateway.listen: %v", err)}
	}
	zoneTTL := defaultZoneTTL
	var ttlText string
	if err := host.NodeConfig(ctx, "names.zone_ttl", &ttlText); err == nil {
		if d, err := time.ParseDuration(ttlText); err == nil {
			zoneTTL = d
		}
	}
	// The default port taken (a second node on the machine) moves to the
	// next free one, said in the log and in `avnode id`; a port set in
	// gateway.listen is kept or refused.
	next := 0
	if listen == defaultListen {
		next = gatewayTries
	}
	ln, moved, err := sdk.ListenOrNext(listen, next)
	if err != nil {
		detail := "another program (or another avnode) holds the port; set gateway.listen to a free one, or 127.0.0.1:0 for any"
		if errors.Is(err, syscall.EACCES) {
			detail = lowPort
		}
		return sdk.Diagnostics{sdk.Errorf("gateway: listen on %s: %v", listen, err).WithDetail("%s", detail)}
	}
	if moved {
		host.Logger().Warn("the default gateway port is taken (another node on this machine?); the gateway listens on the next free one; set gateway.listen to choose",
			"wanted", listen, "listen", ln.Addr().String())
	}
	gwAddr := ln.Addr().(*net.TCPAddr)
	r.url = "http://" + reachable(gwAddr)
	if set.dnsListen != "" {
		// Bound before the gateway serves: a responder that cannot listen
		// fails the start, and points nowhere meanwhile.
		if r.dns, err = startResponder(set.dnsListen, set.topics, gwAddr); err != nil {
			ln.Close()
			detail := "another program holds the port (a system resolver on port 53?); set dns_listen to a free one, like 127.0.0.1:5335"
			if errors.Is(err, syscall.EACCES) {
				detail = lowPort
			}
			return sdk.Diagnostics{sdk.Errorf("dns_listen: listen on %s: %v", set.dnsListen, err).WithAttribute("dns_listen").WithDetail("%s", detail)}
		}
	}
	var base context.Context
	base, r.stop = context.WithCancel(context.Background())
	r.gw = newGateway(base, host, set, ln.Addr().String(), zoneTTL)
	r.srv = &http.Server{Handler: r.gw, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	r.served = make(chan struct{})
	go func() {
		defer close(r.served)
		if err := r.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			host.Logger().Error("gateway stopped serving", "err", err)
		}
	}()
	if err := host.SetService(ctx, "gateway", r.url); err != nil && !sdk.IsUnimplemented(err) {
		host.Logger().Warn("the node did not take the gateway's URL; `avnode id` will not show it", "err", err)
	}
	r.done.Add(1)
	go r.report(base)
	host.Logger().Info("gateway running", "url", r.url, "proxy_topics", fmt.Sprint(set.topics),
		"max_concurrent_fetches", set.maxFetches, "zone_ttl", zoneTTL.String(), "announce_browsed", set.announce)
	if r.dns != nil {
		host.Logger().Info("DNS responder answering names under the proxy topics with the gateway's address",
			"dns", r.dns.addr, "udp", true, "tcp", true, "topics", fmt.Sprint(set.topics), "a", ipOrNone(r.dns.a), "aaaa", ipOrNone(r.dns.aaaa))
	}
	return diags // warnings only
}

// ipOrNone is an answer of the DNS responder, for the log.
func ipOrNone(ip net.IP) string {
	if ip == nil {
		return "none (NODATA)"
	}
	return ip.String()
}

// reachable is the address a browser on this machine uses for a listener:
// a wildcard address is reached on loopback.
func reachable(a *net.TCPAddr) string {
	ip := a.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(a.Port))
}

// report mirrors the gateway's counters into the role's metrics every few
// seconds: a metric is a call to the node, too costly for every request.
func (r *receiver) report(ctx context.Context) {
	defer r.done.Done()
	tick := time.NewTicker(reportInterval)
	defer tick.Stop()
	var last stats
	var lastQueries, lastRefused int64
	for {
		st := r.gw.stats()
		r.host.Gauge("gateway_fetches_in_flight", "resolves and fetches the gateway has under way", float64(st.InFlight))
		r.host.Gauge("gateway_cache_entries", "names and paths the gateway remembers", float64(st.CacheEntries))
		r.host.CounterAdd("gateway_requests", "HTTP requests the gateway answered", float64(st.Requests-last.Requests))
		r.host.CounterAdd("gateway_errors", "HTTP requests the gateway answered with an error (4xx or 5xx)", float64(st.Errors-last.Errors))
		r.host.CounterAdd("gateway_fetches", "resolves and fetches the gateway asked the node for", float64(st.Fetches-last.Fetches))
		r.host.CounterAdd("gateway_cross_site_refused", "requests another site's page made, refused without a fetch", float64(st.CrossSite-last.CrossSite))
		last = st
		if r.dns != nil {
			q, refused := r.dns.queries.Load(), r.dns.refused.Load()
			r.host.CounterAdd("dns_queries", "DNS queries the receiver's responder answered", float64(q-lastQueries))
			r.host.CounterAdd("dns_refused", "DNS queries refused: names outside the proxy topics", float64(refused-lastRefused))
			lastQueries, lastRefused = q, refused
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Stop ends lookups under way (their requests answer 503), lets the
// requests finish within ctx, then closes what is left.
func (r *receiver) Stop(ctx context.Context) sdk.Diagnostics {
	if r.srv == nil {
		return nil
	}
	r.stop()
	if r.dns != nil {
		r.dns.stop(ctx) // first: no name points at a gateway that is going
	}
	var diags sdk.Diagnostics
	if err := r.srv.Shutdown(ctx); err != nil {
		r.srv.Close()
		diags = append(diags, sdk.Warningf("gateway: requests still running at stop were cut: %v", err))
	}
	<-r.served
	r.gw.wait(ctx)
	r.done.Wait()
	if err := r.host.SetService(ctx, "gateway", ""); err != nil && !sdk.IsUnimplemented(err) {
		diags = append(diags, sdk.Warningf("gateway: tell the node it stopped: %v", err))
	}
	return diags
}

// Command answers `avnode roles call receiver status`.
func (r *receiver) Command(_ context.Context, name string, args []string) (any, sdk.Diagnostics) {
	if name != "status" || len(args) != 0 {
		return nil, sdk.Diagnostics{sdk.Errorf("unknown command %q %v; the receiver takes: status", name, args)}
	}
	if r.gw == nil {
		return nil, sdk.Diagnostics{sdk.Errorf("the gateway is not running")}
	}
	st := struct {
		URL         string   `json:"url"`
		ProxyTopics []string `json:"proxy_topics"`
		DNS         string   `json:"dns,omitempty"` // where the DNS responder answers, UDP and TCP
		DNSQueries  int64    `json:"dns_queries,omitempty"`
		DNSRefused  int64    `json:"dns_refused,omitempty"`
		stats
	}{URL: r.url, ProxyTopics: r.set.topics, stats: r.gw.stats()}
	if r.dns != nil {
		st.DNS, st.DNSQueries, st.DNSRefused = r.dns.addr, r.dns.queries.Load(), r.dns.refused.Load()
	}
	return st, nil
}

// A signature slip in a method fails the build, not the role: sdk.Serve
// finds Command by a type assertion.
var (
	_ sdk.Role      = (*receiver)(nil)
	_ sdk.Commander = (*receiver)(nil)
)
