package mcpserver

import (
	"errors"
	"fmt"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/store"
)

// codeDiskFull is the error code of a call that failed because the disk
// holding the database is full (store.ErrDiskFull). Nothing half-written
// is kept: a run stops before the step it could not commit and is left
// resumable.
const codeDiskFull = "disk_full"

// diskFullError is the client's error for err when the disk is full, or
// nil. res, when set, is the run that stopped.
func diskFullError(res *runtime.RunResult, err error) error {
	if !errors.Is(err, store.ErrDiskFull) {
		return nil
	}
	if res != nil && res.TraceID != "" {
		return &runtime.Error{
			Code: codeDiskFull,
			Message: fmt.Sprintf("disk full: the server's disk is full, so the run stopped after %d durable step(s); the step it was committing was not stored. The run is left resumable: once the operator frees space, call resume_program with trace_id %q and no payload (or repeat the request with the same idempotency_key) to continue it",
				res.Steps, res.TraceID),
			Details: map[string]any{"trace_id": res.TraceID, "steps": res.Steps},
		}
	}
	return &runtime.Error{
		Code:    codeDiskFull,
		Message: "disk full: the server's disk is full, so nothing of this call was stored; retry once the operator frees space",
	}
}
