// Command avnode-beacon is the beacon role: it hosts the names whose
// identity keys this node holds. It makes sure each name is claimed and its
// zone lists this node as a HOST, provides the content, tells followers of
// every new version at once on the name's pub/sub topic, and on shutdown
// re-puts its records and says it is leaving. Built on the SDK only.
package main

import "github.com/avnode/avnode/sdk"

func main() { sdk.Serve(&beacon{}) }
