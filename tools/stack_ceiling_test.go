package tools

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
)

// Ensure what one call of a hostile module can make the host hold in
// call stack is what .rationale/sandbox.md says ("How much call stack can
// one call hold?"): a recursion without end under memory_mib 1 fails with
// a stack overflow (not a crash), having allocated at most 192 MiB of Go
// heap in doubling stacks (the last, about 84 MiB, held to the call's
// end), none of it charged to the memory budget or the call's memory
// ceiling. If wazero raises its constant, this fails and the entry must be
// measured again.
func TestCallStackCeiling(t *testing.T) {
	r := newRegistry(t)
	m := manifestFor("recurse")
	m.Limits.MemoryMiB = 1
	if err := registerBytes(t, r, m, deepCallModule(1<<30)); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := r.Call(context.Background(), "recurse", CallRequest{})
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "stack overflow") || errors.Is(err, ErrBudget) {
		t.Fatalf("an endless recursion: %v; want a stack overflow, not a budget refusal", err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("one endless recursion allocated %d MiB of Go heap (%d MiB in use at its end, %d before)",
		alloc>>20, after.HeapInuse>>20, before.HeapInuse>>20)
	if alloc > 192<<20 {
		t.Fatalf("one call allocated %d MiB of stack; the documented bound is 192 MiB", alloc>>20)
	}
}
