package store_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/kernel/projection"
	"github.com/nanovm/nano-vm-mcp/store"
	bolt "go.etcd.io/bbolt"
)

// recordsDB writes one run the way the runtime does (start, a first step
// committing to input and program, a kept step, a final step) into a new
// file and returns its path and the run's id.
func recordsDB(t *testing.T) (string, string) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "records.db")
	db := openAt(t, path, nil)
	const id = "run-1"
	input := json.RawMessage(`{"order_id":"order-abc-123"}`)
	prog := json.RawMessage(`{"name":"pay","steps":[{"id":"capture","type":"tool","tool":"capture_payment"}]}`)
	ex, err := db.PutRun(ctx, store.Run{ID: id, ProgramID: "pay", Status: kernel.StatusRunning, PolicyHash: "pol", Input: input, Program: prog})
	if err != nil {
		t.Fatal(err)
	}
	ex.Input, ex.Program = nil, nil
	steps := []string{`{"step_id":"a","status":"success","output":"reserved"}`, `{"step_id":"b","status":"success","output":"captured"}`, `{"step_id":"c","status":"failed","error":"receipt down"}`}
	for i, s := range steps {
		sc := store.StepCommit{Run: ex, Index: i, Step: json.RawMessage(s), Envelope: &store.Envelope{StepID: string(rune('a' + i))}}
		switch i {
		case 0:
			sc.Envelope.InputSHA256, sc.Envelope.ProgramSHA256 = store.RecordSHA256(input), store.RecordSHA256(prog)
		case 1:
			sc.KeepRun = true
		case 2:
			sc.Run.Status = "failed"
			sc.Run.Header = json.RawMessage(`{"status":"failed","error":"receipt down"}`)
		}
		if _, err := db.CommitStep(ctx, sc); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path, id
}

func stepKey(id string, i uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(id), 0), i)
}

// replaceIn replaces old with new in the value under key. A step's
// value that refers to the step log (a NUL and the 8-byte log number,
// schema 3) is followed: the record in step_log is the one changed.
func replaceIn(tx *bolt.Tx, bucket string, key []byte, old, new string) error {
	b := tx.Bucket([]byte(bucket))
	v := b.Get(key)
	if bucket == "steps" && len(v) == 9 && v[0] == 0 {
		b, key = tx.Bucket([]byte("step_log")), bytes.Clone(v[1:])
		v = b.Get(key)
	}
	if !bytes.Contains(v, []byte(old)) {
		return &missingErr{bucket, string(key), old}
	}
	return b.Put(key, bytes.Replace(v, []byte(old), []byte(new), 1))
}

type missingErr struct{ bucket, key, old string }

func (e *missingErr) Error() string { return e.bucket + "/" + e.key + " holds no " + e.old }

