package storetest

import (
	"errors"
	"time"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/store"
)

// testPrograms ensures programs round-trip, list newest first, and keep
// their creation time when replaced.
func testPrograms(e *env) {
	t, ctx, st := e.t, e.ctx, e.st
	if _, err := st.Program(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Program(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := st.PutProgram(ctx, store.Program{}); err == nil {
		t.Fatal("PutProgram with empty id succeeded")
	}
	ids := []string{"p1", "p2", "p3"}
	for _, id := range ids {
		p, err := st.PutProgram(ctx, store.Program{ID: id, Name: "name-" + id, Hash: "h-" + id, Program: raw(t, map[string]any{"name": id})})
		if err != nil {
			t.Fatal(err)
		}
		if !p.CreatedAt.Equal(e.clock.Now()) {
			t.Fatalf("CreatedAt = %v, want %v", p.CreatedAt, e.clock.Now())
		}
		e.clock.Advance(time.Second)
	}
	tests := []struct {
		name  string
		limit int
		want  []string
	}{
		{name: "all", limit: 0, want: []string{"p3", "p2", "p1"}},
		{name: "limit", limit: 2, want: []string{"p3", "p2"}},
		{name: "limit beyond", limit: 10, want: []string{"p3", "p2", "p1"}},
	}
	for _, tc := range tests {
		got, err := st.Programs(ctx, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(tc.want) {
			t.Fatalf("%s: got %d programs, want %d", tc.name, len(got), len(tc.want))
		}
		for i := range got {
			if got[i].ID != tc.want[i] {
				t.Errorf("%s: [%d] = %s, want %s", tc.name, i, got[i].ID, tc.want[i])
			}
		}
	}
	p1, err := st.Program(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}
	if p1.Name != "name-p1" || p1.Hash != "h-p1" || string(p1.Program) != `{"name":"p1"}` {
		t.Fatalf("Program(p1) = %+v", p1)
	}
	// Replacing keeps created_at, so the listing order does not change.
	if _, err := st.PutProgram(ctx, store.Program{ID: "p1", Name: "renamed", Program: raw(t, map[string]any{})}); err != nil {
		t.Fatal(err)
	}
	got, err := st.Program(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "renamed" || !got.CreatedAt.Equal(p1.CreatedAt) {
		t.Fatalf("replaced program = %+v, want name renamed and created_at %v", got, p1.CreatedAt)
	}
	list, err := st.Programs(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[2].ID != "p1" {
		t.Fatalf("after replace, list = %v", list)
	}
}

// testDeleteProgram ensures deleting a program removes its runs,
// steps and idempotency keys, and never its envelopes.
func testDeleteProgram(e *env) {
	t, ctx, st := e.t, e.ctx, e.st
	if err := st.DeleteProgram(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeleteProgram(unknown) = %v, want ErrNotFound", err)
	}
	for _, id := range []string{"keep", "gone"} {
		if _, err := st.PutProgram(ctx, store.Program{ID: id, Name: id, Program: raw(t, map[string]any{})}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.ClaimIdempotencyKey(ctx, "key-"+id, "req", "exec-"+id, 0); err != nil {
			t.Fatal(err)
		}
		ex := store.Run{ID: "exec-" + id, ProgramID: id, Status: kernel.StatusRunning, IdempotencyKey: "key-" + id}
		for i := range 3 {
			if _, err := st.CommitStep(ctx, store.StepCommit{Run: ex, Index: i, Step: raw(t, i), Envelope: &store.Envelope{StepID: "s"}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := st.DeleteProgram(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		err  error
	}{
		{name: "program", err: func() error { _, err := st.Program(ctx, "gone"); return err }()},
		{name: "run", err: func() error { _, err := st.Run(ctx, "exec-gone"); return err }()},
		{name: "idempotency key", err: func() error { _, err := st.IdempotencyKey(ctx, "key-gone"); return err }()},
	}
	for _, tc := range tests {
		if !errors.Is(tc.err, store.ErrNotFound) {
			t.Errorf("%s after delete: %v, want ErrNotFound", tc.name, tc.err)
		}
	}
	if steps, err := st.Steps(ctx, "exec-gone", 0, 0); err != nil || len(steps) != 0 {
		t.Errorf("steps after delete = %d, %v; want none", len(steps), err)
	}
	// The step envelopes stay; one more records the deletion.
	if envs, err := st.Envelopes(ctx, "exec-gone"); err != nil || len(envs) != 4 || envs[3].Kind != store.EnvelopeKindDelete {
		t.Errorf("envelopes after delete = %+v, %v; want the 3 steps' (never deleted) and a deletion", envs, err)
	}
	if page, err := st.Runs(ctx, store.RunFilter{}); err != nil || len(page.Runs) != 1 || page.Runs[0].ID != "exec-keep" {
		t.Errorf("runs after delete = %+v, %v; want only exec-keep", page.Runs, err)
	}
	if steps, err := st.Steps(ctx, "exec-keep", 0, 0); err != nil || len(steps) != 3 {
		t.Errorf("steps of the other program = %d, %v; want 3", len(steps), err)
	}
	if _, err := st.IdempotencyKey(ctx, "key-keep"); err != nil {
		t.Errorf("idempotency key of the other program: %v", err)
	}
}
