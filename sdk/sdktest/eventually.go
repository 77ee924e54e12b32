// Package sdktest tests roles without a node: Host is an sdk.Host in
// memory, and Eventually is a bounded wait for what a role does in the
// background.
//
// A role's unit test builds a Host, seeds it with the names, content and
// answers the role will meet, calls the role's Start with it, and checks
// what the role asked of the node:
//
//	h := sdktest.NewHost(t)
//	root := h.AddDir(map[string]string{"index.html": "<h1>Hi</h1>"}, nil)
//	h.SetName(sdk.Resolution{Name: "site.avtr", Key: "k51…", Seq: 1, Root: root})
//	diags := role.Start(ctx, config, h)
//	sdktest.Eventually(t, 5*time.Second, "the root pinned", func() error { … h.Pins() … })
//
// Host is a fake for tests, not a node: it has no network, no signatures
// and no policies. What it does not hold is a NotFound error, as a node
// says it; streams (HandleProtocol, OpenStream) are Unimplemented.
package sdktest

import (
	"testing"
	"time"

	"github.com/avnode/avnode/sdk/internal/wait"
)

// Eventually calls check until it returns nil and fails the test, with
// check's last error, if that does not happen within the time given. It is
// the bounded wait for tests of work that runs in the background: no sleep
// guesses how long the work takes.
func Eventually(t testing.TB, within time.Duration, what string, check func() error) {
	t.Helper()
	wait.Eventually(t, within, what, check)
}
