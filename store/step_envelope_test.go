package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/store"
)

// Ensure StepEnvelope finds each step's envelope as Envelopes lists it
// (the first step envelope with that index): in the usual order, with an
// execution envelope before the steps, with a step that left no envelope,
// and with a re-commitment after the run; and ErrNotFound for an index no
// envelope carries.
func TestStepEnvelope(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t, nil)
	commit := func(id string, i int, env bool) {
		t.Helper()
		sc := store.StepCommit{Run: store.Run{ID: id, Status: kernel.StatusRunning}, KeepRun: true, Index: i, Step: json.RawMessage(`{"i":1}`)}
		if env {
			sc.Envelope = &store.Envelope{StepID: "s"}
		}
		if _, err := db.CommitStep(ctx, sc); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"plain", "early", "gap", "dup"} {
		ex, err := db.PutRun(ctx, store.Run{ID: id, ProgramID: "p", Status: kernel.StatusRunning})
		if err != nil {
			t.Fatal(err)
		}
		if id == "early" {
			if _, err := db.PutRun(ctx, ex); err != nil { // an execution envelope first
				t.Fatal(err)
			}
		}
		for i := range 4 {
			commit(id, i, id != "gap" || i != 1)
		}
		if id == "dup" {
			if _, err := db.AppendEnvelope(ctx, store.Envelope{TraceID: id, StepIndex: 2, StepID: "again"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, id := range []string{"plain", "early", "gap", "dup"} {
		envs, err := db.Envelopes(ctx, id)
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
			got, err := db.StepEnvelope(ctx, id, i)
			switch {
			case want == nil && !errors.Is(err, store.ErrNotFound):
				t.Errorf("%s: StepEnvelope(%d) = %+v, %v; want ErrNotFound", id, i, got, err)
			case want != nil && (err != nil || !reflect.DeepEqual(got, *want)):
				t.Errorf("%s: StepEnvelope(%d) = %+v, %v; want %+v", id, i, got, err, *want)
			}
		}
	}
}
