package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/store"
	"github.com/nanovm/nano-vm-mcp/store/postgres/pgtest"
)

// startKnown starts run id under owner on db and commits its steps 0 and
// 1 through the committer, so that the committer knows the run (its
// lease, its next index).
func startKnown(t *testing.T, db *DB, id, owner string) store.Lease {
	t.Helper()
	ctx := context.Background()
	_, l, err := db.StartRun(ctx, store.Run{ID: id, ProgramID: "p", Status: kernel.StatusRunning, CreatedAt: time.Unix(1, 0)}, owner)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := db.CommitStep(ctx, stepOf(id, l, i)); err != nil {
			t.Fatal(err)
		}
	}
	db.cmu.Lock()
	st, ok := db.known[id]
	db.cmu.Unlock()
	if !ok || st.next != 2 || st.lease != l {
		t.Fatalf("the committer knows %q as %+v (%v); want lease %+v, next 2", id, st, ok, l)
	}
	return l
}

func stepOf(id string, l store.Lease, i int) store.StepCommit {
	return store.StepCommit{Run: store.Run{ID: id, Status: kernel.StatusRunning}, KeepRun: true, Index: i,
		Step: json.RawMessage(fmt.Sprint(i)), Envelope: &store.Envelope{StepID: fmt.Sprint("s", i)}, Lease: &l}
}

// planOf builds the one-trip batch of scs on tip, failing the test if it
// cannot be one.
func planOf(t *testing.T, db *DB, tip headState, scs ...store.StepCommit) *fastPlan {
	t.Helper()
	var batch []*stepReq
	for _, sc := range scs {
		r, err := db.prepareStep(sc)
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, r)
	}
	p := db.planFast(batch, func() headState { return tip })
	if p == nil {
		t.Fatalf("batch of %d steps is not a one-trip batch", len(scs))
	}
	return p
}

