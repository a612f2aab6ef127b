package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/store"
)

// testRuns ensures run records round-trip every field, keep
// created_at and bump updated_at on replacement.
func testRuns(e *env) {
	t, ctx, st := e.t, e.ctx, e.st
	if _, err := st.Run(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Run(unknown) = %v, want ErrNotFound", err)
	}
	bad := []struct {
		name string
		ex   store.Run
	}{
		{name: "empty id", ex: store.Run{}},
		{name: "nul in id", ex: store.Run{ID: "a\x00b"}},
		{name: "invalid input json", ex: store.Run{ID: "x", Input: []byte("{")}},
		{name: "invalid program json", ex: store.Run{ID: "x", Program: []byte("nope")}},
	}
	for _, tc := range bad {
		if _, err := st.PutRun(ctx, tc.ex); err == nil {
			t.Errorf("%s: PutRun succeeded", tc.name)
		}
	}
	want := store.Run{
		ID: "e1", ProgramID: "p1", ProgramHash: "ph", ProgramName: "prog", Status: kernel.StatusRunning,
		PolicyHash: "pol", IdempotencyKey: "k", Input: raw(e.t, map[string]any{"a": 1}),
		Program: raw(e.t, map[string]any{"name": "prog"}),
		Header:  raw(e.t, map[string]any{"trace_id": "e1"}),
	}
	created := e.clock.Now()
	if _, err := st.PutRun(ctx, want); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	want.Status = "success"
	want.Header = raw(e.t, map[string]any{"cursor": 3})
	out, err := st.PutRun(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.Run(ctx, "e1")
	if err != nil {
		t.Fatal(err)
	}
	if !got.CreatedAt.Equal(created) || !got.UpdatedAt.Equal(e.clock.Now()) || !out.UpdatedAt.Equal(got.UpdatedAt) {
		t.Errorf("times = created %v updated %v; want %v and %v", got.CreatedAt, got.UpdatedAt, created, e.clock.Now())
	}
	got.CreatedAt, got.UpdatedAt = time.Time{}, time.Time{}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Run = %+v\nwant %+v", got, want)
	}
}

// testRunPaging ensures listing filters by program and status, is
// newest first, and pages through everything exactly once.
func testRunPaging(e *env) {
	t, ctx, st := e.t, e.ctx, e.st
	const n = 25
	for i := range n {
		status := kernel.StatusSuccess
		if i%3 == 0 {
			status = kernel.StatusFailed
		}
		if _, err := st.PutRun(ctx, store.Run{ID: fmt.Sprintf("e%02d", i), ProgramID: fmt.Sprintf("p%d", i%2), Status: status}); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Second)
	}
	tests := []struct {
		name   string
		filter store.RunFilter
		want   func(i int) bool
	}{
		{name: "all", filter: store.RunFilter{Limit: 4}, want: func(int) bool { return true }},
		{name: "program", filter: store.RunFilter{ProgramID: "p1", Limit: 3}, want: func(i int) bool { return i%2 == 1 }},
		{name: "status", filter: store.RunFilter{Status: "failed", Limit: 2}, want: func(i int) bool { return i%3 == 0 }},
		{name: "program and status", filter: store.RunFilter{ProgramID: "p0", Status: "failed", Limit: 1}, want: func(i int) bool { return i%2 == 0 && i%3 == 0 }},
		{name: "unknown program", filter: store.RunFilter{ProgramID: "zz"}, want: func(int) bool { return false }},
		{name: "default limit", filter: store.RunFilter{}, want: func(int) bool { return true }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var want []string
			for i := n - 1; i >= 0; i-- {
				if tc.want(i) {
					want = append(want, fmt.Sprintf("e%02d", i))
				}
			}
			var got []string
			f := tc.filter
			for pages := 0; ; pages++ {
				if pages > n+1 {
					t.Fatal("paging does not end")
				}
				page, err := st.Runs(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				if f.Limit > 0 && len(page.Runs) > f.Limit {
					t.Fatalf("page of %d exceeds limit %d", len(page.Runs), f.Limit)
				}
				for _, ex := range page.Runs {
					got = append(got, ex.ID)
				}
				if page.NextCursor == "" {
					break
				}
				f.Cursor = page.NextCursor
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("got %v\nwant %v", got, want)
			}
		})
	}
	if _, err := st.Runs(ctx, store.RunFilter{Cursor: "!!"}); err == nil {
		t.Error("Runs with a malformed cursor succeeded")
	}
}