// TestRecordTamper ensures every kind of direct edit of the records a trace
// shows (step records, the run record, its input and program) is
// reported by VerifyChain, whole-chain and per run, naming the run,
// the record and the step, while the chain itself holds.
func TestRecordTamper(t *testing.T) {
	type want struct {
		record  string
		step    int // -1: not a step
		problem store.Problem
	}
	tests := []struct {
		name   string
		tamper func(tx *bolt.Tx, id string) error
		want   []want
	}{
		{name: "step output changed, same length", want: []want{{store.RecordStep, 1, store.ProblemRecordChanged}},
			tamper: func(tx *bolt.Tx, id string) error {
				return replaceIn(tx, "steps", stepKey(id, 1), "captured", "refunded")
			}},
		{name: "one byte of a failed step", want: []want{{store.RecordStep, 2, store.ProblemRecordChanged}},
			tamper: func(tx *bolt.Tx, id string) error { return replaceIn(tx, "steps", stepKey(id, 2), "down", "d0wn") }},
		{name: "step re-encoded, same meaning", want: []want{{store.RecordStep, 0, store.ProblemRecordChanged}},
			tamper: func(tx *bolt.Tx, id string) error {
				return replaceIn(tx, "steps", stepKey(id, 0), `,"status"`, ` ,"status"`)
			}},
		{name: "last step deleted", want: []want{{store.RecordStep, 2, store.ProblemRecordMissing}},
			tamper: func(tx *bolt.Tx, id string) error { return tx.Bucket([]byte("steps")).Delete(stepKey(id, 2)) }},
		{name: "step added", want: []want{{store.RecordStep, 3, store.ProblemRecordExtra}},
			tamper: func(tx *bolt.Tx, id string) error {
				return tx.Bucket([]byte("steps")).Put(stepKey(id, 3), []byte(`{"step_id":"d","status":"success"}`))
			}},
		{name: "final status changed", want: []want{{store.RecordRun, -1, store.ProblemRecordChanged}},
			tamper: func(tx *bolt.Tx, id string) error {
				return replaceIn(tx, "executions", []byte(id), `"status":"failed"`, `"status":"passed"`)
			}},
		{name: "final error changed", want: []want{{store.RecordRun, -1, store.ProblemRecordChanged}},
			tamper: func(tx *bolt.Tx, id string) error {
				return replaceIn(tx, "executions", []byte(id), "receipt down", "receipt sent")
			}},
		{name: "input changed", want: []want{{store.RecordInput, -1, store.ProblemRecordChanged}},
			tamper: func(tx *bolt.Tx, id string) error {
				return replaceIn(tx, "exec_bodies", []byte(id), "order-abc", "order-xyz")
			}},
		{name: "program changed", want: []want{{store.RecordProgram, -1, store.ProblemRecordChanged}},
			tamper: func(tx *bolt.Tx, id string) error {
				return replaceIn(tx, "exec_bodies", []byte(id), "capture_payment", "refund__payment")
			}},
		{name: "input and program deleted", want: []want{{store.RecordInput, -1, store.ProblemRecordMissing}, {store.RecordProgram, -1, store.ProblemRecordMissing}},
			tamper: func(tx *bolt.Tx, id string) error { return tx.Bucket([]byte("exec_bodies")).Delete([]byte(id)) }},
		{name: "run record deleted", want: []want{{store.RecordRun, -1, store.ProblemRecordMissing}},
			tamper: func(tx *bolt.Tx, id string) error { return tx.Bucket([]byte("executions")).Delete([]byte(id)) }},
		{name: "everything deleted", want: []want{{store.RecordRun, -1, store.ProblemRecordMissing}},
			tamper: func(tx *bolt.Tx, id string) error {
				for _, k := range [][]byte{stepKey(id, 0), stepKey(id, 1), stepKey(id, 2)} {
					if err := tx.Bucket([]byte("steps")).Delete(k); err != nil {
						return err
					}
				}
				if err := tx.Bucket([]byte("exec_bodies")).Delete([]byte(id)); err != nil {
					return err
				}
				return tx.Bucket([]byte("executions")).Delete([]byte(id))
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, id := recordsDB(t)
			db := tamperedDB(t, path, func(tx *bolt.Tx) error { return tc.tamper(tx, id) })
			for _, scope := range []string{"", id} {
				rep, err := db.VerifyChain(context.Background(), scope)
				if err != nil {
					t.Fatal(err)
				}
				// The chain holds: a whole-chain check still gives its head.
				if rep.OK || rep.Broken != nil || (scope == "") != (rep.HeadHash != "") {
					t.Errorf("VerifyChain(%q) = %+v; want the chain intact and the records reported", scope, rep)
				}
				if len(rep.Records) != len(tc.want) {
					t.Fatalf("VerifyChain(%q) reported %v, want %v", scope, rep.Records, tc.want)
				}
				for i, w := range tc.want {
					p := rep.Records[i]
					step := -1
					if p.StepIndex != nil {
						step = *p.StepIndex
					}
					if p.TraceID != id || p.Record != w.record || step != w.step || p.Problem != w.problem || p.Reason == "" {
						t.Errorf("VerifyChain(%q) reported %s; want %s %d %s", scope, p, w.record, w.step, w.problem)
					}
				}
			}
		})
	}
}