// TestFastBuiltOnFailed builds batch B on batch A, as the committer builds
// a batch on the one in flight, and makes A fail (its lease was taken
// away under the committer's knowledge): B links to the head A would have
// left, which never exists, so B must be refused by the head condition
// and write nothing; the chain stays gap-free. Without the head condition
// B commits envelopes after a gap. (The records are kept, KeepRun, so
// the chain is checked for breaks, not for the records' cover.)
func TestFastBuiltOnFailed(t *testing.T) {
	dsn := pgtest.Fresh(t)
	ctx := context.Background()
	db, err := Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Heartbeat(ctx, store.Replica{ID: "a", PolicyHash: "p"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	lx := startKnown(t, db, "x", "a")
	ly := startKnown(t, db, "y", "a")
	// x's lease moves on behind the committer's back (as a takeover
	// would): A's lease check fails.
	if _, err := db.pool.Exec(ctx, `UPDATE nanovm_leases SET epoch = epoch + 1 WHERE trace_id = 'x'`); err != nil {
		t.Fatal(err)
	}
	db.cmu.Lock()
	tip := db.head
	db.cmu.Unlock()
	if !tip.known {
		t.Fatal("the committer does not know the head after its own commits")
	}
	a := planOf(t, db, tip, stepOf("x", lx, 2))
	b := planOf(t, db, a.leave, stepOf("y", ly, 2))
	ra := db.sendFast(a)()
	if ra.err == nil || !ra.again || ra.moved {
		t.Fatalf("A (a lost lease) = %+v; want refused before COMMIT, not by the head", ra)
	}
	rb := db.sendFast(b)()
	if rb.err == nil || !rb.again || !rb.moved {
		t.Fatalf("B (built on A, which failed) = %+v; want refused by the head condition", rb)
	}
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM nanovm_steps WHERE exec_id = 'y' AND idx = 2`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("B wrote y's step 2 (%d rows, %v)", n, err)
	}
	var seq int64
	if err := db.pool.QueryRow(ctx, `SELECT seq FROM nanovm_chain_head`).Scan(&seq); err != nil || uint64(seq) != tip.seq {
		t.Fatalf("head seq = %d (%v); want %d, where A and B found it", seq, err, tip.seq)
	}
	// Through the committer the same step commits (two trips: the
	// committer forgot what failed).
	db.batchFailed(b.batch, true)
	if _, err := db.CommitStep(ctx, stepOf("y", ly, 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CommitStep(ctx, stepOf("x", lx, 2)); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("x's step with the old lease = %v; want ErrLeaseLost", err)
	}
	if rep, err := db.VerifyChain(ctx, ""); err != nil || rep.Broken != nil || rep.Checked != 5 {
		t.Fatalf("VerifyChain = %+v, %v", rep, err)
	}
}

// TestFastHeadMovedByAnotherReplica: replica b appends while replica a's
// committer expects the head it left; a's next one-trip batch is refused
// by the head condition (or the envelopes' key) and runs again as two
// trips, and the one chain verifies.
func TestFastHeadMovedByAnotherReplica(t *testing.T) {
	dsn := pgtest.Fresh(t)
	ctx := context.Background()
	a, err := Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, db := range []*DB{a, b} {
		if _, err := db.Heartbeat(ctx, store.Replica{ID: "r", PolicyHash: "p"}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	lx := startKnown(t, a, "x", "r")
	before := a.CommitStats()
	ly := startKnown(t, b, "y", "r")
	if _, err := a.CommitStep(ctx, stepOf("x", lx, 2)); err != nil {
		t.Fatal(err)
	}
	if st := a.CommitStats(); st.Again != before.Again+1 {
		t.Fatalf("a's batch after b appended: %+v (before %+v); want one refused and run again", st, before)
	}
	// Known again, a's next batch is one trip.
	if _, err := a.CommitStep(ctx, stepOf("x", lx, 3)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CommitStep(ctx, stepOf("y", ly, 2)); err != nil {
		t.Fatal(err)
	}
	if rep, err := a.VerifyChain(ctx, ""); err != nil || rep.Broken != nil || rep.Checked != 7 {
		t.Fatalf("VerifyChain = %+v, %v", rep, err)
	}
}

// TestFastAcquisitions runs acquisitions in one-trip batches: a new run,
// a run recorded already (StartRun replaces it under the new lease), and a
// lease another live replica holds (ErrLeaseHeld naming it, nothing
// recorded).
func TestFastAcquisitions(t *testing.T) {
	dsn := pgtest.Fresh(t)
	ctx := context.Background()
	db, err := Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, id := range []string{"a", "b"} {
		if _, err := db.Heartbeat(ctx, store.Replica{ID: id, PolicyHash: "p"}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	startKnown(t, db, "x", "a")
	oneTrip := func(what string, fn func()) {
		t.Helper()
		before := db.CommitStats()
		fn()
		if after := db.CommitStats(); after.OneTrip != before.OneTrip+1 || after.Again != before.Again {
			t.Fatalf("%s: commit stats %+v, before %+v; want one more one-trip batch", what, after, before)
		}
	}
	run := store.Run{ID: "w", ProgramID: "p", Status: kernel.StatusRunning, CreatedAt: time.Unix(2, 0), Input: json.RawMessage(`{"in":1}`)}
	var l1 store.Lease
	oneTrip("a new run", func() {
		var err error
		if _, l1, err = db.StartRun(ctx, run, "a"); err != nil || l1.Epoch != 1 || l1.Owner != "a" {
			t.Fatalf("StartRun = %+v, %v", l1, err)
		}
	})
	if got, err := db.Run(ctx, "w"); err != nil || string(got.Input) != `{"in":1}` || got.Status != kernel.StatusRunning {
		t.Fatalf("Run(w) = %+v, %v", got, err)
	}
	oneTrip("a step of the new run", func() {
		if _, err := db.CommitStep(ctx, stepOf("w", l1, 0)); err != nil {
			t.Fatal(err)
		}
	})
	oneTrip("the release", func() {
		if err := db.ReleaseLease(ctx, l1); err != nil {
			t.Fatal(err)
		}
	})
	oneTrip("b's acquisition of a lease", func() {
		if l, err := db.AcquireLease(ctx, "v", "b"); err != nil || l.Epoch != 1 || l.Owner != "b" {
			t.Fatalf("AcquireLease = %+v, %v", l, err)
		}
	})
	oneTrip("a's acquisition of b's live lease", func() {
		held, err := db.AcquireLease(ctx, "v", "a")
		if !errors.Is(err, store.ErrLeaseHeld) || held.Owner != "b" || held.Epoch != 1 {
			t.Fatalf("AcquireLease of a held lease = %+v, %v; want ErrLeaseHeld naming b at epoch 1", held, err)
		}
	})
	// The acquisition is one trip; replacing the record is EndRun's
	// transaction after it.
	oneTrip("b's acquisition of the recorded run", func() {
		out, l2, err := db.StartRun(ctx, run, "b")
		if err != nil || l2.Epoch != 2 || l2.Owner != "b" || out.ID != "w" {
			t.Fatalf("StartRun of a recorded run = %+v, %+v, %v", out, l2, err)
		}
	})
	if _, err := db.CommitStep(ctx, stepOf("w", l1, 1)); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("a step under the released lease = %v; want ErrLeaseLost", err)
	}
	if steps, err := db.Steps(ctx, "w", 0, 0); err != nil || len(steps) != 1 {
		t.Fatalf("Steps(w) = %d, %v; want the one step", len(steps), err)
	}
}
