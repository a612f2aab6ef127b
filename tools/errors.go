package tools

import (
	"errors"
	"fmt"

	"github.com/nanovm/nano-vm-mcp/internal/toolrecord"
)

// Sentinel errors. Call errors wrap one of these with the tool's name and
// the specifics, e.g. `tool "loop": timed out after 100ms`; test with
// errors.Is.
var (
	// ErrNotFound is returned when a tool name, pinned version or module
	// hash is not registered. It is toolrecord.ErrNotFound, so either matches.
	ErrNotFound = toolrecord.ErrNotFound
	// ErrInvalidManifest is returned when a manifest fails strict decoding
	// or validation.
	ErrInvalidManifest = errors.New("invalid manifest")
	// ErrImportNotGranted is returned when a module imports a host function
	// outside the capabilities granted to its tool (gate A), or when
	// instantiation cannot link one (gate B).
	ErrImportNotGranted = errors.New("import not granted")
	// ErrCapabilityDenied is returned when gate C (the operator's policy)
	// refuses a tool or a capability it asks for.
	ErrCapabilityDenied = errors.New("capability denied")
	// ErrOperatorTool is returned (wrapped with ErrCapabilityDenied) when
	// an upload would replace a tool whose current version is bundled or
	// the operator's, and the policy does not allow uploads for that name.
	ErrOperatorTool = errors.New("tool belongs to the operator")
	// ErrInvalidArgs is returned when call arguments fail the tool's
	// input schema.
	ErrInvalidArgs = errors.New("invalid arguments")
	// ErrInvalidOutput is returned when a tool's stdout is not one JSON
	// value or fails its output schema.
	ErrInvalidOutput = errors.New("invalid output")
	// ErrToolFailed is returned when a tool reports {"error": "..."}.
	ErrToolFailed = errors.New("tool reported an error")
	// ErrTimeout is returned when a call runs past its wall-clock timeout;
	// the instance is killed.
	ErrTimeout = errors.New("timed out")
	// ErrMemoryLimit is returned when a guest tries to grow its memory past
	// the tool's ceiling; the instance is killed.
	ErrMemoryLimit = errors.New("memory limit exceeded")
	// ErrAboveCeiling is returned when a manifest asks for more than a
	// server-wide ceiling (Ceilings): the message names the field, its
	// value and the ceiling. It wraps ErrInvalidManifest, so either
	// matches.
	ErrAboveCeiling = fmt.Errorf("%w: above a server ceiling", ErrInvalidManifest)
	// ErrBudget is returned when a call's memory (its linear memory and
	// tables, at instantiation or when it grows) would take the memory of
	// all live instances past the server's budget
	// (Ceilings.MemoryBudgetMiB); the instance is killed and the call
	// fails at once rather than waiting for room. Retry later.
	ErrBudget = errors.New("server memory budget exhausted")
	// ErrOutputLimit is returned when a guest writes more than its stdout or
	// stderr cap; the instance is killed.
	ErrOutputLimit = errors.New("output limit exceeded")
	// ErrTrap is returned when a guest traps: unreachable, an out-of-bounds
	// access, a division by zero, a stack overflow.
	ErrTrap = errors.New("trapped")
	// ErrMountRefused is returned when a mount's host directory is,
	// contains or lies inside one of the server's own files
	// (HostOptions.ProtectedPaths), at registration or at resolve.
	ErrMountRefused = errors.New("mount refused")
	// ErrClosed is returned when the host has been closed.
	ErrClosed = errors.New("host closed")
)

// ExitError is returned when a guest exits with a non-zero code. Log holds
// the tail of what it wrote to stderr, which usually says why.
type ExitError struct {
	// Code is the guest's exit code.
	Code uint32
}

// Error implements error.
func (e *ExitError) Error() string { return fmt.Sprintf("exited with code %d", e.Code) }

// detailError carries a precise message while still matching its sentinel
// with errors.Is, so messages read "memory limit 1 MiB exceeded" rather
// than "memory limit exceeded: 1 MiB".
type detailError struct {
	kind error
	msg  string
}

func (e *detailError) Error() string { return e.msg }
func (e *detailError) Unwrap() error { return e.kind }

func detail(kind error, format string, args ...any) error {
	return &detailError{kind: kind, msg: fmt.Sprintf(format, args...)}
}
