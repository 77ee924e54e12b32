package naming

import (
	"testing"
	"time"
)

func TestHealthOfAnOwnedName(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		o    OwnedName
		want string
	}{
		{OwnedName{Expires: now.Add(time.Hour)}, "pending"},
		{OwnedName{Expires: now.Add(time.Hour), Published: now.Add(-time.Minute)}, "ok"},
		{OwnedName{Expires: now.Add(time.Hour), Published: now.Add(-time.Hour), Failed: now.Add(-time.Minute), Err: "no peers"}, "failing"},
		// A failure, then a success: ok again.
		{OwnedName{Expires: now.Add(time.Hour), Published: now.Add(-time.Minute), Failed: now.Add(-time.Hour), Err: "no peers"}, "ok"},
		{OwnedName{Expires: now.Add(-time.Minute), Published: now.Add(-48 * time.Hour)}, "expired"},
	} {
		if got := healthOf(c.o, now); got != c.want {
			t.Errorf("%+v: %s, want %s", c.o, got, c.want)
		}
	}
}
