package daemon

import (
	"errors"
	"fmt"
	"testing"

	"github.com/avnode/avnode/core/content"
	"github.com/avnode/avnode/core/exchange"
	"github.com/avnode/avnode/core/fault"
	"github.com/avnode/avnode/core/hosting"
	"github.com/avnode/avnode/core/keystore"
	"github.com/avnode/avnode/core/names"
	"github.com/avnode/avnode/core/naming"
)

// The handlers return the domain's errors as they are: each sentinel
// carries the kind the API and the plugin host report, and keeps its
// message and its identity for errors.Is.
func TestDomainErrorsCarryTheirKind(t *testing.T) {
	for _, tc := range []struct {
		err  error
		msg  string
		kind fault.Kind
	}{
		{naming.ErrNotFound, "not found", fault.NotFound},
		{naming.ErrRefused, "zone refused", fault.Refused},
		{keystore.ErrNotFound, "no such key", fault.NotFound},
		{content.ErrNotFound, "block not found", fault.NotFound},
		{content.ErrNoEntry, "no such entry", fault.NotFound},
		{content.ErrTooLarge, "content too large", fault.TooLarge},
		{names.ErrBadName, "invalid name", fault.Invalid},
		{names.ErrBadRecord, "invalid zone record", fault.Invalid},
		{names.ErrNameTaken, "name already taken", fault.Refused},
		{hosting.ErrBadTarget, "not a target", fault.Invalid},
		{exchange.ErrNoSource, "no source to fetch from (no host or provider found)", fault.Unavailable},
	} {
		wrapped := fmt.Errorf("claim einstein.avtr: %w", tc.err)
		if tc.err.Error() != tc.msg || fault.KindOf(wrapped) != tc.kind || !errors.Is(wrapped, tc.err) {
			t.Errorf("%q: kind %q, errors.Is %v; want message %q of kind %q",
				tc.err, fault.KindOf(wrapped), errors.Is(wrapped, tc.err), tc.msg, tc.kind)
		}
	}
}
