// Package wait holds the bounded wait of the repository's tests, published
// as sdktest.Eventually. It lives apart so that package sdk's own tests can
// use it: sdktest imports sdk. It must not import sdk.
package wait

import (
	"testing"
	"time"
)

// Eventually checks after firstPoll, then at doubling intervals up to
// maxPoll: a condition that holds soon is seen soon, and a check that is
// costly (a CLI process, a DHT lookup) leaves the machine to the code
// under test while it waits.
const (
	firstPoll = 20 * time.Millisecond
	maxPoll   = 200 * time.Millisecond
)

// Eventually calls check until it returns nil and fails the test if that
// does not happen within the time given, with check's last error.
func Eventually(t testing.TB, within time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	poll := firstPoll
	for {
		err := check()
		if err == nil {
			return
		}
		if !time.Now().Before(deadline) {
			t.Fatalf("%s: not true after %s: %v", what, within, err)
			return
		}
		time.Sleep(poll)
		poll = min(2*poll, maxPoll)
	}
}
