package plugins

import (
	"fmt"
	"slices"
	"strings"

	"github.com/avnode/avnode/core/names"
)

// A permission is what one host-API call needs: a verb and, for most verbs,
// a scope (a name, a key, a topic...). A grant is the same with a pattern as
// scope, where '*' matches any run of characters: "zone.write:*.avtr".
// sdk/README.md, "Permissions", documents each verb for role authors.
type permission struct {
	verb  string
	scope string
}

func (p permission) String() string {
	if p.scope == "" {
		return p.verb
	}
	return p.verb + ":" + p.scope
}

// verbs are the permissions a role may ask for; the value says whether the
// verb takes a scope, and of what.
var verbs = map[string]string{
	"names.resolve":   "",           // Resolve, FindCopies
	"names.claim":     "name",       // Claim (with keys.use for its key)
	"keys.use":        "key",        // Claim's keystore key
	"zone.write":      "name",       // SetZoneRecord, RemoveZoneRecord: the zone's registered name
	"records.get":     "namespace",  // GetRecord: avtr-zone, avtr-claim, ...
	"records.put":     "namespace",  // PutRecord, OfferZone (avtr-zone)
	"content.fetch":   "",           // Fetch, FetchFrom, FetchUnannounced, ReadFile, FindProviders
	"content.provide": "",           // Provide, AttestCopy
	"content.pin":     "",           // Pin
	"content.unpin":   "",           // Unpin, of the role's own pins only
	"events":          "event kind", // Subscribe
	"pubsub":          "topic",      // Publish, SubscribeTopic
	"streams":         "protocol",   // HandleProtocol, OpenStream
	"relay":           "",           // StartRelay, RelayStatus
	"policy.decide":   "hook",       // Decide
	"roles.call":      "role",       // CallRole
	"config.read":     "config key", // NodeConfig
	"services":        "",           // SetService
}

// parsePermission reads a permission or a grant: "verb" or "verb:scope".
// A scoped verb without a scope is refused: a grant says what it covers
// ("zone.write:*" for every name).
func parsePermission(s string) (permission, error) {
	verb, scope, scoped := strings.Cut(strings.TrimSpace(s), ":")
	what, known := verbs[verb]
	switch {
	case !known:
		return permission{}, fmt.Errorf("permission %q: unknown; known are %s", s, strings.Join(knownVerbs(), ", "))
	case what == "" && scoped:
		return permission{}, fmt.Errorf("permission %q: %s takes no scope", s, verb)
	case what != "" && (!scoped || scope == ""):
		return permission{}, fmt.Errorf("permission %q: %s needs a %s after ':' (%s:* for any)", s, verb, what, verb)
	}
	return permission{verb: verb, scope: scope}, nil
}

func knownVerbs() []string {
	out := make([]string, 0, len(verbs))
	for v := range verbs {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// grants are the permissions one role holds.
type grants []permission

func parseGrants(list []string) (grants, error) {
	var out grants
	for _, s := range list {
		p, err := parsePermission(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// allows says whether a grant covers p.
func (g grants) allows(p permission) bool {
	for _, have := range g {
		if have.verb == p.verb && (have.scope == p.scope || globMatch(have.scope, p.scope)) {
			return true
		}
	}
	return false
}

// globMatch matches s against pattern, where '*' stands for any run of
// characters ('/' and '.' included) and nothing else is special.
func globMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}

// nameScope is the scope a name gives a permission: its registered name,
// lower-case, whichever spelling the role used (an://alice:avtr, Alice.avtr,
// api.alice.avtr all write the zone alice.avtr). A name that does not parse
// keeps its text, which no sane grant matches; the node refuses it anyway.
func nameScope(name string) string {
	n, err := names.Parse(name)
	if err != nil {
		return name
	}
	return n.Registered().String()
}

// recordNamespace is the namespace of a DHT record key: avtr-zone for
// /avtr-zone/alice.avtr.
func recordNamespace(key string) string {
	ns, _, _ := strings.Cut(strings.TrimPrefix(key, "/"), "/")
	return ns
}
