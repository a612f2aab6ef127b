package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/nanovm/nano-vm-mcp/kernel"
)

// stepReq is a write request committing step i of run r, as CommitStep
// queues it.
func stepReq(t *testing.T, db *DB, r Run, i int) *writeReq {
	t.Helper()
	sc := StepCommit{Run: r, Index: i, Step: stepPayload,
		Envelope: &Envelope{StepID: fmt.Sprint("s", i), StateHash: "h", Payload: stepPayload}}
	if i == 0 {
		sc.Envelope.InputSHA256, sc.Envelope.ProgramSHA256 = RecordSHA256(stepPayload), RecordSHA256(stepPayload)
	}
	w, err := db.prepareStep(sc)
	if err != nil {
		t.Fatal(err)
	}
	return &writeReq{fn: w.write}
}

func putTestRun(t *testing.T, db *DB, id string) Run {
	t.Helper()
	r, err := db.PutRun(context.Background(), Run{ID: id, ProgramID: "p", Status: kernel.StatusRunning, PolicyHash: "h", Input: stepPayload, Program: stepPayload})
	if err != nil {
		t.Fatal(err)
	}
	r.Input, r.Program = nil, nil
	return r
}

// TestOpenTxReadSeesAcknowledged ensures a read that begins after a
// write was acknowledged sees it, although bbolt has not committed the
// write (it lives in the write transaction kept open across batches):
// writers on four goroutines (group commits, and lone writers committing
// on their own goroutine) hand each acknowledged step to a reader on
// another, which must find it. Run it with -race.
func TestOpenTxReadSeesAcknowledged(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "read.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.jr == nil {
		t.Skip("no journal on this platform")
	}
	ctx := context.Background()
	type acked struct {
		id string
		n  int
	}
	ch := make(chan acked, 16)
	var writers sync.WaitGroup
	for w := range 4 {
		r := putTestRun(t, db, fmt.Sprint("w", w))
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := range 150 {
				sc := StepCommit{Run: r, Index: i, Step: stepPayload,
					Envelope: &Envelope{StepID: fmt.Sprint("s", i), StateHash: "h", Payload: stepPayload}}
				if i == 0 {
					sc.Envelope.InputSHA256, sc.Envelope.ProgramSHA256 = RecordSHA256(stepPayload), RecordSHA256(stepPayload)
				}
				if _, err := db.CommitStep(ctx, sc); err != nil {
					t.Error(err)
					return
				}
				ch <- acked{r.ID, i + 1}
			}
		}()
	}
	go func() { writers.Wait(); close(ch) }()
	reads := 0
	for a := range ch {
		steps, err := db.Steps(ctx, a.id, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(steps) < a.n {
			t.Fatalf("run %s: a read after step %d was acknowledged finds %d steps", a.id, a.n-1, len(steps))
		}
		reads++
	}
	if db.settles.Load() == 0 {
		t.Fatal("no read found an acknowledged write bbolt had not committed: the test proves nothing")
	}
	t.Logf("%d reads, %d of them committed the open transaction first", reads, db.settles.Load())
}

// TestOpenTxFailingMember ensures a batch member the store refuses (a
// step committed twice) does not lose the batches acknowledged before it
// in the same open write transaction: bbolt has no savepoints, so the
// rollback drops them from bbolt's transaction, and the committer applies
// them again. What was acknowledged reads back, survives a kill (the
// open transaction never committed) and a clean reopen, and the chain
// verifies.
func TestOpenTxFailingMember(t *testing.T) {
	for _, kill := range []bool{false, true} {
		t.Run(fmt.Sprint("kill=", kill), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "member.db")
			db, err := Open(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if db.jr == nil {
				t.Skip("no journal on this platform")
			}
			a := putTestRun(t, db, "a")
			b := putTestRun(t, db, "b")
			// Batches run as the committer runs them, commitMu held
			// throughout so nothing commits the open transaction.
			db.commitMu.Lock()
			for i := range 5 {
				req := stepReq(t, db, a, i)
				db.commitBatch([]*writeReq{req})
				if req.err != nil {
					t.Fatal(req.err)
				}
			}
			if db.otx.batches < 5 || !db.dirty.Load() {
				t.Fatalf("the open transaction holds %d acknowledged batches, want the 5 steps at least", db.otx.batches)
			}
			// A batch whose second member fails after the first wrote:
			// rolled back, A applied again, retried without it.
			batch := []*writeReq{stepReq(t, db, a, 5), stepReq(t, db, a, 2), stepReq(t, db, b, 0)}
			db.commitBatch(batch)
			if batch[0].err != nil || batch[2].err != nil || !errors.Is(batch[1].err, ErrStepExists) {
				t.Fatalf("batch outcomes: %v, %v, %v; want ok, ErrStepExists, ok", batch[0].err, batch[1].err, batch[2].err)
			}
			// A lone member that fails before writing anything: the
			// open transaction is kept as it is.
			lone := stepReq(t, db, b, 3) // a gap
			db.commitBatch([]*writeReq{lone})
			if lone.err == nil {
				t.Fatal("a step after a gap was committed")
			}
			more := stepReq(t, db, a, 6)
			db.commitBatch([]*writeReq{more})
			if more.err != nil {
				t.Fatal(more.err)
			}
			if db.otx.batches == 0 {
				t.Fatal("the acknowledged batches were committed: the test proves nothing")
			}
			db.commitMu.Unlock()
			want := map[string]int{"a": 7, "b": 1}
			if kill {
				db.crash() // the open transaction is lost; the journal holds it
			} else {
				checkSteps(t, db, want)
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
			}
			db, err = Open(path, &Options{CheckOnOpen: true})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			checkSteps(t, db, want)
		})
	}
}

