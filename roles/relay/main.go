// Command avnode-relay is the relay role: it runs the node's circuit relay
// v2 service with limits from its config, so that nodes behind NAT can be
// reached through this one until hole punching connects them directly, and
// announces the node as a relay in the DHT. Built on the SDK only.
package main

import "github.com/avnode/avnode/sdk"

func main() { sdk.Serve(&relay{}) }
