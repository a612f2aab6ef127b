package tools

import (
	"context"
	"sync"
)

// callState is what one call's host functions, output writers and memory
// allocator share. It travels in the context.
type callState struct {
	tool    *Tool
	traceID string
	state   []byte   // JSON of CallRequest.State, only with CapState
	argv    []string // this call's argv when a command templates it
	stdout  capWriter
	stderr  capWriter
	cancel  context.CancelFunc
	// dl, when set, is the call's deadline context, which fail cancels in
	// place of cancel; detach clears it as the call ends.
	dl  *deadlineCtx
	ctx callCtx // the call's context: carries this state
	// stop is the stop flag of the instance running the call, while it
	// is armed (armStop), and stopGen its generation.
	stop    *stopper
	stopGen uint64

	// argRefs are the vault refs that appear in the call's arguments: the
	// only ones nanovm.secret_get may resolve (secretAccess).
	argRefs map[string]bool

	mu       sync.Mutex
	secrets  map[string]string // resolved value -> ref, for scrubbing
	failure  error             // the first limit breached, if any
	memLimit uint64
	// memBytes is the instance's peak linear memory, set when the call
	// ends (CallResult.MemoryBytes).
	memBytes uint64
	// resolved is set once the guest resolved any secret: a pooled
	// instance is then discarded after the call, never reused.
	resolved bool
	// attempts are refused secret_get calls, for the call's log; kept
	// apart from stderr so that a guest cannot crowd them out.
	attempts []string
	dropped  int // attempts past maxAttempts
}

type callKey struct{}

// callCtx is a call's context with its state as the value for callKey. It
// lives inside callState, which saves the allocation of a WithValue
// context per call; it is never mutated once the call starts, as wazero
// may still read it from another goroutine briefly after the call.
type callCtx struct {
	context.Context
	st *callState
	// vals, when set, answers the keys it holds before Context does: a
	// fresh slot's memory allocator and import resolver, which would
	// otherwise take two WithValue contexts per call.
	vals context.Context
}

// Value implements context.Context.
func (c *callCtx) Value(key any) any {
	if _, ok := key.(callKey); ok {
		return c.st
	}
	if c.vals != nil {
		if v := c.vals.Value(key); v != nil {
			return v
		}
	}
	return c.Context.Value(key)
}

func stateFrom(ctx context.Context) *callState {
	s, _ := ctx.Value(callKey{}).(*callState)
	return s
}

// fail records the first fatal limit breach and stops the instance by
// cancelling the call's context (which sets the instance's stop flag). The
// breach is read from failure, not from the context's cause, so the
// context needs no cause of its own.
func (s *callState) fail(err error) {
	s.mu.Lock()
	if s.failure == nil {
		s.failure = err
	}
	dl, cancel := s.dl, s.cancel
	s.mu.Unlock()
	switch {
	case dl != nil:
		dl.cancel(context.Canceled)
	case cancel != nil:
		cancel()
	}
}

// detach forgets the call's deadline context as the call ends, before it
// may be reused by another call.
func (s *callState) detach() {
	s.mu.Lock()
	s.dl = nil
	s.mu.Unlock()
}

func (s *callState) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failure
}