// TestOpenTxCommitFails ensures a bbolt commit that fails after its
// batches were acknowledged (the disk full when the open transaction is
// committed) loses nothing and does not pretend: the read that needed
// the commit fails saying so, later writes fail and store nothing until a
// commit succeeds, and once the disk has room the store goes on, every
// acknowledged step there, in this process and after a kill.
func TestOpenTxCommitFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "full.db")
	db, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if db.jr == nil || db.pw == nil {
		t.Skip("no journal, or no page writer to fail, on this platform")
	}
	ctx := context.Background()
	a := putTestRun(t, db, "a")
	db.commitMu.Lock()
	for i := range 4 {
		req := stepReq(t, db, a, i)
		db.commitBatch([]*writeReq{req})
		if req.err != nil {
			t.Fatal(req.err)
		}
	}
	db.pw.fail = syscall.ENOSPC
	db.commitMu.Unlock()

	if _, err := db.Steps(ctx, "a", 0, 0); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("a read needing the failed commit: %v, want ErrDiskFull", err)
	}
	_, err = db.CommitStep(ctx, StepCommit{Run: a, Index: 4, Step: stepPayload,
		Envelope: &Envelope{StepID: "s4", StateHash: "h", Payload: stepPayload}})
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("a write while the commit fails: %v, want ErrDiskFull", err)
	}
	db.commitMu.Lock()
	db.pw.fail = nil
	db.commitMu.Unlock()
	// The refused step was stored nowhere: it commits now, as step 4.
	commitSteps(t, db, "a", 4, 3)
	checkSteps(t, db, map[string]int{"a": 7})
	commitSteps(t, db, "a", 7, 2)
	db.crash()
	db, err = Open(path, &Options{CheckOnOpen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkSteps(t, db, map[string]int{"a": 9})
}

// TestOpenTxBigBatch ensures a batch whose journal record is nearly half
// the journal (a big value, then small ones: the record's buffer grows
// past 4 MiB, and is dropped once the batch is done) is acknowledged in
// the open transaction like any other: it reads back, and survives a kill
// and a reopen with the steps around it.
func TestOpenTxBigBatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.db")
	db, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if db.jr == nil {
		t.Skip("no journal on this platform")
	}
	ctx := context.Background()
	commitSteps(t, db, "a", 0, 3)
	big := make([]byte, 4_000_000)
	for i := range big {
		big[i] = byte(i * 7)
	}
	if err := db.update(ctx, func(tx *bolt.Tx) error {
		if err := put(tx, bucketModules, []byte("big"), big); err != nil {
			return err
		}
		for i := range 64 {
			if err := put(tx, bucketModules, []byte(fmt.Sprint("small-", i)), big[:1000]); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if db.jr.buf != nil {
		t.Logf("record buffer kept (cap %d): the test may not reach the dropped buffer", cap(db.jr.buf))
	}
	commitSteps(t, db, "a", 3, 3)
	check := func(db *DB, steps int) {
		t.Helper()
		if err := db.view(ctx, func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketModules)
			if got := b.Get([]byte("big")); !bytes.Equal(got, big) {
				return fmt.Errorf("big value: %d bytes", len(got))
			}
			if got := b.Get([]byte("small-63")); !bytes.Equal(got, big[:1000]) {
				return fmt.Errorf("small value: %d bytes", len(got))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		checkSteps(t, db, map[string]int{"a": steps})
	}
	check(db, 6)
	commitSteps(t, db, "a", 6, 2)
	db.crash()
	db, err = Open(path, &Options{CheckOnOpen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	check(db, 8)
}

// TestOpenTxFailingMembersApplyOnce ensures the acknowledged batches a
// rollback drops are applied again once, not once per failing member:
// after the first rollback they are committed, so a batch in which
// several members fail (or writers whose every other write fails) does
// not make the committer redo up to 1 MiB of operations per failure.
// What was acknowledged still reads back after a kill.
func TestOpenTxFailingMembersApplyOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "members.db")
	db, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if db.jr == nil {
		t.Skip("no journal on this platform")
	}
	a := putTestRun(t, db, "a")
	b := putTestRun(t, db, "b")
	db.commitMu.Lock()
	for i := range 5 {
		req := stepReq(t, db, a, i)
		db.commitBatch([]*writeReq{req})
		if req.err != nil {
			t.Fatal(req.err)
		}
	}
	if db.otx.batches < 5 {
		t.Fatalf("the open transaction holds %d acknowledged batches, want 5 at least", db.otx.batches)
	}
	// Three members fail after the first wrote: three rollbacks.
	batch := []*writeReq{stepReq(t, db, a, 5), stepReq(t, db, a, 2), stepReq(t, db, a, 3), stepReq(t, db, a, 4), stepReq(t, db, b, 0)}
	db.commitBatch(batch)
	for i, r := range batch {
		if fail := i >= 1 && i <= 3; fail != errors.Is(r.err, ErrStepExists) || !fail && r.err != nil {
			t.Fatalf("member %d: %v", i, r.err)
		}
	}
	// The five earlier batches were committed at the first rollback:
	// the open transaction holds only what was acknowledged since.
	if db.otx.batches != 1 {
		t.Fatalf("after the rollbacks the open transaction holds %d acknowledged batches, want 1 (the retried batch)", db.otx.batches)
	}
	db.commitMu.Unlock()
	db.crash()
	db, err = Open(path, &Options{CheckOnOpen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkSteps(t, db, map[string]int{"a": 6, "b": 1})
}
