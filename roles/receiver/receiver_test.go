package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/avnode/avnode/sdk/sdktest"
)

func TestValidateConfig(t *testing.T) {
	cases := []struct {
		name, config string
		errors       []string // attributes of the error diagnostics, in order
	}{
		{"defaults", `{}`, nil},
		{"all set", `{"proxy_topics": ["avtr", "code"], "max_concurrent_fetches": 4, "fetch_timeout": "30s", "cache_entries": 10, "announce_browsed": true}`, nil},
		{"bad announce", `{"announce_browsed": "yes"}`, []string{""}},
		{"proxy off", `{"proxy_topics": []}`, nil},
		{"bad topic", `{"proxy_topics": ["avtr", ".Code"]}`, []string{"proxy_topics[1]"}},
		{"bad timeout", `{"fetch_timeout": "soon"}`, []string{"fetch_timeout"}},
		{"short timeout", `{"fetch_timeout": "10ms"}`, []string{"fetch_timeout"}},
		{"no fetches", `{"max_concurrent_fetches": 0}`, []string{"max_concurrent_fetches"}},
		{"no cache", `{"cache_entries": -1}`, []string{"cache_entries"}},
		{"unknown key", `{"listen": "127.0.0.1:8080"}`, []string{""}},
		{"wrong type", `{"proxy_topics": "avtr"}`, []string{""}},
		{"dns", `{"dns_listen": "127.0.0.1:5335"}`, nil},
		{"dns on IPv6", `{"dns_listen": "[::1]:53"}`, nil},
		{"dns without topics", `{"dns_listen": "127.0.0.1:5335", "proxy_topics": []}`, nil}, // a warning
		{"dns by name", `{"dns_listen": "localhost:5335"}`, []string{"dns_listen"}},
		{"dns without port", `{"dns_listen": "127.0.0.1"}`, []string{"dns_listen"}},
		{"dns port too big", `{"dns_listen": "127.0.0.1:65536"}`, []string{"dns_listen"}},
		{"dns port a word", `{"dns_listen": "127.0.0.1:dns"}`, []string{"dns_listen"}},
		{"dns a number", `{"dns_listen": 5335}`, []string{""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var errs []string
			for _, d := range (&receiver{}).ValidateConfig(json.RawMessage(c.config)) {
				if d.IsError() {
					errs = append(errs, d.Attribute)
				}
			}
			if strings.Join(errs, ",") != strings.Join(c.errors, ",") {
				t.Errorf("errors at %q, want %q", errs, c.errors)
			}
		})
	}
	set, _ := parseConfig(json.RawMessage(`{}`))
	if strings.Join(set.topics, ",") != "avtr" || set.maxFetches != 16 || set.fetchTimeout != time.Minute || set.cacheEntries != 1024 || set.announce ||
		set.dnsListen != "" {
		t.Errorf("defaults: %+v", set)
	}
	if _, diags := parseConfig(json.RawMessage(`{"dns_listen": "127.0.0.1:5335", "proxy_topics": []}`)); len(diags) != 1 ||
		diags.HasError() || !strings.Contains(diags[0].String(), "refuses every name") {
		t.Errorf("dns_listen without topics: %v, want a warning", diags)
	}
}

func TestDescribe(t *testing.T) {
	d := (&receiver{}).Describe()
	var schema map[string]any
	if d.Name != "receiver" || len(d.Capabilities) != 1 || d.Capabilities[0] != "gateway" || json.Unmarshal([]byte(d.ConfigSchema), &schema) != nil {
		t.Errorf("Describe = %+v", d)
	}
}

// Start listens on the node's gateway.listen and tells the node the URL;
// Stop closes the listener and withdraws it.
func TestStartStop(t *testing.T) {
	f := sdktest.NewHost(t)
	testSite(f, "site.avtr")
	f.SetConfig("gateway.listen", "127.0.0.1:0")
	f.SetConfig("names.zone_ttl", "1m30s")
	r := &receiver{}
	ctx := context.Background()
	if diags := r.Start(ctx, json.RawMessage(`{}`), f); diags.HasError() {
		t.Fatal(diags)
	}
	url := f.Services()["gateway"]
	if !strings.HasPrefix(url, "http://127.0.0.1:") || strings.HasSuffix(url, ":0") {
		t.Fatalf("gateway URL %q", url)
	}
	// The path form redirects to site-avtr.localhost, which Go's resolver
	// may not know: dial the gateway for every host, as a browser would.
	gw := strings.TrimPrefix(url, "http://")
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, gw)
	}}}
	resp, err := client.Get(url + "/name/site.avtr/page2.html")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "public, max-age=90" {
		t.Errorf("GET through the started gateway: %d %q (want the node's zone TTL as max-age)", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	out, diags := r.Command(ctx, "status", nil)
	data, _ := json.Marshal(out)
	if diags.HasError() || !strings.Contains(string(data), `"url":"`+url+`"`) || !strings.Contains(string(data), `"requests":2`) {
		t.Errorf("status: %s %v", data, diags)
	}
	if _, diags := r.Command(ctx, "flush", nil); !diags.HasError() {
		t.Error("an unknown command was accepted")
	}

	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if diags := r.Stop(stopCtx); diags.HasError() {
		t.Fatal(diags)
	}
	if got, ok := f.Services()["gateway"]; ok || len(f.Calls("SetService")) != 2 {
		t.Errorf("after Stop the gateway's service is %q, want withdrawn", got)
	}
	if _, err := http.Get(url + "/"); err == nil {
		t.Error("the gateway still answers after Stop")
	}
}

// A port already taken is a clear Start error, not a crash.
func TestStartOnATakenPort(t *testing.T) {
	f := sdktest.NewHost(t)
	f.SetConfig("gateway.listen", "127.0.0.1:0")
	first := &receiver{}
	if diags := first.Start(context.Background(), json.RawMessage(`{}`), f); diags.HasError() {
		t.Fatal(diags)
	}
	defer first.Stop(context.Background())
	f.SetConfig("gateway.listen", strings.TrimPrefix(f.Services()["gateway"], "http://"))
	diags := (&receiver{}).Start(context.Background(), json.RawMessage(`{}`), f)
	if !diags.HasError() || !strings.Contains(diags.Err().Error(), "gateway.listen") {
		t.Errorf("second Start on the same port: %v", diags)
	}
}
