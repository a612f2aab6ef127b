package store_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/store"
	bolt "go.etcd.io/bbolt"
)

// schema2File copies testdata/schema2.db.gz (written by the build before
// the step log, see testdata/schema2.db.gen.go.txt) into a temporary
// folder and returns its path.
func schema2File(t *testing.T) string {
	t.Helper()
	f, err := os.Open("testdata/schema2.db.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "old.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// rawSteps returns the values of the steps bucket under id's prefix, and
// the step log's keys, as stored.
func rawSteps(t *testing.T, path, id string) (vals [][]byte, logKeys []uint64) {
	t.Helper()
	b, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_ = b.View(func(tx *bolt.Tx) error {
		prefix := append([]byte(id), 0)
		c := tx.Bucket([]byte("steps")).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			vals = append(vals, bytes.Clone(v))
		}
		if l := tx.Bucket([]byte("step_log")); l != nil {
			_ = l.ForEach(func(k, _ []byte) error {
				logKeys = append(logKeys, binary.BigEndian.Uint64(k))
				return nil
			})
		}
		return nil
	})
	return vals, logKeys
}

func isRef(v []byte) bool { return len(v) == 9 && v[0] == 0 }

// TestOpenSchema2 opens a file the schema-2 build wrote (step records in
// the steps bucket itself): its steps read back and verify, a run it
// left running goes on with steps in the log beside the old ones, and a
// changed old record is still reported.
func TestOpenSchema2(t *testing.T) {
	ctx := context.Background()
	path := schema2File(t)
	db := openAt(t, path, nil)
	if _, steps, err := db.RunTrace(ctx, "old-done"); err != nil || len(steps) != 3 || string(steps[1].Data) != `{"step_id":"b","status":"success","output":"captured"}` {
		t.Fatalf("RunTrace(old-done) = %d steps (%v), %v; want the three stored", len(steps), steps, err)
	}
	if rep, err := db.VerifyChain(ctx, ""); err != nil || !rep.OK || rep.Checked != 5 {
		t.Fatalf("VerifyChain of the migrated file = %+v, %v; want OK over 5 envelopes", rep, err)
	}
	// The run the old build left running takes its third step.
	ex, err := db.Run(ctx, "old-running")
	if err != nil {
		t.Fatal(err)
	}
	ex.Status = kernel.StatusSuccess
	ex.Header = json.RawMessage(`{"status":"success"}`)
	if _, err := db.CommitStep(ctx, store.StepCommit{Run: ex, Index: 2, Step: json.RawMessage(`{"step_id":"c","status":"success","output":"three"}`),
		Envelope: &store.Envelope{StepID: "c"}}); err != nil {
		t.Fatal(err)
	}
	steps, err := db.Steps(ctx, "old-running", 0, 0)
	if err != nil || len(steps) != 3 || string(steps[0].Data) != `{"step_id":"a","status":"success","output":"one"}` ||
		string(steps[2].Data) != `{"step_id":"c","status":"success","output":"three"}` {
		t.Fatalf("Steps(old-running) = %v, %v; want the two old and the new", steps, err)
	}
	for _, id := range []string{"", "old-running", "old-done"} {
		if rep, err := db.VerifyChain(ctx, id); err != nil || !rep.OK {
			t.Fatalf("VerifyChain(%q) after a step on the old file = %+v, %v", id, rep, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	vals, logKeys := rawSteps(t, path, "old-running")
	if len(vals) != 3 || isRef(vals[0]) || isRef(vals[1]) || !isRef(vals[2]) || len(logKeys) != 1 {
		t.Fatalf("stored steps of old-running = %q, log %v; want the old two as records, the new one a reference to the one log record", vals, logKeys)
	}
	// An old record changed in place is reported, and so is a new one.
	if err := rawUpdate(path, func(tx *bolt.Tx) error {
		if err := replaceIn(tx, "steps", stepKey("old-done", 1), "captured", "refunded"); err != nil {
			return err
		}
		return replaceIn(tx, "steps", stepKey("old-running", 2), "three", "THREE")
	}); err != nil {
		t.Fatal(err)
	}
	db = openAt(t, path, nil)
	defer db.Close()
	rep, err := db.VerifyChain(ctx, "")
	if err != nil || rep.OK {
		t.Fatalf("VerifyChain after changing two steps = %+v, %v; want them reported", rep, err)
	}
	got := map[string]int{}
	for _, p := range rep.Records {
		if p.Record == store.RecordStep && p.Problem == store.ProblemRecordChanged {
			got[p.TraceID] = *p.StepIndex
		}
	}
	if len(got) != 2 || got["old-done"] != 1 || got["old-running"] != 2 {
		t.Fatalf("record problems = %+v; want step 1 of old-done and step 2 of old-running changed", rep.Records)
	}
}

// TestStepLog holds the schema-3 layout: concurrent runs' steps go to the
// log in commit order, the steps bucket holds references, a reference
// whose log record is gone reads as a missing step, and deleting a
// program's runs deletes their log records.
func TestStepLog(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "log.db")
	db := openAt(t, path, nil)
	if _, err := db.PutProgram(ctx, store.Program{ID: "p", Name: "p", Program: json.RawMessage(`{"name":"p","steps":[]}`)}); err != nil {
		t.Fatal(err)
	}
	runs := map[string]store.Run{}
	for _, id := range []string{"r1", "r2"} {
		ex, err := db.PutRun(ctx, store.Run{ID: id, ProgramID: "p", Status: kernel.StatusRunning})
		if err != nil {
			t.Fatal(err)
		}
		runs[id] = ex
	}
	// Interleaved: r1/0 r2/0 r1/1 r2/1.
	for i := range 2 {
		for _, id := range []string{"r1", "r2"} {
			s := json.RawMessage(`{"step_id":"` + id + `","index":` + string(rune('0'+i)) + `}`)
			if _, err := db.CommitStep(ctx, store.StepCommit{Run: runs[id], KeepRun: true, Index: i, Step: s, Envelope: &store.Envelope{StepID: "s"}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for j, id := range []string{"r1", "r2"} {
		vals, logKeys := rawSteps(t, path, id)
		if len(logKeys) != 4 || logKeys[0] != 1 || logKeys[3] != 4 {
			t.Fatalf("step log keys = %v; want 1..4", logKeys)
		}
		for i, v := range vals {
			if want := uint64(2*i + j + 1); !isRef(v) || binary.BigEndian.Uint64(v[1:]) != want {
				t.Fatalf("steps of %s, %d = %x; want a reference to log record %d (commit order)", id, i, v, want)
			}
		}
	}
	// The log record of r2/1 goes: the step reads as missing.
	if err := rawUpdate(path, func(tx *bolt.Tx) error { return tx.Bucket([]byte("step_log")).Delete(seqKey(4)) }); err != nil {
		t.Fatal(err)
	}
	db = openAt(t, path, nil)
	if steps, err := db.Steps(ctx, "r2", 0, 0); err != nil || len(steps) != 1 || steps[0].Index != 0 {
		t.Fatalf("Steps(r2) without its last log record = %v, %v; want step 0 only", steps, err)
	}
	rep, err := db.VerifyChain(ctx, "r2")
	missing := false
	for _, p := range rep.Records {
		missing = missing || p.Record == store.RecordStep && p.Problem == store.ProblemRecordMissing && p.StepIndex != nil && *p.StepIndex == 1
	}
	if err != nil || rep.OK || !missing {
		t.Fatalf("VerifyChain(r2) without its last log record = %+v, %v; want step 1 missing", rep, err)
	}
	if err := db.DeleteProgram(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if vals, logKeys := rawSteps(t, path, "r1"); len(vals) != 0 || len(logKeys) != 0 {
		t.Fatalf("after DeleteProgram: steps %q, log %v; want none", vals, logKeys)
	}
}
