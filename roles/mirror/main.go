// Command avnode-mirror is the mirror role: it keeps copies of other
// people's names so that they live while their owners are offline. It
// follows each name's updates on pub/sub (and re-resolves now and then),
// fetches, verifies, pins and provides the content, attests that it holds
// the version, and republishes the owner's signed claim and zone. It never
// serves a zone whose signature fails, nor an older one over a newer: the
// node checks every zone it is offered. Built on the SDK only.
package main

import "github.com/avnode/avnode/sdk"

func main() { sdk.Serve(&mirror{}) }
