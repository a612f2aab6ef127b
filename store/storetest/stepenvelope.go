package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/store"
)

// StepEnveloper is a store that finds one step's envelope without the
// run's others (the viewer's step page). Every store here is one.
type StepEnveloper interface {
	StepEnvelope(ctx context.Context, traceID string, index int) (store.Envelope, error)
}

// testStepEnvelope: StepEnvelope finds each step's envelope as Envelopes
// lists it (the first step envelope with that index): in the usual order,
// with an execution envelope before the steps, with a step that left no
// envelope, and with a re-commitment after the run; and ErrNotFound for an
// index no envelope carries.
func testStepEnvelope(e *env) {
	t, ctx := e.t, e.ctx
	se, ok := e.st.(StepEnveloper)
	if !ok {
		t.Fatalf("%T has no StepEnvelope", e.st)
	}
	commit := func(id string, i int, withEnvelope bool) {
		t.Helper()
		sc := store.StepCommit{Run: store.Run{ID: id, Status: kernel.StatusRunning}, KeepRun: true, Index: i, Step: json.RawMessage(`{"i":1}`)}
		if withEnvelope {
			sc.Envelope = &store.Envelope{StepID: "s"}
		}
		if _, err := e.st.CommitStep(ctx, sc); err != nil {
			t.Fatal(err)
		}
	}
	ids := []string{"plain", "early", "gap", "dup"}
	for _, id := range ids {
		run, err := e.st.PutRun(ctx, store.Run{ID: id, ProgramID: "p", Status: kernel.StatusRunning})
		if err != nil {
			t.Fatal(err)
		}
		if id == "early" {
			if _, err := e.st.PutRun(ctx, run); err != nil { // an execution envelope first
				t.Fatal(err)
			}
		}
		for i := range 4 {
			commit(id, i, id != "gap" || i != 1)
		}
		if id == "dup" {
			if _, err := e.st.AppendEnvelope(ctx, store.Envelope{TraceID: id, StepIndex: 2, StepID: "again"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, id := range ids {
		envs, err := e.st.Envelopes(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			var want *store.Envelope
			for j := range envs {
				if envs[j].Kind == store.EnvelopeKindStep && envs[j].StepIndex == i {
					want = &envs[j]
					break
				}
			}
			got, err := se.StepEnvelope(ctx, id, i)
			switch {
			case want == nil && !errors.Is(err, store.ErrNotFound):
				t.Errorf("%s: StepEnvelope(%d) = %+v, %v; want ErrNotFound", id, i, got, err)
			case want != nil && (err != nil || !reflect.DeepEqual(got, *want)):
				t.Errorf("%s: StepEnvelope(%d) = %+v, %v; want %+v", id, i, got, err, *want)
			}
		}
	}
}
