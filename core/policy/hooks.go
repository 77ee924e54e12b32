package policy

import (
	"fmt"
	"sort"
	"strings"
)

// The hooks a script may define. Their names are fixed: the node calls them.
const (
	HookStoreRecord    = "store_record"    // may this node store this DHT record
	HookAcceptRecord   = "accept_record"   // may a resolver accept this record
	HookOrderProviders = "order_providers" // which content providers to try first
	HookOrderHosts     = "order_hosts"     // which hosts of a name to try first
	HookMirror         = "mirror"          // should this node mirror this name
	HookRelayReserve   = "relay_reserve"   // may this peer reserve a relay slot
)

// What a hook's verdict becomes when its script errors, overruns its budget or
// the worker is down.
const (
	FallbackAllow   = "allow"
	FallbackDeny    = "deny"
	FallbackDefault = "default" // undecided: the caller's built-in default applies
)

// hookSpec says what a hook returns and what its fallback is unless the
// operator configures another.
type hookSpec struct {
	order    bool // returns {order=...}; otherwise {allow=...}
	fallback string
}

var hookSpecs = map[string]hookSpec{
	HookStoreRecord:    {fallback: FallbackDeny},  // fail closed: storing is a commitment
	HookAcceptRecord:   {fallback: FallbackAllow}, // fail open: names must keep resolving
	HookOrderProviders: {order: true, fallback: FallbackDefault},
	HookOrderHosts:     {order: true, fallback: FallbackDefault},
	HookMirror:         {fallback: FallbackDeny},
	HookRelayReserve:   {fallback: FallbackDeny},
}

// hookNames lists the hooks for messages, in a stable order.
func hookNames() string {
	names := make([]string, 0, len(hookSpecs))
	for name := range hookSpecs {
		names = append(names, name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// resolveFallbacks merges the operator's fallbacks over the defaults and
// rejects unknown hooks and values, so a typo in config fails at start rather
// than silently keeping a default.
func resolveFallbacks(configured map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(hookSpecs))
	for name, spec := range hookSpecs {
		out[name] = spec.fallback
	}
	for hook, value := range configured {
		spec, ok := hookSpecs[hook]
		if !ok {
			return nil, fmt.Errorf("policy: fallback for unknown hook %q; hooks are %s", hook, hookNames())
		}
		switch value {
		case FallbackAllow, FallbackDeny:
			if spec.order {
				return nil, fmt.Errorf("policy: fallback %q for %s: an ordering hook has no allow or deny; use %q", value, hook, FallbackDefault)
			}
		case FallbackDefault:
		default:
			return nil, fmt.Errorf("policy: fallback %q for %s: use %q, %q or %q", value, hook, FallbackAllow, FallbackDeny, FallbackDefault)
		}
		out[hook] = value
	}
	return out, nil
}