// Ensure an untouched run verifies with all its records checked, a fake
// run added to the file is reported as not covered, and a deletion through
// the store is not a problem.
func TestRecordsCoveredAndDeleted(t *testing.T) {
	ctx := context.Background()
	path, id := recordsDB(t)
	db := openAt(t, path, nil)
	rep, err := db.VerifyChain(ctx, "")
	// 3 steps, the run record, the input and the program.
	if err != nil || !rep.OK || rep.RecordsChecked != 6 || len(rep.Notes) != 0 {
		t.Fatalf("VerifyChain = %+v, %v; want OK, 6 records", rep, err)
	}
	if _, err := db.PutProgram(ctx, store.Program{ID: "pay", Name: "pay", Program: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteProgram(ctx, "pay"); err != nil {
		t.Fatal(err)
	}
	if rep, err := db.VerifyChain(ctx, ""); err != nil || !rep.OK || rep.RecordsChecked != 0 {
		t.Fatalf("VerifyChain after DeleteProgram = %+v, %v; want OK", rep, err)
	}
	if rep, err := db.VerifyChain(ctx, id); err != nil || !rep.OK {
		t.Fatalf("VerifyChain(%q) after DeleteProgram = %+v, %v; want OK", id, rep, err)
	}
	db.Close()
	db = tamperedDB(t, path, func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte("executions")).Put([]byte("fake"), []byte(`{"id":"fake","status":"success"}`)); err != nil {
			return err
		}
		return tx.Bucket([]byte("steps")).Put(stepKey("fake", 0), []byte(`{"step_id":"a","status":"success"}`))
	})
	rep, err = db.VerifyChain(ctx, "")
	if err != nil || rep.OK || len(rep.Records) != 2 || rep.Records[0].TraceID != "fake" || rep.Records[0].Problem != store.ProblemRecordExtra ||
		rep.Records[1].Record != store.RecordStep || rep.Records[1].Problem != store.ProblemRecordExtra {
		t.Fatalf("VerifyChain with a fake run = %+v, %v; want its record and step not covered", rep, err)
	}
}

// Ensure a schema-1 file (envelopes without record hashes) opens, is
// migrated, and verifies with its runs noted as legacy rather than
// failing, while runs written after the migration are held to their
// envelopes.
func TestLegacyRecords(t *testing.T) {
	ctx := context.Background()
	path, id := recordsDB(t)
	// Make it a schema-1 file: no legacy bucket, version 1, envelopes as
	// schema 1 wrote them (the chain re-linked without record hashes).
	if err := rawUpdate(path, func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket([]byte("legacy_execs")); err != nil {
			return err
		}
		envs := tx.Bucket([]byte("envelopes"))
		prev := store.GenesisHash
		var last store.Envelope
		for seq := uint64(1); ; seq++ {
			v := envs.Get(seqKey(seq))
			if v == nil {
				break
			}
			var e store.Envelope
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			e.RecordSHA256, e.RunSHA256, e.InputSHA256, e.ProgramSHA256 = "", "", "", ""
			e.PrevHash = prev
			h, err := e.ComputeHash()
			if err != nil {
				return err
			}
			e.Hash, prev = h, h
			last = e
			nv, _ := json.Marshal(&e)
			if err := envs.Put(seqKey(seq), nv); err != nil {
				return err
			}
		}
		head, _ := json.Marshal(map[string]any{"seq": last.Seq, "hash": last.Hash})
		if err := tx.Bucket([]byte("meta")).Put([]byte("chain_head"), head); err != nil {
			return err
		}
		return tx.Bucket([]byte("meta")).Put([]byte("schema_version"), seqKey(1))
	}); err != nil {
		t.Fatal(err)
	}
	db := openAt(t, path, nil)
	rep, err := db.VerifyChain(ctx, "")
	if err != nil || !rep.OK || len(rep.Notes) != 1 || rep.Notes[0].TraceID != id || rep.Notes[0].Problem != store.ProblemLegacy {
		t.Fatalf("VerifyChain of a migrated schema-1 file = %+v (%+v), %v; want OK with %q noted legacy", rep, rep.Broken, err, id)
	}
	if got := rep.Notes[0].Problem.String(); got != "legacy, records not covered" {
		t.Errorf("legacy note says %q", got)
	}
	// A run after the migration is covered.
	if _, err := db.CommitStep(ctx, store.StepCommit{Run: store.Run{ID: "new", Status: "success"}, Index: 0,
		Step: json.RawMessage(`{"s":1}`), Envelope: &store.Envelope{StepID: "a"}}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := rawUpdate(path, func(tx *bolt.Tx) error { return replaceIn(tx, "steps", stepKey("new", 0), "1", "2") }); err != nil {
		t.Fatal(err)
	}
	db = openAt(t, path, nil)
	defer db.Close()
	rep, err = db.VerifyChain(ctx, "")
	if err != nil || rep.OK || len(rep.Records) != 1 || rep.Records[0].TraceID != "new" || len(rep.Notes) != 1 {
		t.Fatalf("VerifyChain = %+v, %v; want the new run's step reported and the legacy run noted", rep, err)
	}
}

