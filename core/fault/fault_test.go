package fault_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/avnode/avnode/core/fault"
)

var errBlockGone = fault.New(fault.NotFound, "block not found")

func TestKindOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want fault.Kind
	}{
		{"nil", nil, ""},
		{"plain error is internal", errors.New("disk on fire"), ""},
		{"sentinel", errBlockGone, fault.NotFound},
		{"sentinel wrapped with %w", fmt.Errorf("get x: %w", errBlockGone), fault.NotFound},
		{"Errorf", fault.Errorf(fault.Invalid, "--ttl %q: give a duration", "x"), fault.Invalid},
		{"Wrap", fault.Wrap(fault.Refused, io.EOF), fault.Refused},
		{"deadline", context.DeadlineExceeded, fault.Timeout},
		{"deadline wrapped", fmt.Errorf("routing get /pk/x: %w", context.DeadlineExceeded), fault.Timeout},
		{"a kind wins over the deadline it wraps", fault.Errorf(fault.Unavailable, "no source: %w", context.DeadlineExceeded), fault.Unavailable},
		{"outermost kind wins", fault.Errorf(fault.Refused, "claim: %w", errBlockGone), fault.Refused},
		{"cancelled is internal", context.Canceled, ""},
		{"joined", errors.Join(errors.New("a"), errBlockGone), fault.NotFound},
	} {
		if got := fault.KindOf(tc.err); got != tc.want {
			t.Errorf("%s: KindOf(%v) = %q, want %q", tc.name, tc.err, got, tc.want)
		}
	}
}

// A kind changes neither the message nor what errors.Is finds.
func TestKindKeepsMessageAndChain(t *testing.T) {
	err := fault.Errorf(fault.NotFound, "get %s: %w", "x.avtr", errBlockGone)
	if err.Error() != "get x.avtr: block not found" {
		t.Errorf("message %q", err.Error())
	}
	if !errors.Is(err, errBlockGone) {
		t.Error("errors.Is lost the wrapped sentinel")
	}
	wrapped := fault.Wrap(fault.Timeout, io.ErrUnexpectedEOF)
	if wrapped.Error() != io.ErrUnexpectedEOF.Error() || !errors.Is(wrapped, io.ErrUnexpectedEOF) {
		t.Errorf("Wrap: %q, is %v", wrapped, errors.Is(wrapped, io.ErrUnexpectedEOF))
	}
	if fault.Wrap(fault.NotFound, nil) != nil {
		t.Error("Wrap(nil) is not nil")
	}
}
