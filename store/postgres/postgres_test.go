package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/nanovm/nano-vm-mcp/kernel"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nanovm/nano-vm-mcp/store"
	"github.com/nanovm/nano-vm-mcp/store/postgres"
	"github.com/nanovm/nano-vm-mcp/store/postgres/pgtest"
	"github.com/nanovm/nano-vm-mcp/store/storetest"
)

// TestRedact ensures a DSN's password never survives Redact, in the user
// info or as a parameter, and that everything else does.
func TestRedact(t *testing.T) {
	tests := []struct {
		dsn, want string
	}{
		{"postgres://u:s3cret@db.example:5432/nano?sslmode=require", "postgres://u:xxxxx@db.example:5432/nano?sslmode=require"},
		{"postgresql://u@db/nano", "postgresql://u@db/nano"},
		{"postgres:///nano?host=/run/pg&password=s3cret&user=u", "postgres:///nano?host=/run/pg&password=xxxxx&user=u"},
		{"postgres://u:s3cret@[::1", "postgres://…"},
	}
	for _, tc := range tests {
		got := postgres.Redact(tc.dsn)
		if got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.dsn, got, tc.want)
		}
		if strings.Contains(got, "s3cret") {
			t.Errorf("Redact(%q) kept the password", tc.dsn)
		}
	}
}

// TestOpenErrorHidesPassword ensures a failed Open names the database
// without its password.
func TestOpenErrorHidesPassword(t *testing.T) {
	for _, dsn := range []string{
		"postgres://nano:s3cret@127.0.0.1:1/nano?connect_timeout=5",
		"postgres://127.0.0.1:1/nano?password=s3cret&connect_timeout=5",
	} {
		_, err := postgres.Open(context.Background(), dsn, nil)
		if err == nil {
			t.Fatalf("Open(%s) succeeded against a closed port", postgres.Redact(dsn))
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open error shows the password: %v", err)
		}
		if !strings.Contains(err.Error(), "127.0.0.1:1") {
			t.Errorf("Open error does not name the database: %v", err)
		}
	}
}

