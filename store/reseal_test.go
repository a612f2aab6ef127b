package store_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/store"
	bolt "go.etcd.io/bbolt"
)

// Ensure a finished run's record changed and re-sealed by an appended
// envelope is reported by plain verification (whole chain and the run
// alone), naming the run record and both envelopes: the record was sealed
// when the run ended, and no writer commits to it after that. Before,
// verify held the record to the latest envelope committing to it, so the
// appended one made the chain and the records check out.
func TestFinishedRunResealed(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		reseal func(t *testing.T, db *store.DB, path, id string) *store.DB
	}{
		{"PutRun through the store", func(t *testing.T, db *store.DB, _, id string) *store.DB {
			// The store's own code rewrites the record and appends an
			// execution envelope sealing it.
			ex, err := db.Run(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			ex.Status = kernel.StatusSuccess
			ex.Header = json.RawMessage(`{"status":"success","final_output":"refunded"}`)
			ex.Input, ex.Program = nil, nil
			if _, err := db.PutRun(ctx, ex); err != nil {
				t.Fatal(err)
			}
			return db
		}},
		{"bytes changed, envelope appended", func(t *testing.T, db *store.DB, path, id string) *store.DB {
			db.Close()
			var rec []byte
			db = tamperedDB(t, path, func(tx *bolt.Tx) error {
				if err := replaceIn(tx, "executions", []byte(id), "receipt down", "receipt fine"); err != nil {
					return err
				}
				rec = append([]byte(nil), tx.Bucket([]byte("executions")).Get([]byte(id))...)
				return nil
			})
			if _, err := db.AppendEnvelope(ctx, store.Envelope{Kind: store.EnvelopeKindRun, TraceID: id,
				RunSHA256: store.RecordSHA256(rec), Payload: json.RawMessage(`{"status":"failed"}`)}); err != nil {
				t.Fatal(err)
			}
			return db
		}},
		{"a step appended after the end", func(t *testing.T, db *store.DB, _, id string) *store.DB {
			ex, err := db.Run(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			ex.Input, ex.Program = nil, nil
			ex.Status = kernel.StatusSuccess
			ex.Header = json.RawMessage(`{"status":"success"}`)
			if _, err := db.CommitStep(ctx, store.StepCommit{Run: ex, Index: 3, Step: json.RawMessage(`{"step_id":"d","status":"success"}`),
				Envelope: &store.Envelope{StepID: "d"}}); err != nil {
				t.Fatal(err)
			}
			return db
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, id := recordsDB(t)
			db := openAt(t, path, nil)
			t.Cleanup(func() { db.Close() })
			if rep, err := db.VerifyChain(ctx, ""); err != nil || !rep.OK {
				t.Fatalf("VerifyChain before = %+v, %v", rep, err)
			}
			db = tc.reseal(t, db, path, id)
			for _, scope := range []string{"", id} {
				rep, err := db.VerifyChain(ctx, scope)
				if err != nil {
					t.Fatal(err)
				}
				found := false
				for _, p := range rep.Records {
					found = found || (p.TraceID == id && p.Record == store.RecordRun && p.Problem == store.ProblemRecordChanged &&
						strings.Contains(p.Reason, "envelope seq 3"))
				}
				if rep.OK || rep.Broken != nil || !found {
					t.Errorf("VerifyChain(%q) after the finished run was re-sealed = %+v; want its run record reported changed, naming the envelope that ended it (seq 3)", scope, rep)
				}
			}
		})
	}
}

// Ensure the legitimate ways a run's record is rewritten after a step
// still verify: a run that suspends and is resumed to its end, and one
// whose end (a budget) is recorded by PutRun after its last step.
func TestRunRecordRewritesVerify(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t, nil)
	ex, err := db.PutRun(ctx, store.Run{ID: "s", ProgramID: "p", Status: kernel.StatusRunning, PolicyHash: "pol"})
	if err != nil {
		t.Fatal(err)
	}
	commit := func(i int, status kernel.Status, keep bool) {
		t.Helper()
		ex.Status = status
		ex.Header = json.RawMessage(`{"status":"` + string(status) + `"}`)
		if _, err := db.CommitStep(ctx, store.StepCommit{Run: ex, Index: i, KeepRun: keep, Step: json.RawMessage(`{"i":` + string(rune('0'+i)) + `}`),
			Envelope: &store.Envelope{StepID: "x"}}); err != nil {
			t.Fatal(err)
		}
	}
	commit(0, kernel.StatusRunning, false)
	commit(1, kernel.StatusSuspended, false)
	commit(2, kernel.StatusRunning, false) // resumed
	commit(3, kernel.StatusRunning, true)
	ex.Status = kernel.StatusBudgetExceeded
	ex.Header = json.RawMessage(`{"status":"budget_exceeded"}`)
	if _, err := db.PutRun(ctx, ex); err != nil {
		t.Fatal(err)
	}
	for _, scope := range []string{"", "s"} {
		if rep, err := db.VerifyChain(ctx, scope); err != nil || !rep.OK || len(rep.Records) != 0 {
			t.Errorf("VerifyChain(%q) = %+v, %v; want OK", scope, rep, err)
		}
	}
}
