package plugins

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/avnode/avnode/core/fault"
	"github.com/avnode/avnode/sdk/pluginpb"
)

func TestParsePermission(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "names.resolve", want: "names.resolve"},
		{in: "zone.write:alice.avtr", want: "zone.write:alice.avtr"},
		{in: "pubsub:avtr/name/*", want: "pubsub:avtr/name/*"},
		{in: "zone.write", err: "needs a name"},
		{in: "zone.write:", err: "needs a name"},
		{in: "names.resolve:alice.avtr", err: "takes no scope"},
		{in: "root", err: "unknown"},
		{in: "", err: "unknown"},
	} {
		p, err := parsePermission(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parsePermission(%q) = %v, %v; want an error saying %q", tc.in, p, err, tc.err)
			}
			continue
		}
		if err != nil || p.String() != tc.want {
			t.Errorf("parsePermission(%q) = %q, %v; want %q", tc.in, p, err, tc.want)
		}
	}
}

func TestGrantsAllow(t *testing.T) {
	g, err := parseGrants([]string{"zone.write:alice.avtr", "pubsub:avtr/name/*", "config.read:gateway.*", "roles.call:*", "content.fetch"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p    permission
		want bool
	}{
		{permission{"zone.write", "alice.avtr"}, true},
		{permission{"zone.write", "bob.avtr"}, false},
		{permission{"zone.write", "alice.avtr.evil"}, false},
		{permission{"pubsub", "avtr/name/alice.avtr"}, true},
		{permission{"pubsub", "avtr/other"}, false},
		{permission{"config.read", "gateway.listen"}, true},
		{permission{"config.read", "identity.key"}, false},
		{permission{"roles.call", "anything"}, true},
		{permission{"content.fetch", ""}, true},
		{permission{"content.pin", ""}, false},
		{permission{"events", "*"}, false}, // all kinds needs a grant of all
	} {
		if got := g.allows(tc.p); got != tc.want {
			t.Errorf("allows(%s) = %v, want %v", tc.p, got, tc.want)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "a/b.c", true},
		{"a*c", "abbbc", true},
		{"a*c", "abbb", false},
		{"*.avtr", "alice.avtr", true},
		{"*.avtr", "alice.avtr.node", false},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "aXcYb", false},
		{"abc", "abc", true},
		{"abc", "abcd", false},
	} {
		if got := globMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

// Every spelling of a name gives the scope of its zone, so a grant of
// alice.avtr covers an://alice:avtr and api.alice.avtr and nothing else.
func TestNameScope(t *testing.T) {
	for in, want := range map[string]string{
		"alice.avtr": "alice.avtr", "Alice.AVTR": "alice.avtr", "an://alice:avtr": "alice.avtr",
		"api.alice.avtr": "alice.avtr", "bob.avtr": "bob.avtr",
	} {
		if got := nameScope(in); got != want {
			t.Errorf("nameScope(%q) = %q, want %q", in, got, want)
		}
	}
}

// Every host call has its permission: a call added to the protocol without
// one would be refused to every role.
func TestEveryHostCallHasItsPermission(t *testing.T) {
	for _, m := range pluginpb.Host_ServiceDesc.Methods {
		if _, ok := needs["/"+pluginpb.Host_ServiceDesc.ServiceName+"/"+m.MethodName]; !ok {
			t.Errorf("host call %s has no entry in needs", m.MethodName)
		}
	}
	for _, s := range pluginpb.Host_ServiceDesc.Streams {
		if _, ok := needs["/"+pluginpb.Host_ServiceDesc.ServiceName+"/"+s.StreamName]; !ok {
			t.Errorf("host stream %s has no entry in needs", s.StreamName)
		}
	}
}

// Grants and revokes outlive the store (the grants file), apply over the
// config's, and a bad one changes nothing.
func TestGrantStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "grants.json")
	configured := map[string][]string{"mirror": {"content.pin", "content.unpin"}}
	s, err := newGrantStore(configured, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.grant("pinner", []string{"content.fetch", "content.pin"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.revoke("mirror", []string{"content.unpin"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.grant("pinner", []string{"content.fetch", "zone.write"}); fault.KindOf(err) != fault.Invalid {
		t.Errorf("grant of a scoped verb without scope = %v; want an invalid-input error", err)
	}
	if _, err := s.revoke("mirror", []string{"content.fetch"}); fault.KindOf(err) != fault.NotFound {
		t.Errorf("revoke of a grant not held = %v; want not found", err)
	}

	again, err := newGrantStore(configured, path)
	if err != nil {
		t.Fatal(err)
	}
	if got := again.list("pinner"); !slices.Equal(got, []string{"content.fetch", "content.pin"}) {
		t.Errorf("pinner after reopening = %v", got)
	}
	if got := again.list("mirror"); !slices.Equal(got, []string{"content.pin"}) {
		t.Errorf("mirror after reopening = %v; the revoke of a configured grant should hold", got)
	}
	if again.of("mirror").allows(permission{verb: "content.unpin"}) {
		t.Error("a revoked grant still allows its call")
	}
	if _, err := again.grant("mirror", []string{"content.unpin"}); err != nil || !again.of("mirror").allows(permission{verb: "content.unpin"}) {
		t.Errorf("granting a revoked grant back: %v", err)
	}

	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newGrantStore(configured, path); err == nil || !strings.Contains(err.Error(), "not valid JSON") {
		t.Errorf("a damaged grants file = %v; want an error naming it", err)
	}
	if _, err := newGrantStore(map[string][]string{"x": {"everything"}}, ""); err == nil || !strings.Contains(err.Error(), "plugins.grants.x") {
		t.Errorf("a bad configured grant = %v; want an error naming plugins.grants.x", err)
	}
}

// A confined plugin gets the locale, PATH, the Go and go-plugin settings
// and its own ROLE_* variables; nothing else of the node's environment.
func TestPluginEnvKeepsOnlyWhatAPluginNeeds(t *testing.T) {
	got := pluginEnv("test-role", []string{"PATH=/bin", "HOME=/root", "LC_ALL=C", "GODEBUG=x=1", "PLUGIN_MIN_PORT=1",
		"TEST_ROLE_DEBUG=1", "SSH_AUTH_SOCK=/tmp/agent", "AWS_SECRET_ACCESS_KEY=k", "OTHER_DEBUG=1", "TESTROLE=1"})
	want := []string{"PATH=/bin", "HOME=/root", "LC_ALL=C", "GODEBUG=x=1", "PLUGIN_MIN_PORT=1", "TEST_ROLE_DEBUG=1"}
	if !slices.Equal(got, want) {
		t.Fatalf("pluginEnv = %q; want %q", got, want)
	}
}
