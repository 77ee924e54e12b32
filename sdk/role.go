package sdk

import (
	"context"
	"encoding/json"
)

// Role is what a role author implements; Serve does the rest. The node calls
// the methods in the order Describe → ValidateConfig → Start → Stop, never two
// of ValidateConfig, Start and Stop at the same time. A panic in any of them
// is caught by the SDK and reported to the node as an error diagnostic.
type Role interface {
	// Describe says who the role is. It is also called before the
	// handshake, so it must not print anything or do work.
	Describe() Description
	// ValidateConfig checks the role's config section (JSON, "{}" when the
	// node's config has none) and says what is wrong with it, each problem
	// with its Attribute ("interval", "cids[2]"). Unknown keys should be
	// errors: they are usually typos.
	ValidateConfig(config json.RawMessage) Diagnostics
	// Start starts the role with the same config. ctx only bounds Start
	// itself; work that outlives Start needs its own context, ended by Stop.
	// host stays valid until Stop returns. If Start returns an error, it
	// must have undone what it started: Stop is not called.
	Start(ctx context.Context, config json.RawMessage, host Host) Diagnostics
	// Stop ends what Start started before ctx's deadline (at most 5 s when
	// the process is being signalled; the process exits after it anyway).
	Stop(ctx context.Context) Diagnostics
}

// Description is a role's self-description: what `<plugin> describe` prints
// and what the node's Describe call returns.
type Description struct {
	// Name is the role: the plugin binary is avnode-<Name>, and the node
	// reads its config from role_config.<Name>. Lower-case letters, digits
	// and '-', starting with a letter.
	Name string `json:"name"`
	// Version is the plugin's own version, not the protocol's.
	Version string `json:"version"`
	// Summary is one line for `avnode plugins ls`.
	Summary string `json:"summary"`
	// Capabilities are free-form words the node and operators can match on.
	Capabilities []string `json:"capabilities"`
	// ConfigSchema is a JSON Schema of the role's config section, as a string
	// of JSON; empty for none.
	ConfigSchema string `json:"config_schema"`
	// Permissions are the host-API permissions the role needs (README,
	// "Permissions"), each a name and, for most, a scope: "names.resolve",
	// "zone.write:alice.avtr", "pubsub:avtr/name/*". The node serves a call
	// only if its operator granted the permission (plugins.grants.<role>);
	// asking here is how `avnode plugins describe` shows what to grant.
	Permissions []string `json:"permissions"`
}
