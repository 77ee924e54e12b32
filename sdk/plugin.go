// Package sdk is what a role plugin for avnode imports: the handshake both
// sides must agree on, the go-plugin adapters, and (in serve.go) the helper
// that makes a plugin's main a few lines. The node imports the same package
// to start plugins, so both always speak the same protocol.
package sdk

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/avnode/avnode/sdk/pluginpb"
)

// ProtocolVersion is the version of the plugin protocol this SDK speaks. A
// node and a plugin with different versions refuse each other at the
// handshake, with a message naming both versions.
const ProtocolVersion = 1

// PluginKey is the name of the role plugin in go-plugin's plugin map.
const PluginKey = "role"

// Handshake is checked before anything else crosses. The magic cookie only
// stops a plugin binary from being run by hand by mistake; it is not
// security: pin checksums in the node's config for that.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "AVNODE_ROLE_PLUGIN",
	MagicCookieValue: "9f1c2e7a-avnode-role-plugin",
}

// RolePlugin adapts a Role server (plugin side) and client (node side) to go-plugin.
type RolePlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// NewRoleServer builds the plugin's Role server once go-plugin has a
	// broker. (Not named Server: that is a method of go-plugin's Plugin.)
	NewRoleServer func(broker *plugin.GRPCBroker) pluginpb.RoleServer
}

// GRPCServer registers the plugin's Role service.
func (p *RolePlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	pluginpb.RegisterRoleServer(s, p.NewRoleServer(broker))
	return nil
}

// GRPCClient gives the node a RoleClient and the broker to serve Host on.
func (p *RolePlugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &RoleClient{RoleClient: pluginpb.NewRoleClient(c), Broker: broker}, nil
}

// RoleClient is the node's handle on a running plugin.
type RoleClient struct {
	pluginpb.RoleClient
	Broker *plugin.GRPCBroker
}

var _ plugin.GRPCPlugin = (*RolePlugin)(nil)
