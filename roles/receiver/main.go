// Command avnode-receiver is the receiver role: it runs the node's local
// HTTP gateway, so that a browser opens avnode names (einstein.avtr) by path
// (/name/NAME/PATH, /cid/CID/PATH), by subdomain (NAME.localhost:PORT) and
// through the gateway used as an HTTP proxy for the avnode topics. It
// resolves and fetches through the node and reads files from the node's
// store; it keeps no content of its own and never forwards a request to the
// internet. Built on the SDK only.
package main

import "github.com/avnode/avnode/sdk"

func main() { sdk.Serve(&receiver{}) }
