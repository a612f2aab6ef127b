package storetest

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/nanovm/nano-vm-mcp/store"
)

// testExecutionTrace ensures ExecutionTrace returns what Execution and
// Steps return, and no steps of another execution.
func testExecutionTrace(e *env) {
	t, ctx, st := e.t, e.ctx, e.st
	ex := store.Execution{
		ID: "e", ProgramID: "p", ProgramHash: "ph", ProgramName: "n", Status: store.StatusRunning, PolicyHash: "pol",
		IdempotencyKey: "k", Input: raw(t, map[string]any{"x": 1}), Program: raw(t, map[string]any{"steps": []any{}}),
		Header: raw(t, map[string]any{"status": "running"}),
	}
	if _, err := st.PutExecution(ctx, ex); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.ExecutionTrace(ctx, "e"); err != nil {
		t.Fatalf("trace without steps: %v", err)
	}
	e.clock.Advance(1)
	ex.Input, ex.Program = nil, nil // kept from the stored body
	ex.Status = "success"
	for i := range 12 {
		if _, err := st.CommitStep(ctx, store.StepCommit{Execution: ex, Index: i, Step: raw(t, map[string]any{"i": i})}); err != nil {
			t.Fatal(err)
		}
	}
	// Executions whose ids extend this one's, or sort just before it, must
	// not leak in.
	for _, id := range []string{"e2", "d", "e\x01"} {
		if _, err := st.CommitStep(ctx, store.StepCommit{Execution: store.Execution{ID: id}, Index: 0, Step: raw(t, 99)}); err != nil {
			t.Fatal(err)
		}
	}
	wantExec, err := st.Execution(ctx, "e")
	if err != nil {
		t.Fatal(err)
	}
	wantSteps, err := st.Steps(ctx, "e", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	gotExec, gotSteps, err := st.ExecutionTrace(ctx, "e")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotExec, wantExec) {
		t.Errorf("execution = %+v, want %+v", gotExec, wantExec)
	}
	if len(gotSteps) != 12 || !reflect.DeepEqual(gotSteps, wantSteps) {
		t.Errorf("steps = %v, want %v", gotSteps, wantSteps)
	}
	for i, s := range gotSteps {
		if s.Index != i || string(s.Data) != fmt.Sprintf(`{"i":%d}`, i) {
			t.Errorf("step %d = %d %s", i, s.Index, s.Data)
		}
	}
	if string(gotExec.Input) != `{"x":1}` || string(gotExec.Program) != `{"steps":[]}` || gotExec.Status != "success" {
		t.Errorf("execution body or status lost: %+v", gotExec)
	}
	// The caller owns what it got: changing it changes nothing stored.
	gotSteps[0].Data[1] = 'X'
	if again, _ := st.Steps(ctx, "e", 0, 1); len(again) != 1 || string(again[0].Data) != `{"i":0}` {
		t.Errorf("a returned step aliases the store: %v", again)
	}
	if _, _, err := st.ExecutionTrace(ctx, "unknown"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("trace of unknown execution: %v, want ErrNotFound", err)
	}
}
