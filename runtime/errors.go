package runtime

import (
	"errors"
	"fmt"
)

// Error codes a client sees in a tool error. They are stable strings; the
// original used "capability_denied" and "idempotency_key_conflict".
const (
	CodeInvalidProgram      = "invalid_program"
	CodeInvalidArgument     = "invalid_argument"
	CodeCapabilityDenied    = "capability_denied"
	CodeIdempotencyConflict = "idempotency_key_conflict"
	CodeNotFound            = "not_found"
	CodeNotSuspended        = "not_suspended"
	CodeNoModel             = "llm_not_configured"
	CodeUploadDisabled      = "tool_upload_disabled"
	CodeToolRejected        = "tool_rejected"
	CodeTombstoned          = "tombstoned"
	// CodeRecordUndecodable: a stored record of the run (its run
	// record, header, input or a step) cannot be decoded; the message
	// names the record.
	CodeRecordUndecodable = "record_undecodable"
	// CodeUnknownTool: a tool step names a tool that is not registered;
	// the run is refused before it starts, and Details lists the names
	// ("unknown_tools") and the closest registered ones ("suggestions").
	CodeUnknownTool = "unknown_tool"
)

// Error is a failure the caller can act on: a bad program, a denied tool, a
// conflicting idempotency key. The MCP server returns it as a tool error
// with its code, never as a protocol error.
type Error struct {
	Code    string
	Message string
	// Details carries structured data, e.g. the denied tools.
	Details map[string]any
	err     error
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }
func (e *Error) Unwrap() error { return e.err }

func newError(code string, err error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), err: err}
}

// AsError returns err as an *Error when it is one.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
