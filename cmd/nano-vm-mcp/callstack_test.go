package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// Ensure 16 concurrent calls (four runs of four parallel steps) of an
// uploaded module that recurses without end, against the real binary with two calls in flight allowed, each end
// in a failed run naming the stack overflow, the server then still runs a
// good call, and its peak resident memory grew by about two calls' call
// stacks, not sixteen: wazero grows a call's stack in Go memory, outside
// the memory budget, up to about 161 MiB (.rationale/sandbox.md "How much
// call stack can one call hold, and what bounds it?"). Before the bound,
// the same runs grew it by about 2 GiB.
func TestRecursionBombsBoundedByCallsInFlight(t *testing.T) {
	const (
		calls    = 16
		inFlight = 2
		// Two calls' stacks (about 122 MiB each held at their end), the
		// garbage of the ones before them until the collector runs, and
		// the Go heap of 16 runs in flight.
		maxGrowthMiB = 1024
	)
	// Go's default collector, without the binary's soft memory limit (which
	// would collect the stacks of calls still running sooner and blur
	// what the bound holds).
	t.Setenv("GOGC", "100")
	t.Setenv("GOMEMLIMIT", "off")
	p, good, pid, before := bombServer(t, "recurse", string(allModules(t)["recurse"].Manifest), "--max-calls-in-flight", "2")

	// Each run fans out to four recursions at once; four runs at once.
	var branches []string
	for i := range 4 {
		branches = append(branches, fmt.Sprintf(`{"id":"r%d","type":"tool","tool":"recurse"}`, i))
	}
	bomb := map[string]any{"program": `{"steps":[{"id":"fan","type":"parallel","parallel_steps":[` + strings.Join(branches, ",") + `]}]}`}
	var wg sync.WaitGroup
	outs := make([]map[string]any, calls/4)
	errs := make([]error, calls/4)
	for i := range calls / 4 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			outs[i], errs[i] = p.callTool(ctx, "run_program", bomb)
		})
	}
	wg.Wait()
	for i := range calls / 4 {
		if errs[i] != nil {
			t.Fatalf("call %d: %v\nstderr:\n%s", i, errs[i], p.stderr)
		}
		if msg, _ := outs[i]["error"].(string); outs[i]["status"] != "failed" || !strings.Contains(msg, "stack overflow") {
			t.Errorf("call %d: %v, want a run failed by a stack overflow", i, outs[i])
		}
	}
	if out := p.mustCall(t, "run_program", good); out["status"] != "success" {
		t.Fatalf("good run after the recursions: %v", out)
	}
	grew := (int64(procStatusKiB(t, pid, "VmHWM")) - int64(before)) >> 10
	t.Logf("%d endless recursions, %d calls in flight: VmHWM grew %d MiB (allowed %d)", calls, inFlight, grew, maxGrowthMiB)
	if grew > maxGrowthMiB {
		t.Fatalf("peak RSS grew by %d MiB, more than %d MiB: the calls in flight do not bound the call stacks", grew, maxGrowthMiB)
	}
}

// Ensure uploaded modules that never loop but call themselves in a tree
// (2^40 calls, 40 deep: calltree) are stopped at their 300 ms timeout by
// the real binary, two at once (as many as it has cores here), and the
// server then still runs a good program. Before the entry check at every
// function that calls, each ran for hours, and the process stopped dead
// at its next garbage collection, which waits for every goroutine.
func TestCallTreeBombsStoppedAtTimeout(t *testing.T) {
	p, good, _, _ := bombServer(t, "calltree", string(allModules(t)["calltree"].Manifest))
	bomb := map[string]any{"program": `{"steps":[{"id":"a","type":"tool","tool":"calltree"}]}`}
	var wg sync.WaitGroup
	outs := make([]map[string]any, 2)
	errs := make([]error, 2)
	for i := range outs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			outs[i], errs[i] = p.callTool(ctx, "run_program", bomb)
		})
	}
	wg.Wait()
	for i := range outs {
		if errs[i] != nil {
			t.Fatalf("call tree %d: %v\nstderr:\n%s", i, errs[i], p.stderr)
		}
		if msg, _ := outs[i]["error"].(string); outs[i]["status"] != "failed" || !strings.Contains(msg, "timed out after 300ms") {
			t.Fatalf("call tree %d: %v; want a run failed at the tool's 300 ms timeout", i, outs[i])
		}
	}
	if out := p.mustCall(t, "run_program", good); out["status"] != "success" {
		t.Fatalf("good run after the call trees: %v\nstderr:\n%s", out, p.stderr)
	}
}