// Ensure marking a schema-2 run as legacy on disk (one key in
// legacy_execs, no hash to recompute) does not exempt its records: the
// records its envelopes commit to are still checked, so a changed step,
// run record or input is reported. Before, the marker alone turned
// every problem of that run into a note and verify passed (also against a
// checkpoint, which the marker's bucket is outside of).
func TestLegacyMarkerDoesNotExempt(t *testing.T) {
	tests := []struct {
		name   string
		record string
		tamper func(tx *bolt.Tx, id string) error
	}{
		{"step", store.RecordStep, func(tx *bolt.Tx, id string) error {
			return replaceIn(tx, "steps", stepKey(id, 1), "captured", "refunded")
		}},
		{"execution", store.RecordRun, func(tx *bolt.Tx, id string) error {
			return replaceIn(tx, "executions", []byte(id), "receipt down", "receipt sent")
		}},
		{"input", store.RecordInput, func(tx *bolt.Tx, id string) error {
			return replaceIn(tx, "exec_bodies", []byte(id), "order-abc", "order-xyz")
		}},
		{"step deleted", store.RecordStep, func(tx *bolt.Tx, id string) error { return tx.Bucket([]byte("steps")).Delete(stepKey(id, 2)) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, id := recordsDB(t)
			db := tamperedDB(t, path, func(tx *bolt.Tx) error {
				if err := tx.Bucket([]byte("legacy_execs")).Put([]byte(id), nil); err != nil {
					return err
				}
				return tc.tamper(tx, id)
			})
			for _, scope := range []string{"", id} {
				rep, err := db.VerifyChain(context.Background(), scope)
				if err != nil {
					t.Fatal(err)
				}
				if rep.OK || len(rep.Records) != 1 || rep.Records[0].Record != tc.record || rep.Records[0].TraceID != id {
					t.Errorf("VerifyChain(%q) of a run marked legacy and changed = OK %v, records %v, notes %v; want its %s reported",
						scope, rep.OK, rep.Records, rep.Notes, tc.record)
				}
			}
		})
	}
}

// Ensure a step key of the wrong shape (not the id, a NUL and 8 bytes of
// index) added to the file is reported by VerifyChain as a record no
// envelope covers, for that run, while the other records still verify and
// the trace and steps still read. Before, a short key made every reader
// and the whole-chain verify fail with "index out of range".
func TestMalformedStepKey(t *testing.T) {
	for _, suffix := range [][]byte{{1}, {0, 0, 0, 0, 0, 0, 0, 1, 7}, {}} {
		t.Run(fmt.Sprintf("%d bytes", len(suffix)), func(t *testing.T) {
			path, id := recordsDB(t)
			db := tamperedDB(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket([]byte("steps")).Put(append(append([]byte(id), 0), suffix...), []byte(`{"step_id":"x","status":"success"}`))
			})
			ctx := context.Background()
			for _, scope := range []string{"", id} {
				rep, err := db.VerifyChain(ctx, scope)
				if err != nil {
					t.Fatalf("VerifyChain(%q): %v", scope, err)
				}
				if rep.OK || rep.Broken != nil || len(rep.Records) != 1 || rep.Records[0].TraceID != id ||
					rep.Records[0].Record != store.RecordStep || rep.Records[0].Problem != store.ProblemRecordExtra {
					t.Errorf("VerifyChain(%q) = %+v; want the malformed step key of %q reported", scope, rep, id)
				}
			}
			if _, steps, err := db.RunTrace(ctx, id); err != nil || len(steps) != 3 {
				t.Errorf("RunTrace = %d steps, %v; want the 3 real steps", len(steps), err)
			}
			if steps, err := db.Steps(ctx, id, 0, 0); err != nil || len(steps) != 3 {
				t.Errorf("Steps = %d steps, %v; want the 3 real steps", len(steps), err)
			}
		})
	}
}

