package store_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/store"
)

// Ensure a first step that keeps the run record PutRunStored wrote has its
// envelope commit to those bytes and to the status they hold (not the one
// the commit's Run claims), leaves the record as it was, and verifies,
// also while the run is still running; and that a record rewritten in
// between is committed to as it is then.
func TestCommitStepKeepsStoredRunRecord(t *testing.T) {
	ctx := context.Background()
	for _, rewritten := range []bool{false, true} {
		db := openAt(t, filepath.Join(t.TempDir(), "kept.db"), nil)
		const id = "run-kept"
		input := json.RawMessage(`{"order_id":"o-1"}`)
		prog := json.RawMessage(`{"name":"p","steps":[{"id":"a","type":"tool","tool":"t"}]}`)
		run := store.Run{ID: id, ProgramName: "p", Status: kernel.StatusRunning, PolicyHash: "pol", Input: input, Program: prog,
			Header: json.RawMessage(`{"trace_id":"run-kept","status":"running","initial_state_hash":"h0"}`)}
		ex, stored, err := db.PutRunStored(ctx, run)
		if err != nil || len(stored.Bytes()) == 0 {
			t.Fatalf("put run: %v, %d bytes", err, len(stored.Bytes()))
		}
		want := stored.Bytes()
		if rewritten {
			run.Input, run.Program = nil, nil
			run.Header = json.RawMessage(`{"trace_id":"run-kept","status":"running","initial_state_hash":"h1"}`)
			_, again, err := db.PutRunStored(ctx, run)
			if err != nil {
				t.Fatal(err)
			}
			want = again.Bytes()
		}
		ex.Input, ex.Program = nil, nil
		claimed := ex
		claimed.Status = kernel.StatusSuccess // not what the record holds
		env, err := db.CommitStep(ctx, store.StepCommit{Run: claimed, KeepRun: true, RunRecord: stored, Index: 0,
			Step:     json.RawMessage(`{"index":0,"step_id":"a","status":"success"}`),
			Envelope: &store.Envelope{StepID: "a", InputSHA256: store.RecordSHA256(input), ProgramSHA256: store.RecordSHA256(prog)}})
		if err != nil {
			t.Fatal(err)
		}
		if env.RunSHA256 != store.RecordSHA256(want) || env.RunStatus != string(kernel.StatusRunning) {
			t.Fatalf("rewritten=%v: envelope commits to run %s (%s), want %s (running)", rewritten, env.RunSHA256, env.RunStatus, store.RecordSHA256(want))
		}
		got, err := db.Run(ctx, id)
		if err != nil || got.Status != kernel.StatusRunning || !got.UpdatedAt.Equal(ex.UpdatedAt) && !rewritten {
			t.Fatalf("rewritten=%v: record after the kept step: %+v %v", rewritten, got, err)
		}
		rep, err := db.VerifyChain(ctx, "")
		if err != nil || !rep.OK || len(rep.Records) != 0 || len(rep.Notes) != 0 || rep.RecordsChecked == 0 {
			t.Fatalf("rewritten=%v: verify a run still running: %+v %v", rewritten, rep, err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// Ensure the store keeps its own copy of a draft's payload: a caller that
// reuses the bytes once StartCommitStep returns (the runtime's persister
// encodes every payload of a run into one buffer) changes neither the
// envelope the commit returns nor the one stored.
func TestStartCommitStepCopiesPayload(t *testing.T) {
	ctx := context.Background()
	db := openAt(t, filepath.Join(t.TempDir(), "payload.db"), nil)
	defer db.Close()
	ex, rec, err := db.PutRunStored(ctx, store.Run{ID: "run-p", Status: kernel.StatusRunning})
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte(`{"output":"first"}`)
	pc := db.StartCommitStep(ctx, store.StepCommit{Run: ex, KeepRun: true, RunRecord: rec, Index: 0, Step: json.RawMessage(`{"i":0}`),
		Envelope: &store.Envelope{StepID: "a", Payload: payload}})
	copy(payload, `{"output":"xxxxx"}`)
	env, err := pc.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if string(env.Payload) != `{"output":"first"}` {
		t.Fatalf("returned envelope's payload %s", env.Payload)
	}
	stored, err := db.Envelope(ctx, env.Seq)
	if err != nil || string(stored.Payload) != `{"output":"first"}` {
		t.Fatalf("stored envelope's payload %s %v", stored.Payload, err)
	}
	if rep, err := db.VerifyChain(ctx, ""); err != nil || !rep.OK {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}
