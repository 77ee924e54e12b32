// Package fault is the node's one error taxonomy: every error a user or a
// plugin can act on carries a Kind (not found, invalid, refused, …), set
// where the error is made, and each wire maps Kind once: core/api to HTTP
// statuses and the CLI's exit codes, plugins/ to gRPC codes.
//
// It is a leaf: it imports no package of this module, so every layer can
// use it. It must not grow wire-specific mappings of its own.
package fault

import (
	"context"
	"errors"
	"fmt"
)

// Kind says what a caller can do about an error. The empty Kind is an
// internal error: nothing the caller did or can change.
type Kind string

const (
	// NotFound: no such name, record, key, block or entry.
	NotFound Kind = "not_found"
	// Invalid: an argument that can never be right as given (a malformed
	// name, target or record value); the message says what is expected.
	Invalid Kind = "invalid"
	// Refused: a well-formed request the node will not carry out as things
	// stand (a name held by another key, a record a validator or policy
	// rejects).
	Refused Kind = "refused"
	// TooLarge: content or input over a limit the node enforces.
	TooLarge Kind = "too_large"
	// Unavailable: nothing can serve it now (no source, no peer); a retry
	// later may succeed.
	Unavailable Kind = "unavailable"
	// Timeout: the work did not finish within its deadline.
	Timeout Kind = "timeout"
	// Permission: the caller may not do this.
	Permission Kind = "permission"
)

// Error is an error with a Kind. It may wrap another error, which errors.Is
// and errors.As see.
type Error struct {
	kind Kind
	msg  string
	err  error
}

// New makes an error of kind with message msg, like errors.New.
func New(kind Kind, msg string) *Error { return &Error{kind: kind, msg: msg} }

// Errorf makes an error of kind like fmt.Errorf: a %w in format is wrapped.
func Errorf(kind Kind, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &Error{kind: kind, msg: err.Error(), err: err}
}

// Wrap gives err a kind, keeping its message and what it wraps. A nil err
// stays nil.
func Wrap(kind Kind, err error) error {
	if err == nil {
		return nil
	}
	return &Error{kind: kind, msg: err.Error(), err: err}
}

func (e *Error) Error() string { return e.msg }
func (e *Error) Kind() Kind    { return e.kind }
func (e *Error) Unwrap() error { return e.err }

// KindOf classifies err: the kind of the first error in its chain that has
// one; Timeout for a context deadline; otherwise "" (internal).
func KindOf(err error) Kind {
	if err == nil {
		return ""
	}
	var k interface{ Kind() Kind }
	if errors.As(err, &k) {
		return k.Kind()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Timeout
	}
	return ""
}
