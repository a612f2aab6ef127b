package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/nanovm/nano-vm-mcp/kernel"
)

// metaFreelist reads the freelist page id of the newer valid meta page
// of the bbolt file at path (boltNoFreelist when the meta names none).
func metaFreelist(t *testing.T, path string) uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m0, ok0 := readMeta(f, 0)
	if !ok0 {
		t.Fatal("meta page 0 does not validate")
	}
	m1, ok1 := readMeta(f, int64(m0.pageSize))
	if ok1 && m1.txid > m0.txid {
		return m1.freelist
	}
	return m0.freelist
}

// TestJournaledCommitsSkipFreelist ensures the journal's commits do not
// rewrite bbolt's freelist (the state in the file while the store is
// open names none), and that every state a later Open starts from does
// name one: after Close, and after the recovery from an unclean stop.
// Each Open also finds every acknowledged step and a verifying chain.
func TestJournaledCommitsSkipFreelist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fl.db")
	db, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if db.jr == nil {
		t.Skip("no journal on this platform")
	}
	commitSteps(t, db, "r", 0, 30)
	if err := db.bolt.Sync(); err != nil {
		t.Fatal(err)
	}
	if fl := metaFreelist(t, path); fl != boltNoFreelist {
		t.Fatalf("while open, the last commit wrote a freelist (page %d)", fl)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if fl := metaFreelist(t, path); fl == boltNoFreelist {
		t.Fatal("after Close the bbolt file names no freelist: every Open would rebuild it")
	}

	db, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	commitSteps(t, db, "r", 30, 30)
	// A read has bbolt commit the open transaction (unsynced, without
	// a freelist) before the crash.
	if _, _, err := db.Head(context.Background()); err != nil {
		t.Fatal(err)
	}
	db.crash() // no final checkpoint: the records stay in the journal
	if fl := metaFreelist(t, path); fl != boltNoFreelist {
		t.Fatalf("the crashed state wrote a freelist (page %d)", fl)
	}
	db, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fl := metaFreelist(t, path); fl == boltNoFreelist {
		t.Fatal("after recovery the bbolt file names no freelist")
	}
	checkSteps(t, db, map[string]int{"r": 60})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCommitAloneNeverOvertakes ensures a writer that commits on its own
// goroutine never commits before a write queued earlier: each step is
// queued (StartCommitStep, not waited for) and the next committed at
// once (CommitStep), which the store refuses as a gap if it went first.
func TestCommitAloneNeverOvertakes(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts *Options
	}{{"journal", nil}, {"nojournal", &Options{NoJournal: true}}, {"nosync", &Options{NoSync: true}}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db, err := Open(filepath.Join(t.TempDir(), "o.db"), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			r, err := db.PutRun(ctx, Run{ID: "r", ProgramID: "p", Status: kernel.StatusRunning, PolicyHash: "h", Input: stepPayload, Program: stepPayload})
			if err != nil {
				t.Fatal(err)
			}
			r.Input, r.Program = nil, nil
			step := func(i int) StepCommit {
				sc := StepCommit{Run: r, Index: i, Step: stepPayload,
					Envelope: &Envelope{StepID: fmt.Sprint("s", i), StateHash: "h", Payload: stepPayload}}
				if i == 0 {
					sc.Envelope.InputSHA256, sc.Envelope.ProgramSHA256 = RecordSHA256(stepPayload), RecordSHA256(stepPayload)
				}
				return sc
			}
			const pairs = 100
			pending := make([]*PendingCommit, 0, pairs)
			for i := 0; i < 2*pairs; i += 2 {
				pending = append(pending, db.StartCommitStep(ctx, step(i)))
				if _, err := db.CommitStep(ctx, step(i+1)); err != nil {
					if errors.Is(err, ErrStepGap) {
						t.Fatalf("step %d committed before step %d, queued first: %v", i+1, i, err)
					}
					t.Fatal(err)
				}
			}
			for i, pc := range pending {
				if _, err := pc.Wait(); err != nil {
					t.Fatalf("step %d: %v", 2*i, err)
				}
			}
			checkSteps(t, db, map[string]int{"r": 2 * pairs})
		})
	}
}
