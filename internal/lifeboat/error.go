package lifeboat

import (
	"errors"
	"fmt"
)

// Code classifies a user-facing error. The CLI maps codes to exit codes and
// the server (later) to HTTP statuses, each in one table.
type Code string

const (
	EInvalid     Code = "invalid"           // bad input: flags, arguments, files
	ENotFound    Code = "not_found"         // vault, point or path missing
	EExists      Code = "exists"            // something to be created is already there
	EAuth        Code = "auth"              // wrong passphrase or key; not signed in
	EForbidden   Code = "forbidden"         // signed in, but not allowed
	EUnavailable Code = "unavailable"       // storage or service unreachable
	ECorrupt     Code = "corrupt"           // integrity check failed
	EPartial     Code = "partial"           // done, but some items were skipped
	EInterrupted Code = "interrupted"       // cancelled by a signal
	ERateLimited Code = "rate_limited"      // too many attempts; try again later
	EApproval    Code = "approval_required" // waits for a second person's approval
	EInternal    Code = "internal"          // a bug or an unexpected failure
)

// Error is an error meant for a user: one line naming what and where.
type Error struct {
	Code    Code
	Message string
	Err     error // optional cause, for errors.Is/As; not shown
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error.
func Errorf(code Code, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Code: code, Message: err.Error(), Err: errors.Unwrap(err)}
}

// ErrorCode returns the code of the first *Error in err's chain, or EInternal.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}
