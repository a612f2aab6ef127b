package storetest

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/store"
)

// testRunTrace ensures RunTrace returns what Run and
// Steps return, and no steps of another run.
func testRunTrace(e *env) {
	t, ctx, st := e.t, e.ctx, e.st
	ex := store.Run{
		ID: "e", ProgramID: "p", ProgramHash: "ph", ProgramName: "n", Status: kernel.StatusRunning, PolicyHash: "pol",
		IdempotencyKey: "k", Input: raw(t, map[string]any{"x": 1}), Program: raw(t, map[string]any{"steps": []any{}}),
		Header: raw(t, map[string]any{"status": "running"}),
	}
	if _, err := st.PutRun(ctx, ex); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.RunTrace(ctx, "e"); err != nil {
		t.Fatalf("trace without steps: %v", err)
	}
	e.clock.Advance(1)
	ex.Input, ex.Program = nil, nil // kept from the stored body
	ex.Status = "success"
	for i := range 12 {
		if _, err := st.CommitStep(ctx, store.StepCommit{Run: ex, Index: i, Step: raw(t, map[string]any{"i": i})}); err != nil {
			t.Fatal(err)
		}
	}
	// Runs whose ids extend this one's, or sort just before it, must
	// not leak in.
	for _, id := range []string{"e2", "d", "e\x01"} {
		if _, err := st.CommitStep(ctx, store.StepCommit{Run: store.Run{ID: id}, Index: 0, Step: raw(t, 99)}); err != nil {
			t.Fatal(err)
		}
	}
	wantExec, err := st.Run(ctx, "e")
	if err != nil {
		t.Fatal(err)
	}
	wantSteps, err := st.Steps(ctx, "e", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	gotExec, gotSteps, err := st.RunTrace(ctx, "e")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotExec, wantExec) {
		t.Errorf("run = %+v, want %+v", gotExec, wantExec)
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
		t.Errorf("run body or status lost: %+v", gotExec)
	}
	// The caller owns what it got: changing it changes nothing stored.
	gotSteps[0].Data[1] = 'X'
	if again, _ := st.Steps(ctx, "e", 0, 1); len(again) != 1 || string(again[0].Data) != `{"i":0}` {
		t.Errorf("a returned step aliases the store: %v", again)
	}
	if _, _, err := st.RunTrace(ctx, "unknown"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("trace of unknown run: %v, want ErrNotFound", err)
	}
}
