package kernel_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/nanovm/nano-vm-mcp/internal/canonical"
	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/kernel/kerneltest"
)

// outputObserver checks every StepFinished event's OutputJSON against the
// canonical JSON of the record's output, and notes which records had one.
type outputObserver struct {
	t    *testing.T
	with []string // step ids whose event carried OutputJSON
}

func (o *outputObserver) StepStarted(context.Context, kernel.StepEvent) error { return nil }

func (o *outputObserver) StepFinished(_ context.Context, ev kernel.StepEvent) error {
	rec := ev.Record
	stored := rec.Kind == kernel.KindResume || rec.Status == kernel.StepSuccess || rec.Status == kernel.StepSkipped
	if stored != (ev.OutputJSON != nil) {
		o.t.Errorf("step %q (%s, %s): OutputJSON %q, want it set: %v", rec.StepID, rec.Kind, rec.Status, ev.OutputJSON, stored)
	}
	if ev.OutputJSON != nil {
		want, err := canonical.Marshal(rec.Output)
		if err != nil {
			o.t.Fatal(err)
		}
		if !bytes.Equal(ev.OutputJSON, want) {
			o.t.Errorf("step %q: OutputJSON %s, canonical output %s", rec.StepID, ev.OutputJSON, want)
		}
		o.with = append(o.with, rec.StepID)
	}
	return nil
}

// TestStepEventOutputJSON checks that StepFinished carries the canonical
// JSON of exactly the outputs the state stored: successful, skipped and
// parallel steps, a condition's result, a step run again in a loop with
// the same output, a resume; not a failed or suspending step.
func TestStepEventOutputJSON(t *testing.T) {
	tools := &kerneltest.Tools{Funcs: map[string]kerneltest.ToolFunc{
		"amount": kerneltest.Const(map[string]any{"amount": 12.5, "<b>": []any{"é", true, nil}}),
		"fail":   kerneltest.FailTimes(100, nil),
		"wait":   kerneltest.Const(kernel.Pending),
	}}
	obs := &outputObserver{t: t}
	m := kernel.NewMachine(&kernel.Options{Tools: tools, LLM: &kerneltest.LLM{Answers: []string{"no", "yes"}}, Clock: kerneltest.NewManualClock(), IDs: &kerneltest.SeqIDs{}, Observer: obs})
	p := mustLoad(t, `{"name":"p","max_steps":30,"steps":[
 {"id":"a","type":"tool","tool":"amount","output_key":"x"},
 {"id":"skip","type":"tool","tool":"fail","on_error":"skip"},
 {"id":"par","type":"parallel","on_error":"skip","parallel_steps":[
   {"id":"p1","type":"tool","tool":"amount"},{"id":"p2","type":"tool","tool":"fail"}]},
 {"id":"ask","type":"llm","prompt":"ok? $x","output_key":"ok"},
 {"id":"c","type":"condition","condition":"$ok == 'yes'","then":"w","otherwise":"a"},
 {"id":"w","type":"tool","tool":"wait"},
 {"id":"end","type":"tool","tool":"fail","is_terminal":true}]}`)
	tr, err := m.Start(t.Context(), p, map[string]any{"in": 1.0}, "")
	if err != nil {
		t.Fatal(err)
	}
	if tr.Status != kernel.StatusSuspended {
		t.Fatalf("status %s (%s), want suspended", tr.Status, tr.Error)
	}
	tr, err = m.Resume(t.Context(), p, map[string]any{"in": 1.0}, tr, kernel.ResumeEvent{Payload: map[string]any{"k": "v"}})
	if err != nil && !errors.Is(err, kernel.ErrFinished) {
		t.Fatal(err)
	}
	if tr.Status != kernel.StatusFailed {
		t.Fatalf("status %s, want failed (the last step fails)", tr.Status)
	}
	want := []string{"a", "skip", "par", "ask", "c", "a", "skip", "par", "ask", "c", "w"}
	if len(obs.with) != len(want) {
		t.Fatalf("OutputJSON on %v, want %v", obs.with, want)
	}
	for i := range want {
		if obs.with[i] != want[i] {
			t.Fatalf("OutputJSON on %v, want %v", obs.with, want)
		}
	}
}