// TestIsDSN ensures only postgres:// and postgresql:// URLs select
// PostgreSQL; everything else stays a bbolt file.
func TestIsDSN(t *testing.T) {
	for addr, want := range map[string]bool{
		"postgres://h/db": true, "postgresql://h/db": true, "POSTGRES://h/db": true,
		"nano_vm_mcp.db": false, "/var/lib/postgres/x.db": false, "./postgres:/x": false, "": false,
	} {
		if got := postgres.IsDSN(addr); got != want {
			t.Errorf("IsDSN(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestSchemaTooNew ensures a database written by a newer schema is
// refused, saying so, and left untouched; and that a second Open of a
// current database (another replica) migrates nothing.
func TestSchemaTooNew(t *testing.T) {
	dsn := dsnOf(t)
	db, err := postgres.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	again, err := postgres.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatalf("reopening a current database: %v", err)
	}
	again.Close()
	exec(t, dsn, `UPDATE nanovm_meta SET value = '99' WHERE key = 'schema_version'`)
	_, err = postgres.Open(context.Background(), dsn, nil)
	if !errors.Is(err, store.ErrSchemaTooNew) || !strings.Contains(err.Error(), "schema 99") {
		t.Fatalf("Open of a schema-99 database = %v, want ErrSchemaTooNew naming it", err)
	}
	var v string
	queryRow(t, dsn, `SELECT convert_from(value, 'UTF8') FROM nanovm_meta WHERE key = 'schema_version'`, &v)
	if v != "99" {
		t.Errorf("the refused database was rewritten: schema_version %q", v)
	}
}

// TestReplicasOpenAtOnce ensures replicas starting together on an empty
// database migrate it once, without error.
func TestReplicasOpenAtOnce(t *testing.T) {
	dsn := dsnOf(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := postgres.Open(context.Background(), dsn, nil)
			if err == nil {
				db.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestOneChainAcrossReplicas ensures commits from several replicas, each
// grouping its own, form one gap-free chain that verifies from any.
func TestOneChainAcrossReplicas(t *testing.T) {
	dsn := dsnOf(t)
	var dbs []*postgres.DB
	for range 3 {
		db, err := postgres.Open(context.Background(), dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs = append(dbs, db)
	}
	const runs, steps = 30, 8
	ctx := context.Background()
	storetest.Parallel(t, runs, func(r int) error {
		db := dbs[r%len(dbs)]
		id := fmt.Sprint("run-", r)
		ex, err := db.PutRun(ctx, store.Run{ID: id, Status: kernel.StatusRunning, Input: []byte(`{}`), Program: []byte(`{}`)})
		if err != nil {
			return err
		}
		ex.Input, ex.Program = nil, nil
		for i := range steps {
			if i == steps-1 {
				ex.Status = "success"
			}
			env := &store.Envelope{StepID: fmt.Sprint("s", i)}
			if i == 0 {
				env.InputSHA256, env.ProgramSHA256 = store.RecordSHA256([]byte(`{}`)), store.RecordSHA256([]byte(`{}`))
			}
			if _, err := db.CommitStep(ctx, store.StepCommit{Run: ex, KeepRun: i > 0 && i < steps-1, Index: i,
				Step: []byte(fmt.Sprint(i)), Envelope: env}); err != nil {
				return err
			}
		}
		return nil
	})
	for i, db := range dbs {
		rep, err := db.VerifyChain(ctx, "")
		if err != nil || !rep.OK || rep.Checked != runs*steps || rep.RecordsChecked != runs*(steps+3) {
			t.Fatalf("replica %d: VerifyChain = %+v, %v; want OK with %d envelopes and %d records", i, rep, err, runs*steps, runs*(steps+3))
		}
	}
}

// TestLeaseFencing ensures a step commit carrying a lease is written only
// while the lease holds: once another replica took the run over (the
// first's heartbeat lapsed), the first's commit is refused with
// ErrLeaseLost and writes nothing, and the new holder's goes through.
func TestLeaseFencing(t *testing.T) {
	dsn := dsnOf(t)
	ctx := context.Background()
	a := openAt(t, dsn)
	b := openAt(t, dsn)
	if _, err := a.Heartbeat(ctx, store.Replica{ID: "a", PolicyHash: "p"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Heartbeat(ctx, store.Replica{ID: "b", PolicyHash: "p"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	la, err := a.AcquireLease(ctx, "t", "a")
	if err != nil || la.Epoch != 1 {
		t.Fatalf("first lease = %+v, %v", la, err)
	}
	if _, err := a.PutRun(ctx, store.Run{ID: "t", Status: kernel.StatusRunning}); err != nil {
		t.Fatal(err)
	}
	commit := func(db *postgres.DB, l store.Lease, i int) error {
		_, err := db.CommitStep(ctx, store.StepCommit{Run: store.Run{ID: "t", Status: kernel.StatusRunning},
			KeepRun: true, Index: i, Step: []byte(fmt.Sprint(i)), Envelope: &store.Envelope{StepID: "s"}, Lease: &l})
		return err
	}
	if err := commit(a, la, 0); err != nil {
		t.Fatal(err)
	}
	if orphans, err := b.Orphans(ctx, 0); err != nil || len(orphans) != 0 {
		t.Fatalf("orphans while a holds the lease = %v, %v", orphans, err)
	}
	if held, err := b.AcquireLease(ctx, "t", "b"); !errors.Is(err, store.ErrLeaseHeld) || held.Owner != "a" {
		t.Fatalf("b's acquisition of a live lease = %+v, %v; want ErrLeaseHeld naming a", held, err)
	}
	// a's heartbeat lapses (a heartbeat that expired at once).
	if _, err := a.Heartbeat(ctx, store.Replica{ID: "a", PolicyHash: "p"}, -time.Second); err != nil {
		t.Fatal(err)
	}
	orphans, err := b.Orphans(ctx, 0)
	if err != nil || len(orphans) != 1 || orphans[0].ID != "t" {
		t.Fatalf("orphans after a's heartbeat lapsed = %v, %v; want t", orphans, err)
	}
	lb, err := b.AcquireLease(ctx, "t", "b")
	if err != nil || lb.Epoch != 2 {
		t.Fatalf("takeover lease = %+v, %v; want epoch 2", lb, err)
	}
	if err := commit(a, la, 1); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("commit with the lost lease = %v, want ErrLeaseLost", err)
	}
	if steps, _ := b.Steps(ctx, "t", 0, 0); len(steps) != 1 {
		t.Fatalf("a fenced commit wrote a step: %d steps", len(steps))
	}
	if err := commit(b, lb, 1); err != nil {
		t.Fatalf("the new holder's commit: %v", err)
	}
	// Released, the run is any replica's at once.
	if err := b.ReleaseLease(ctx, lb); err != nil {
		t.Fatal(err)
	}
	if orphans, _ := a.Orphans(ctx, 0); len(orphans) != 1 {
		t.Fatalf("a released running execution is not an orphan: %v", orphans)
	}
	if rep, err := a.VerifyChain(ctx, ""); err != nil || rep.Broken != nil || rep.Checked != 2 {
		t.Fatalf("VerifyChain = %+v, %v", rep, err)
	}
}

// TestVaultKeyCheck ensures the first key a database sees is the only
// one later replicas may use.
func TestVaultKeyCheck(t *testing.T) {
	dsn := dsnOf(t)
	ctx := context.Background()
	a, b := openAt(t, dsn), openAt(t, dsn)
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	tests := []struct {
		name    string
		db      *postgres.DB
		key     []byte
		wantErr error
	}{
		{"first key is recorded", a, k1, nil},
		{"same key on another replica", b, k1, nil},
		{"another key", b, k2, store.ErrVaultKeyMismatch},
		{"first key again", a, k1, nil},
	}
	for _, tc := range tests {
		if err := store.CheckVaultKey(ctx, tc.db, tc.key); !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.wantErr)
		}
	}
}

// TestToolsChangedNotifies ensures a tool registered or removed through
// one replica tells the others.
func TestToolsChangedNotifies(t *testing.T) {
	dsn := dsnOf(t)
	ctx := context.Background()
	a, b := openAt(t, dsn), openAt(t, dsn)
	// The listener connects in the background: register until b hears.
	deadline := registerUntilHeard(t, a, b)
	if err := a.RemoveTool(ctx, "echo"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.ToolsChanged():
	case <-deadline:
		t.Fatal("replica b never heard of a's removal")
	}
	if _, err := b.Tool(ctx, "echo"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("b sees the removed tool: %v", err)
	}
}

// registerUntilHeard registers the tool "echo" through a until b's
// listener tells of it, which says b listens, and returns the 30-second
// deadline it waited under, for the test's later waits.
func registerUntilHeard(t *testing.T, a, b *postgres.DB) <-chan time.Time {
	t.Helper()
	ctx := context.Background()
	mod := []byte("\x00asm")
	rec := store.ToolRecord{Name: "echo", ModuleSHA256: store.RecordSHA256(mod), ManifestSHA256: "m", Manifest: []byte(`{}`)}
	deadline := time.After(30 * time.Second)
	for heard := false; !heard; {
		if err := a.PutToolVersion(ctx, rec, mod); err != nil {
			t.Fatal(err)
		}
		select {
		case <-b.ToolsChanged():
			heard = true
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatal("replica b never heard of a's registration")
		}
	}
	return deadline
}

func openAt(t testing.TB, dsn string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func exec(t testing.TB, dsn, sql string) {
	t.Helper()
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(context.Background(), sql); err != nil {
		t.Fatal(err)
	}
}

func queryRow(t testing.TB, dsn, sql string, dest ...any) {
	t.Helper()
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if err := c.QueryRow(context.Background(), sql).Scan(dest...); err != nil {
		t.Fatal(err)
	}
}

// TestRunEndFencing ensures a run's last writes are fenced like its step
// commits: once another replica took the run's lease (epoch bumped), the
// old holder's settlement (EndRun: record and idempotency key) and its
// final step commit are refused with ErrLeaseLost, naming both epochs, and
// write nothing (record, key, chain, lease as they were); the new holder's
// final step commit finishes the key and releases the lease in the same
// transaction.
func TestRunEndFencing(t *testing.T) {
	dsn := pgtest.Fresh(t)
	ctx := context.Background()
	a := openAt(t, dsn)
	b := openAt(t, dsn)
	for _, r := range []struct {
		db *postgres.DB
		id string
	}{{a, "a"}, {b, "b"}, {b, "c"}} {
		if _, err := r.db.Heartbeat(ctx, store.Replica{ID: r.id, PolicyHash: "p"}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if _, claimed, err := a.ClaimIdempotencyKey(ctx, "k", "h", "t", 0); err != nil || !claimed {
		t.Fatalf("claim = %v, %v", claimed, err)
	}
	run := store.Run{ID: "t", Status: kernel.StatusRunning, IdempotencyKey: "k", Input: []byte(`{"x":1}`), Program: []byte(`{"steps":[]}`)}
	if _, held, err := b.StartRun(ctx, run, "b"); err != nil || held.Epoch != 1 {
		t.Fatalf("StartRun by b = %+v, %v", held, err)
	}
	// A live holder's lease is not taken, and nothing is recorded then.
	if _, held, err := a.StartRun(ctx, store.Run{ID: "u", Status: kernel.StatusRunning}, "a"); err != nil || held.Epoch != 1 {
		t.Fatalf("StartRun of u = %+v, %v", held, err)
	}
	if _, held, err := b.StartRun(ctx, store.Run{ID: "u", Status: kernel.StatusRunning, ProgramName: "other"}, "b"); !errors.Is(err, store.ErrLeaseHeld) || held.Owner != "a" {
		t.Fatalf("StartRun of a run a holds = %+v, %v; want ErrLeaseHeld naming a", held, err)
	}
	if u, err := b.Run(ctx, "u"); err != nil || u.ProgramName != "" {
		t.Fatalf("a refused StartRun wrote the record: %+v, %v", u, err)
	}
	if err := b.EndRun(ctx, store.RunEnd{Run: &store.Run{ID: "t", Status: kernel.StatusRunning}, Lease: store.Lease{TraceID: "t", Owner: "b", Epoch: 1}}); err != nil {
		t.Fatal(err)
	}
	// takeOver lets the heartbeat of replica lapsed (on db from) lapse and
	// has owner (on db by) take t's lease, which must be at epoch.
	takeOver := func(from *postgres.DB, lapsed string, by *postgres.DB, owner string, epoch uint64) store.Lease {
		t.Helper()
		if _, err := from.Heartbeat(ctx, store.Replica{ID: lapsed, PolicyHash: "p"}, -time.Second); err != nil {
			t.Fatal(err)
		}
		l, err := by.AcquireLease(ctx, "t", owner)
		if err != nil || l.Epoch != epoch {
			t.Fatalf("%s's lease = %+v, %v; want epoch %d", owner, l, err, epoch)
		}
		return l
	}
	// The run restarted on a: b's heartbeat lapses, a takes the lease.
	la := takeOver(b, "b", a, "a", 2)
	step := func(db *postgres.DB, l store.Lease, i int, status kernel.Status) error {
		_, err := db.CommitStep(ctx, store.StepCommit{Run: store.Run{ID: "t", Status: status, IdempotencyKey: "k"},
			Index: i, Step: []byte(fmt.Sprint(i)), Envelope: &store.Envelope{StepID: "s"}, Lease: &l})
		return err
	}
	if err := step(a, la, 0, kernel.StatusRunning); err != nil {
		t.Fatal(err)
	}
	// b comes back and takes the run over from a (epoch 3): a holds an
	// old epoch now.
	lc := takeOver(a, "a", b, "c", 3)
	seq0, _, err := a.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before, err := a.Run(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	done := store.Run{ID: "t", Status: kernel.StatusSuccess, IdempotencyKey: "k", Header: []byte(`{"status":"success"}`)}
	for name, write := range map[string]func() error{
		"settle":            func() error { return a.EndRun(ctx, store.RunEnd{Run: &done, Lease: la}) },
		"finish":            func() error { return a.EndRun(ctx, store.RunEnd{IdempotencyKey: "k", Status: "success", Lease: la}) },
		"final step commit": func() error { return step(a, la, 1, kernel.StatusSuccess) },
	} {
		err := write()
		if !errors.Is(err, store.ErrLeaseLost) || !strings.Contains(err.Error(), "epoch 2 of a") {
			t.Fatalf("%s with the lost lease = %v; want ErrLeaseLost naming epoch 2 of a", name, err)
		}
		if after, err := a.Run(ctx, "t"); err != nil || after.Status != kernel.StatusRunning || !after.UpdatedAt.Equal(before.UpdatedAt) {
			t.Fatalf("%s with the lost lease wrote the record: %+v, %v", name, after, err)
		}
		if rec, err := a.IdempotencyKey(ctx, "k"); err != nil || rec.Status != store.IdempotencyPending {
			t.Fatalf("%s with the lost lease finished the key: %+v, %v", name, rec, err)
		}
		if seq, _, err := a.Head(ctx); err != nil || seq != seq0 {
			t.Fatalf("%s with the lost lease appended: head %d, was %d (%v)", name, seq, seq0, err)
		}
		if _, err := a.AcquireLease(ctx, "t", "a"); !errors.Is(err, store.ErrLeaseHeld) {
			t.Fatalf("%s with the lost lease released c's lease: %v", name, err)
		}
	}
	if steps, _ := a.Steps(ctx, "t", 0, 0); len(steps) != 1 {
		t.Fatalf("a fenced final commit wrote a step: %d steps", len(steps))
	}
	// The holder's final step commit records the end and finishes the
	// key in one transaction.
	if err := step(b, lc, 1, kernel.StatusSuccess); err != nil {
		t.Fatal(err)
	}
	if rec, err := a.IdempotencyKey(ctx, "k"); err != nil || rec.Status != string(kernel.StatusSuccess) || rec.TraceID != "t" {
		t.Fatalf("key after the final commit = %+v, %v; want success", rec, err)
	}
	// A run that suspends lets its lease go with that commit: any
	// replica may resume it.
	lv, err := b.AcquireLease(ctx, "v", "c")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutRun(ctx, store.Run{ID: "v", Status: kernel.StatusRunning}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CommitStep(ctx, store.StepCommit{Run: store.Run{ID: "v", Status: kernel.StatusSuspended},
		Step: []byte(`{}`), Envelope: &store.Envelope{StepID: "s"}, Lease: &lv}); err != nil {
		t.Fatal(err)
	}
	if l, err := a.AcquireLease(ctx, "v", "a"); err != nil || l.Epoch != 2 {
		t.Fatalf("the suspending commit kept the lease: %+v, %v", l, err)
	}
	if rep, err := a.VerifyChain(ctx, "t"); err != nil || !rep.OK {
		t.Fatalf("VerifyChain = %+v, %v", rep, err)
	}
}

// TestRunChangedNotifies ensures a caller waiting on one replica for a
// keyed run of another is woken by that run's last write (NOTIFY in its
// transaction), and only the watchers of that run are.
func TestRunChangedNotifies(t *testing.T) {
	dsn := dsnOf(t)
	ctx := context.Background()
	a, b := openAt(t, dsn), openAt(t, dsn)
	// b's listener connects in the background: a tool registration it
	// hears says it listens.
	deadline := registerUntilHeard(t, a, b)
	if _, err := a.Heartbeat(ctx, store.Replica{ID: "a", PolicyHash: "p"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.ClaimIdempotencyKey(ctx, "k", "h", "t", 0); err != nil {
		t.Fatal(err)
	}
	_, l, err := a.StartRun(ctx, store.Run{ID: "t", Status: kernel.StatusRunning, IdempotencyKey: "k"}, "a")
	if err != nil {
		t.Fatal(err)
	}
	changed, stop := b.RunChanged("t")
	defer stop()
	other, stopOther := b.RunChanged("u")
	defer stopOther()
	if _, err := a.CommitStep(ctx, store.StepCommit{Run: store.Run{ID: "t", Status: kernel.StatusSuccess, IdempotencyKey: "k"},
		Step: []byte(`{}`), Envelope: &store.Envelope{StepID: "s"}, Lease: &l}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-deadline:
		t.Fatal("replica b was never told that t ended")
	}
	select {
	case <-other:
		t.Fatal("the watcher of another run was woken")
	default:
	}
}

// TestStartRunOfARecordedRun ensures StartRun of a run recorded already
// (by a replica that died before its first step) takes the lease and
// replaces the record as PutRun does, sealed by an envelope, keeping its
// creation time, and that the chain and the record verify.
func TestStartRunOfARecordedRun(t *testing.T) {
	dsn := dsnOf(t)
	ctx := context.Background()
	db := openAt(t, dsn)
	if _, err := db.Heartbeat(ctx, store.Replica{ID: "a", PolicyHash: "p"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	first, err := db.PutRun(ctx, store.Run{ID: "w", Status: kernel.StatusRunning, Input: []byte(`{"x":1}`), Program: []byte(`{"p":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	out, l, err := db.StartRun(ctx, store.Run{ID: "w", Status: kernel.StatusRunning, ProgramName: "again", Input: []byte(`{"x":1}`), Program: []byte(`{"p":1}`)}, "a")
	if err != nil || l.Epoch != 1 || l.Owner != "a" {
		t.Fatalf("StartRun = %+v, %v", l, err)
	}
	if !out.CreatedAt.Equal(first.CreatedAt) || out.ProgramName != "again" {
		t.Fatalf("StartRun replaced the record as %+v; want the first creation time %v and the new name", out, first.CreatedAt)
	}
	if got, err := db.Run(ctx, "w"); err != nil || got.ProgramName != "again" || string(got.Input) != `{"x":1}` {
		t.Fatalf("stored record = %+v, %v", got, err)
	}
	envs, err := db.Envelopes(ctx, "w")
	if err != nil || len(envs) != 1 || envs[0].Kind != store.EnvelopeKindRun {
		t.Fatalf("envelopes = %+v, %v; want the replacement's", envs, err)
	}
	if rep, err := db.VerifyChain(ctx, "w"); err != nil || !rep.OK {
		t.Fatalf("VerifyChain = %+v, %v", rep, err)
	}
}