// Ensure a record cannot be re-committed by appending envelopes: someone
// who can write the file but not rewrite the chain before a checkpoint
// changes an old step (or the input) and appends, through the store, an
// envelope committing to the new bytes. A step is committed once and a
// run's input and program never change, so verify reports the
// second commitment, naming the record and both envelopes. Before, the
// latest envelope won and verify passed, also against a checkpoint taken
// before the append (the chain only grew).
func TestRecordRecommitted(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name, record string
		tamper       func(tx *bolt.Tx, id string) error
		append       func(db *store.DB, id string) error
	}{
		{"step", store.RecordStep,
			func(tx *bolt.Tx, id string) error {
				return replaceIn(tx, "steps", stepKey(id, 1), "captured", "refunded")
			},
			func(db *store.DB, id string) error {
				v := []byte(`{"step_id":"b","status":"success","output":"refunded"}`)
				_, err := db.AppendEnvelope(ctx, store.Envelope{TraceID: id, StepIndex: 1, StepID: "b", RecordSHA256: store.RecordSHA256(v)})
				return err
			}},
		{"input", store.RecordInput,
			func(tx *bolt.Tx, id string) error {
				return replaceIn(tx, "exec_bodies", []byte(id), "order-abc", "order-xyz")
			},
			func(db *store.DB, id string) error {
				_, err := db.AppendEnvelope(ctx, store.Envelope{Kind: store.EnvelopeKindRun, TraceID: id,
					InputSHA256: store.RecordSHA256([]byte(`{"order_id":"order-xyz-123"}`))})
				return err
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, id := recordsDB(t)
			db := tamperedDB(t, path, func(tx *bolt.Tx) error { return tc.tamper(tx, id) })
			if err := tc.append(db, id); err != nil {
				t.Fatal(err)
			}
			for _, scope := range []string{"", id} {
				rep, err := db.VerifyChain(ctx, scope)
				if err != nil {
					t.Fatal(err)
				}
				if rep.OK || rep.Broken != nil || len(rep.Records) != 1 || rep.Records[0].Record != tc.record ||
					rep.Records[0].TraceID != id || rep.Records[0].Problem != store.ProblemRecordChanged {
					t.Errorf("VerifyChain(%q) after a re-commit = %+v; want the %s reported changed", scope, rep, tc.record)
				}
			}
		})
	}
}

// Ensure an erased secret made live again on disk (its tombstone cleared:
// traces then show its public ref instead of [REDACTED_TOMBSTONE]) is
// reported by the whole-chain verify, naming the secret and the erase
// envelope, while the untouched erasure verifies. The tombstone is what
// erasure changes, outside every hashed record: the erase envelope is
// what tells verify it must be there. Before, verify passed.
func TestErasureUndone(t *testing.T) {
	ctx := context.Background()
	path, _ := recordsDB(t)
	db := openAt(t, path, nil)
	if err := db.PutSecret(ctx, store.SecretRecord{ID: "card", Salt: "s4lt", Nonce: []byte("n"), Ciphertext: []byte("c")}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.EraseSecret(ctx, "card"); err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(map[string]any{"erased": true, "ref": projection.PublicRef("card", "s4lt", false)})
	if _, err := db.AppendEnvelope(ctx, store.Envelope{Kind: store.EnvelopeKindErase, Payload: payload}); err != nil {
		t.Fatal(err)
	}
	if rep, err := db.VerifyChain(ctx, ""); err != nil || !rep.OK || len(rep.Notes) != 0 {
		t.Fatalf("VerifyChain after an erasure = %+v, %v; want OK", rep, err)
	}
	db.Close()
	db = tamperedDB(t, path, func(tx *bolt.Tx) error {
		return replaceIn(tx, "vault", []byte("card"), `"tombstoned":true`, `"tombstoned":false`)
	})
	rep, err := db.VerifyChain(ctx, "")
	if err != nil || rep.OK || len(rep.Records) != 1 || rep.Records[0].Record != store.RecordSecret ||
		!strings.Contains(rep.Records[0].String(), `secret "card"`) || rep.Records[0].Seq != 4 {
		t.Fatalf("VerifyChain after the tombstone was cleared = %+v, %v; want the secret reported", rep, err)
	}
}

// Ensure an appended deletion envelope does not let a run start
// afresh: steps and input committed before it stay committed once, so
// envelopes appended after it that re-seal changed records are reported
// as re-commitments. Before, the deletion reset what verify held the run
// to, and an attacker re-committing every record after it passed.
func TestRecommitAfterDelete(t *testing.T) {
	ctx := context.Background()
	path, id := recordsDB(t)
	db := tamperedDB(t, path, func(tx *bolt.Tx) error { return replaceIn(tx, "steps", stepKey(id, 1), "captured", "refunded") })
	if _, err := db.AppendEnvelope(ctx, store.Envelope{Kind: store.EnvelopeKindDelete, TraceID: id}); err != nil {
		t.Fatal(err)
	}
	_, steps, err := db.RunTrace(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		if _, err := db.AppendEnvelope(ctx, store.Envelope{TraceID: id, StepIndex: s.Index, RecordSHA256: store.RecordSHA256(s.Data)}); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := db.VerifyChain(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range rep.Records {
		found = found || (p.Record == store.RecordStep && p.StepIndex != nil && *p.StepIndex == 1 && p.Problem == store.ProblemRecordChanged)
	}
	if rep.OK || !found {
		t.Fatalf("VerifyChain after a deletion and re-commits = %+v; want step 1 reported re-committed", rep)
	}
}