// testUnfinished ensures running and suspended runs are listed for
// recovery, oldest first, and leave the list when they finish.
func testUnfinished(e *env) {
	t, ctx, st := e.t, e.ctx, e.st
	for _, ex := range []store.Run{
		{ID: "a", Status: kernel.StatusRunning},
		{ID: "b", Status: "success"},
		{ID: "c", Status: kernel.StatusSuspended},
		{ID: "d", Status: kernel.StatusRunning},
	} {
		if _, err := st.PutRun(ctx, ex); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Second)
	}
	// d finishes through a step commit, a through a header update.
	if _, err := st.CommitStep(ctx, store.StepCommit{Run: store.Run{ID: "d", Status: "failed"}, Step: raw(t, "x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutRun(ctx, store.Run{ID: "a", Status: kernel.StatusSuspended}); err != nil {
		t.Fatal(err)
	}
	got, err := st.Unfinished(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, ex := range got {
		ids = append(ids, ex.ID+":"+string(ex.Status))
	}
	if want := "[a:suspended c:suspended]"; fmt.Sprint(ids) != want {
		t.Errorf("Unfinished = %v, want %s", ids, want)
	}
}

// testCommitStep ensures a step commit writes step, run and envelope
// together, and a second commit of the same index writes nothing.
func testCommitStep(e *env) {
	t, ctx, st := e.t, e.ctx, e.st
	ex := store.Run{ID: "e", Status: kernel.StatusRunning, Header: raw(t, map[string]any{"next": 1})}
	env, err := st.CommitStep(ctx, store.StepCommit{Run: ex, Index: 0, Step: raw(t, map[string]any{"step_id": "a"}),
		Envelope: &store.Envelope{StepID: "a", PolicyHash: "pol", StateHash: "st", Payload: raw(t, map[string]any{"b": 2, "a": 1})}})
	if err != nil {
		t.Fatal(err)
	}
	if env == nil || env.Seq != 1 || env.TraceID != "e" || env.Kind != store.EnvelopeKindStep || env.PrevHash != store.GenesisHash || string(env.Payload) != `{"a":1,"b":2}` {
		t.Fatalf("envelope = %+v", env)
	}
	none, err := st.CommitStep(ctx, store.StepCommit{Run: ex, Index: 1, Step: raw(t, map[string]any{"step_id": "b"})})
	if err != nil || none != nil {
		t.Fatalf("commit without envelope = %v, %v; want nil, nil", none, err)
	}
	dup := ex
	dup.Status = "tampered"
	_, err = st.CommitStep(ctx, store.StepCommit{Run: dup, Index: 0, Step: raw(t, "again"), Envelope: &store.Envelope{StepID: "a"}})
	if !errors.Is(err, store.ErrStepExists) {
		t.Fatalf("duplicate step = %v, want ErrStepExists", err)
	}
	got, err := st.Run(ctx, "e")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != kernel.StatusRunning {
		t.Errorf("failed commit changed the run: status %q", got.Status)
	}
	if envs, _ := st.Envelopes(ctx, "e"); len(envs) != 1 {
		t.Errorf("failed commit appended an envelope: %d envelopes", len(envs))
	}
	steps, err := st.Steps(ctx, "e", 0, 0)
	if err != nil || len(steps) != 2 || string(steps[0].Data) != `{"step_id":"a"}` {
		t.Errorf("steps = %+v, %v", steps, err)
	}
	bad := []struct {
		name string
		sc   store.StepCommit
	}{
		{name: "negative index", sc: store.StepCommit{Run: ex, Index: -1, Step: raw(t, 1)}},
		{name: "invalid step json", sc: store.StepCommit{Run: ex, Index: 5, Step: []byte("{")}},
		{name: "no trace id", sc: store.StepCommit{Index: 5, Step: raw(t, 1)}},
		{name: "envelope of another run", sc: store.StepCommit{Run: ex, Index: 5, Step: raw(t, 1), Envelope: &store.Envelope{TraceID: "other"}}},
		{name: "envelope of another step", sc: store.StepCommit{Run: ex, Index: 5, Step: raw(t, 1), Envelope: &store.Envelope{StepIndex: 4}}},
		{name: "envelope payload not json", sc: store.StepCommit{Run: ex, Index: 5, Step: raw(t, 1), Envelope: &store.Envelope{Payload: []byte("{")}}},
	}
	for _, tc := range bad {
		if _, err := st.CommitStep(ctx, tc.sc); err == nil {
			t.Errorf("%s: CommitStep succeeded", tc.name)
		}
	}
	if steps, _ := st.Steps(ctx, "e", 5, 0); len(steps) != 0 {
		t.Errorf("rejected commits wrote %d steps", len(steps))
	}
}

// testCommitStepRunLifecycle follows the runtime's pattern: start with
// PutRun, commit steps carrying the returned CreatedAt, keep the
// record untouched for steps that change nothing, and end with a commit
// that changes the status. The record, its CreatedAt and the unfinished
// index must follow.
func testCommitStepRunLifecycle(e *env) {
	t, ctx, st := e.t, e.ctx, e.st
	started, err := st.PutRun(ctx, store.Run{ID: "life", ProgramID: "p", Status: kernel.StatusRunning, Program: raw(t, "prog"), Input: raw(t, map[string]any{"x": 1})})
	if err != nil {
		t.Fatal(err)
	}
	ex := started
	ex.Program, ex.Input = nil, nil
	ex.Header = raw(t, map[string]any{"step": 0})
	if _, err := st.CommitStep(ctx, store.StepCommit{Run: ex, Index: 0, Step: raw(t, 0)}); err != nil {
		t.Fatal(err)
	}
	kept := ex
	kept.Header = raw(t, map[string]any{"step": 1})
	if _, err := st.CommitStep(ctx, store.StepCommit{Run: kept, KeepRun: true, Index: 1, Step: raw(t, 1), Envelope: &store.Envelope{StepID: "b"}}); err != nil {
		t.Fatal(err)
	}
	got, err := st.Run(ctx, "life")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Header) != `{"step":0}` || !got.CreatedAt.Equal(started.CreatedAt) || string(got.Program) != `"prog"` || string(got.Input) != `{"x":1}` {
		t.Fatalf("after a kept step: header %s created %v (want %v) program %s input %s", got.Header, got.CreatedAt, started.CreatedAt, got.Program, got.Input)
	}
	if !e.unfinished("life") {
		t.Fatal("a run still running is not listed as unfinished")
	}
	done := ex
	done.Status, done.Header = "success", raw(t, map[string]any{"step": 2})
	if _, err := st.CommitStep(ctx, store.StepCommit{Run: done, Index: 2, Step: raw(t, 2)}); err != nil {
		t.Fatal(err)
	}
	got, err = st.Run(ctx, "life")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != "success" || string(got.Header) != `{"step":2}` || !got.CreatedAt.Equal(started.CreatedAt) || string(got.Program) != `"prog"` {
		t.Fatalf("after the last step: %+v", got)
	}
	if e.unfinished("life") {
		t.Fatal("a finished run is still listed as unfinished")
	}
	page, err := st.Runs(ctx, store.RunFilter{ProgramID: "p"})
	if err != nil || len(page.Runs) != 1 || page.Runs[0].Status != "success" {
		t.Fatalf("runs of program p = %+v, %v", page.Runs, err)
	}
	// Back to suspended (a resumable wait) lists it again.
	susp := done
	susp.Status = kernel.StatusSuspended
	if _, err := st.CommitStep(ctx, store.StepCommit{Run: susp, Index: 3, Step: raw(t, 3)}); err != nil {
		t.Fatal(err)
	}
	if !e.unfinished("life") {
		t.Fatal("a suspended run is not listed as unfinished")
	}
	// A kept record must exist.
	if _, err := st.CommitStep(ctx, store.StepCommit{Run: store.Run{ID: "ghost"}, KeepRun: true, Index: 0, Step: raw(t, 0)}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("keeping a missing run = %v, want ErrNotFound", err)
	}
	if steps, _ := st.Steps(ctx, "ghost", 0, 0); len(steps) != 0 {
		t.Fatalf("a refused commit wrote %d steps", len(steps))
	}
}

// testStartCommitStepInOrder ensures commits started without waiting are
// applied in the order they were started, chaining their envelopes in
// that order, and that a step whose predecessor is missing is refused, so
// a failed commit is never followed by a later step of the same run.
func testStartCommitStepInOrder(e *env) {
	t, ctx, st := e.t, e.ctx, e.st
	const n = 40
	var pending []*store.PendingCommit
	for run := range 2 {
		ex := store.Run{ID: fmt.Sprint("pipe-", run), Status: kernel.StatusRunning}
		for i := range n {
			pending = append(pending, st.StartCommitStep(ctx, store.StepCommit{Run: ex, Index: i, Step: raw(t, i),
				Envelope: &store.Envelope{StepID: fmt.Sprint("s", i), Payload: raw(t, i)}}))
		}
	}
	var last uint64
	for i, p := range pending {
		env, err := p.Wait()
		if err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		if env.Seq != last+1 {
			t.Fatalf("commit %d got seq %d after %d: not applied in the order started", i, env.Seq, last)
		}
		last = env.Seq
	}
	for run := range 2 {
		steps, err := st.Steps(ctx, fmt.Sprint("pipe-", run), 0, 0)
		if err != nil || len(steps) != n {
			t.Fatalf("run %d: %d steps, %v; want %d", run, len(steps), err, n)
		}
	}

	gap := store.Run{ID: "gap", Status: kernel.StatusRunning}
	if _, err := st.CommitStep(ctx, store.StepCommit{Run: gap, Index: 0, Step: raw(t, 0)}); err != nil {
		t.Fatal(err)
	}
	// Index 1 fails (its envelope is refused), so 2 and 3, started
	// behind it, must fail too.
	bad := st.StartCommitStep(ctx, store.StepCommit{Run: gap, Index: 1, Step: raw(t, 1), Envelope: &store.Envelope{TraceID: "other"}})
	after := []*store.PendingCommit{
		st.StartCommitStep(ctx, store.StepCommit{Run: gap, Index: 2, Step: raw(t, 2)}),
		st.StartCommitStep(ctx, store.StepCommit{Run: gap, Index: 3, Step: raw(t, 3)}),
	}
	if _, err := bad.Wait(); err == nil {
		t.Fatal("a commit with another run's envelope succeeded")
	}
	for i, p := range after {
		if _, err := p.Wait(); !errors.Is(err, store.ErrStepGap) {
			t.Fatalf("step %d after a failed step: %v, want ErrStepGap", i+2, err)
		}
	}
	select {
	case <-bad.Done():
	default:
		t.Fatal("Done is open after Wait returned")
	}
	if steps, _ := st.Steps(ctx, "gap", 0, 0); len(steps) != 1 {
		t.Fatalf("%d steps stored, want only the first", len(steps))
	}
}

// testSteps ensures steps page by offset and limit in index order.
func testSteps(e *env) {
	t, ctx, st := e.t, e.ctx, e.st
	ex := store.Run{ID: "e", Status: kernel.StatusRunning}
	for i := range 12 {
		if _, err := st.CommitStep(ctx, store.StepCommit{Run: ex, Index: i, Step: raw(t, i)}); err != nil {
			t.Fatal(err)
		}
	}
	// Another run whose id extends this one's must not leak in.
	if _, err := st.CommitStep(ctx, store.StepCommit{Run: store.Run{ID: "e2"}, Index: 0, Step: raw(t, 99)}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		offset, limit int
		want          []int
	}{
		{name: "all", offset: 0, limit: 0, want: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
		{name: "first page", offset: 0, limit: 5, want: []int{0, 1, 2, 3, 4}},
		{name: "middle page", offset: 5, limit: 5, want: []int{5, 6, 7, 8, 9}},
		{name: "last page", offset: 10, limit: 5, want: []int{10, 11}},
		{name: "past the end", offset: 12, limit: 5, want: nil},
		{name: "negative offset", offset: -3, limit: 2, want: []int{0, 1}},
	}
	for _, tc := range tests {
		got, err := st.Steps(ctx, "e", tc.offset, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		var idx []int
		for _, s := range got {
			if string(s.Data) != fmt.Sprint(s.Index) {
				t.Errorf("%s: step %d holds %s", tc.name, s.Index, s.Data)
			}
			idx = append(idx, s.Index)
		}
		if fmt.Sprint(idx) != fmt.Sprint(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, idx, tc.want)
		}
	}
	if got, err := st.Steps(ctx, "unknown", 0, 0); err != nil || len(got) != 0 {
		t.Errorf("steps of unknown run = %v, %v", got, err)
	}
}
