package names

import (
	"errors"

	"github.com/avnode/avnode/core/fault"
)

// Sentinel errors. Every error returned by this package wraps one of them, so
// callers can branch with errors.Is while users read the wrapped message that
// names the input and what to do. Those a caller can act on carry a
// fault.Kind, which the control API and the plugin host report.
var (
	// ErrBadName: the text is not a valid avnode name.
	ErrBadName error = fault.New(fault.Invalid, "invalid name")
	// ErrMalformed: bytes do not decode as the expected record, or a DHT key
	// is not of the expected form.
	ErrMalformed = errors.New("malformed record")
	// ErrTooLarge: encoded record exceeds MaxRecordSize.
	ErrTooLarge = errors.New("record too large")
	// ErrBadSignature: a signature does not verify.
	ErrBadSignature = errors.New("bad signature")
	// ErrUnknownKeyType: a key is of a type this version does not accept.
	ErrUnknownKeyType = errors.New("unknown key type")
	// ErrNameMismatch: the name inside a record is not the name in its key.
	ErrNameMismatch = errors.New("name mismatch")
	// ErrExpired: a zone's expiry has passed.
	ErrExpired = errors.New("record expired")
	// ErrFromFuture: a claim is dated further ahead than clock skew allows.
	ErrFromFuture = errors.New("record dated in the future")
	// ErrInsufficientWork: a claim's proof of work is missing or too easy.
	ErrInsufficientWork = errors.New("insufficient proof of work")
	// ErrBadRecord: a zone entry (ROOT, HOST, A, CNAME, TXT, SAT) is invalid.
	ErrBadRecord error = fault.New(fault.Invalid, "invalid zone record")
	// ErrWrongOwner: a zone is not signed by the key that owns the name.
	ErrWrongOwner = errors.New("wrong owner")
	// ErrRolledBack: a zone's sequence number is lower than one seen before.
	ErrRolledBack = errors.New("record rolled back")
	// ErrNameTaken: a claim or zone by another key arrived for a name already held.
	ErrNameTaken error = fault.New(fault.Refused, "name already taken")
	// ErrDisputed: the holders of a name answered with different owners and
	// none has more of them than every other.
	ErrDisputed = errors.New("owner disputed")
	// ErrBadRotation: a key rotation is malformed, out of order, loops back
	// to an old key or makes the chain longer than MaxRotations.
	ErrBadRotation = errors.New("bad key rotation")
	// ErrRotated: a record signed by a key the name rotated away from, or on
	// a branch of its key chain that lost to the one held.
	ErrRotated error = fault.New(fault.Refused, "key rotated away")
)
