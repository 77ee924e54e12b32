// Command avnode-satellite is the satellite role, for a light device (a
// phone): paired with the beacon of a name whose owner delegated to it, it
// resolves names and fetches content through that beacon over a libp2p
// protocol, and hands it other work (offload); when the beacon does not
// answer, the node goes by the DHT itself. Built on the SDK only.
package main

import "github.com/avnode/avnode/sdk"

func main() { sdk.Serve(&satellite{}) }
