package storetest

import (
	"encoding/json"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/store"
)

// testRecordCoverage ensures the envelopes commit to the records a trace
// shows, byte for byte, and that VerifyChain re-hashes them: the runtime's
// pattern (start, a first step carrying the input and program hashes, a
// kept step, a final step, a later rewrite of the record) verifies with
// every record checked; a record no envelope covers, or one whose hash
// the envelope does not hold, is reported by name.
func testRecordCoverage(e *env) {
	t, ctx, st := e.t, e.ctx, e.st
	// Whitespace and <&> survive: the store keeps input and program
	// verbatim, so their hashes are the hashes of what is stored.
	input := json.RawMessage("{ \"q\": \"<a&b>\" }")
	prog := json.RawMessage("{\n  \"name\": \"p\"\n}")
	ex, err := st.PutRun(ctx, store.Run{ID: "cov", ProgramID: "p", Status: kernel.StatusRunning, PolicyHash: "pol", Input: input, Program: prog})
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.Run(ctx, "cov")
	if err != nil || string(got.Input) != string(input) || string(got.Program) != string(prog) {
		t.Fatalf("Run = input %s program %s, %v; want them byte for byte as put", got.Input, got.Program, err)
	}
	if tr, _, err := st.RunTrace(ctx, "cov"); err != nil || string(tr.Input) != string(input) || string(tr.Program) != string(prog) {
		t.Fatalf("RunTrace = input %s program %s, %v; want them byte for byte as put", tr.Input, tr.Program, err)
	}
	if rep, err := st.VerifyChain(ctx, "cov"); err != nil || !rep.OK || len(rep.Notes) != 1 || rep.Notes[0].Problem != store.ProblemUncovered {
		t.Errorf("VerifyChain before the first step = %+v, %v; want OK with a not-covered-yet note", rep, err)
	}
	ex.Input, ex.Program = nil, nil
	steps := []json.RawMessage{
		json.RawMessage(`{"step_id":"a","status":"success", "output":"captured"}`),
		json.RawMessage(`{"step_id":"b","status":"skipped"}`),
		json.RawMessage(`{"step_id":"c","status":"failed","error":"boom"}`),
	}
	first, err := st.CommitStep(ctx, store.StepCommit{Run: ex, Index: 0, Step: steps[0], Envelope: &store.Envelope{
		StepID: "a", InputSHA256: store.RecordSHA256(input), ProgramSHA256: store.RecordSHA256(prog)}})
	if err != nil {
		t.Fatal(err)
	}
	if first.RecordSHA256 != store.RecordSHA256(steps[0]) || first.RunSHA256 == "" || first.InputSHA256 != store.RecordSHA256(input) {
		t.Errorf("first step envelope = %+v; want the record's hash, the run record's and the input's", first)
	}
	kept, err := st.CommitStep(ctx, store.StepCommit{Run: ex, KeepRun: true, Index: 1, Step: steps[1], Envelope: &store.Envelope{StepID: "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if kept.RecordSHA256 != store.RecordSHA256(steps[1]) || kept.RunSHA256 != "" {
		t.Errorf("kept step envelope = %+v; want the record's hash and no run hash", kept)
	}
	// The last step leaves the run running; PutRun records its end (a
	// budget, say). No writer commits to a run after its end (verify
	// reports it), so the end comes last.
	done := ex
	done.Status = kernel.StatusRunning
	if _, err := st.CommitStep(ctx, store.StepCommit{Run: done, Index: 2, Step: steps[2], Envelope: &store.Envelope{StepID: "c"}}); err != nil {
		t.Fatal(err)
	}
	stored, err := st.Steps(ctx, "cov", 0, 0)
	if err != nil || len(stored) != 3 {
		t.Fatalf("Steps = %d, %v", len(stored), err)
	}
	for i, s := range stored {
		if string(s.Data) != string(steps[i]) {
			t.Errorf("step %d stored as %s, want %s byte for byte", i, s.Data, steps[i])
		}
	}
	// A rewrite outside a step commit is sealed by an envelope of its own.
	done.Status = kernel.StatusBudgetExceeded
	if _, err := st.PutRun(ctx, done); err != nil {
		t.Fatal(err)
	}
	envs, err := st.Envelopes(ctx, "cov")
	if err != nil || len(envs) != 4 {
		t.Fatalf("Envelopes = %d, %v; want 3 steps and the rewrite", len(envs), err)
	}
	if last := envs[3]; last.Kind != store.EnvelopeKindRun || last.RunSHA256 == "" ||
		last.InputSHA256 != store.RecordSHA256(input) || last.ProgramSHA256 != store.RecordSHA256(prog) {
		t.Errorf("rewrite envelope = %+v; want kind run with the record's, input's and program's hashes", last)
	}
	for _, id := range []string{"cov", ""} {
		rep, err := st.VerifyChain(ctx, id)
		// 3 steps, the run record, its input and its program.
		if err != nil || !rep.OK || len(rep.Records) != 0 || rep.RecordsChecked != 6 {
			t.Errorf("VerifyChain(%q) = %+v, %v; want OK with 6 records checked", id, rep, err)
		}
	}

	// A step committed without an envelope is a record nothing covers.
	if _, err := st.PutRun(ctx, store.Run{ID: "bare", Status: kernel.StatusRunning}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CommitStep(ctx, store.StepCommit{Run: store.Run{ID: "bare", Status: kernel.StatusRunning}, KeepRun: true, Index: 0, Step: raw(t, 0)}); err != nil {
		t.Fatal(err)
	}
	// An envelope that commits to another input than the stored one.
	if _, err := st.PutRun(ctx, store.Run{ID: "other", Status: kernel.StatusRunning, Input: input}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CommitStep(ctx, store.StepCommit{Run: store.Run{ID: "other", Status: kernel.StatusRunning}, Index: 0, Step: raw(t, 0),
		Envelope: &store.Envelope{StepID: "a", InputSHA256: store.RecordSHA256([]byte(`{"q":"else"}`))}}); err != nil {
		t.Fatal(err)
	}
	// The bare run's record and step; the other run's input.
	want := map[[2]string]store.Problem{
		{"bare", store.RecordRun}:    store.ProblemRecordExtra,
		{"bare", store.RecordStep}:   store.ProblemRecordExtra,
		{"other", store.RecordInput}: store.ProblemRecordChanged,
	}
	rep, err := st.VerifyChain(ctx, "")
	if err != nil || rep.OK || rep.Broken != nil {
		t.Fatalf("VerifyChain = %+v, %v; want the chain intact and records reported", rep, err)
	}
	for _, p := range rep.Records {
		k := [2]string{p.TraceID, p.Record}
		if w, ok := want[k]; !ok || p.Problem != w || p.Reason == "" {
			t.Errorf("unexpected record problem %s", p)
		}
		delete(want, k)
	}
	for k, w := range want {
		t.Errorf("not reported: %s of %q (%s)", k[1], k[0], w)
	}
	for _, id := range []string{"bare", "other"} {
		if rep, err := st.VerifyChain(ctx, id); err != nil || rep.OK || len(rep.Records) == 0 || rep.Records[0].TraceID != id {
			t.Errorf("VerifyChain(%q) = %+v, %v; want its record reported", id, rep, err)
		}
	}
}
