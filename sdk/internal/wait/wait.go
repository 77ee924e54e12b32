// Package wait holds the bounded wait of the repository's tests, published
// as sdktest.Eventually. It lives apart so that package sdk's own tests can
// use it: sdktest imports sdk. It must not import sdk.
package wait

import (
	"testing"
	"time"
)

// pollEvery is how often Eventually checks: often enough that a test does not
// wait long after its condition holds, rarely enough to leave the machine to
// the code under test.
const pollEvery = 20 * time.Millisecond

// Eventually calls check until it returns nil and fails the test if that
// does not happen within the time given, with check's last error.
func Eventually(t testing.TB, within time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if !time.Now().Before(deadline) {
			t.Fatalf("%s: not true after %s: %v", what, within, err)
			return
		}
		time.Sleep(pollEvery)
	}
}
