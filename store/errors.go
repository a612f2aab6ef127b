package store

import (
	"errors"

	"github.com/nanovm/nano-vm-mcp/internal/toolrecord"
)

var (
	// ErrNotFound is returned when a program, run, step, envelope,
	// idempotency key, secret, tool or module does not exist (or an
	// idempotency key has expired). It is toolrecord.ErrNotFound, so the
	// sandbox matches it without importing store.
	ErrNotFound = toolrecord.ErrNotFound

	// ErrLocked is returned by Open when another process (or another Open in
	// this process) holds the database file's lock beyond Options.LockTimeout.
	ErrLocked = errors.New("database file is locked by another process")

	// ErrSchemaTooNew is returned by Open when the file was written by a
	// newer release whose schema this build does not understand. The file is
	// left untouched.
	ErrSchemaTooNew = errors.New("database schema is newer than this build supports")

	// ErrCorrupt is returned when the file is not a bbolt database, is
	// truncated, or holds pages or records this build cannot decode.
	ErrCorrupt = errors.New("database file is corrupt")

	// ErrStepExists is returned by CommitStep when the run already has a
	// step at that index: steps are written once and never overwritten.
	ErrStepExists = errors.New("step already exists")
	// ErrStepGap is returned by CommitStep when the step before the one
	// being committed is missing: an earlier commit of the run failed.
	ErrStepGap = errors.New("previous step is missing")

	// ErrIdempotencyConflict is returned by ClaimIdempotencyKey when a live
	// key was first used with a different request (program or input).
	ErrIdempotencyConflict = errors.New("idempotency_key_conflict")

	// ErrTombstoned is returned when a secret has been erased: its value is
	// gone and its id cannot be reused.
	ErrTombstoned = errors.New("tombstoned")

	// ErrInvalidRef is returned when a secret reference is not of the form
	// vault://secret/<id> or the id contains characters outside
	// [A-Za-z0-9._-].
	ErrInvalidRef = errors.New("invalid secret reference")

	// ErrInvalidID is returned when an id or an idempotency key breaks its
	// length or character limits (see CheckID, CheckIdempotencyKey).
	ErrInvalidID = errors.New("invalid id")

	// ErrClosed is returned when the store is used after Close.
	ErrClosed = errors.New("store is closed")

	// ErrInvalidCursor is returned by Runs for a cursor that no listing
	// issued (not base64url, or too short): the caller's to fix, by
	// starting again without one.
	ErrInvalidCursor = errors.New("invalid cursor")
)
