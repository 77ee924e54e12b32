// Command avnode-pinner is an example third-party avnode role: it keeps a
// configured list of CIDs fetched and pinned on the node.
package main

import "github.com/avnode/avnode/sdk"

func main() { sdk.Serve(&Pinner{}) }
