package storetest

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/store"
)

// testFinishedRunSealed ensures a run's end seals its record: every
// envelope that commits to the run record says the status it holds
// (RunStatus), and a rewrite after a terminal one, even through the
// store's own PutRun (which appends an envelope committing to the new
// bytes), is reported by VerifyChain as the run record changed, naming the
// envelope that ended the run. Before, verify held the record to the
// latest envelope, so the re-seal verified.
func testFinishedRunSealed(e *env) {
	t, ctx, st := e.t, e.ctx, e.st
	ex, err := st.PutRun(ctx, store.Run{ID: "end", ProgramID: "p", Status: kernel.StatusRunning, PolicyHash: "pol"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := st.CommitStep(ctx, store.StepCommit{Run: ex, Index: 0, Step: raw(t, map[string]any{"step_id": "a"}), Envelope: &store.Envelope{StepID: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	ex.Status = kernel.StatusSuccess
	ex.Header = json.RawMessage(`{"status":"success","final_output":"captured"}`)
	last, err := st.CommitStep(ctx, store.StepCommit{Run: ex, Index: 1, Step: raw(t, map[string]any{"step_id": "b"}), Envelope: &store.Envelope{StepID: "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if first.RunStatus != string(kernel.StatusRunning) || last.RunStatus != string(kernel.StatusSuccess) {
		t.Fatalf("run statuses of the step envelopes = %q, %q; want running, success", first.RunStatus, last.RunStatus)
	}
	if rep, err := st.VerifyChain(ctx, "end"); err != nil || !rep.OK {
		t.Fatalf("VerifyChain of the finished run = %+v, %v; want OK", rep, err)
	}
	ex.Header = json.RawMessage(`{"status":"success","final_output":"refunded"}`)
	if _, err := st.PutRun(ctx, ex); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"end", ""} {
		rep, err := st.VerifyChain(ctx, id)
		if err != nil || rep.OK || rep.Broken != nil || len(rep.Records) != 1 {
			t.Fatalf("VerifyChain(%q) after the finished run's record was re-sealed = %+v, %v; want it reported", id, rep, err)
		}
		p := rep.Records[0]
		if p.TraceID != "end" || p.Record != store.RecordRun || p.Problem != store.ProblemRecordChanged || !strings.Contains(p.Reason, fmt.Sprintf("envelope seq %d sealed", last.Seq)) {
			t.Errorf("VerifyChain(%q) reported %s; want the run record of \"end\" changed after envelope seq %d", id, p, last.Seq)
		}
	}
}
