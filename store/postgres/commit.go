package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nanovm/nano-vm-mcp/internal/jsonwrite"
	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/store"
)

// Group commit. Every durable write a run makes on its own (a step
// commit, leasing and recording a new run, giving a lease up) is a
// request to one committer goroutine per replica, which takes everything
// queued and writes it in one transaction of two round trips (or of one,
// when every member is a run the committer knows: fast.go):
//
//  1. BEGIN; lock the chain head (FOR UPDATE); acquire the leases asked
//     for (one multi-row INSERT … ON CONFLICT … RETURNING); read the
//     batch's execution rows with each run's largest step index (a
//     run's steps are a prefix, so that says which index is next), the
//     leases that fence them and the idempotency keys of the runs that
//     end (FOR UPDATE);
//  2. the checks run in Go on what was read (plus what earlier members of
//     the batch add), refused members are told at once, and the rest is
//     written with one multi-row statement per table (unnest of arrays),
//     the head updated, and COMMIT.
//
// A lone request pays the two round trips and one WAL flush; while one
// batch commits the next one fills, so throughput grows with concurrency
// and a run costs a share of a few transactions, not transactions of its
// own. The head lock is held from the first round trip to the end of the
// commit, WAL flush included: that is the price of one global gap-free
// chain, paid once per batch, not per step. Every transaction that takes
// the head takes it first, before any lease or idempotency row, so
// batches of different replicas never deadlock; and every write of a
// lease row holds the head, so a transaction holding it reads leases
// that cannot change before it commits (no row lock needed to fence).

type reqKind uint8

const (
	// kindStep is a step commit (StartCommitStep).
	kindStep reqKind = iota
	// kindAcquire acquires a lease (AcquireLease) and, with withRun,
	// records a new run under it (StartRun).
	kindAcquire
	// kindRelease gives a lease up (ReleaseLease).
	kindRelease
)

type stepReq struct {
	kind     reqKind
	sc       store.StepCommit
	step     []byte
	rec      []byte // the execution record, when known ahead (CreatedAt set)
	recAt    int64
	seal     *store.PreparedEnvelope
	draft    store.Envelope
	hasEnv   bool
	updated  store.Run
	complete func(*store.Envelope, error)

	// kindAcquire: owner asks for sc.Run.ID's lease; lease is the lease
	// acquired (or the holder's, with ErrLeaseHeld); withRun records
	// sc.Run (rec, recAt) under it unless it existed already (existed).
	// kindRelease: lease is the lease to give up.
	owner   string
	withRun bool
	existed bool
	lease   store.Lease
}

// ends reports whether r is a fenced write recording its run as no longer
// running: it then finishes the run's idempotency key and releases the
// lease in the same transaction (store.RunEnd).
func (r *stepReq) ends() bool {
	return r.kind == kindStep && r.sc.Lease != nil && !r.sc.KeepRun && r.sc.Run.Status != kernel.StatusRunning
}

// CommitStep implements store.RunStore.
func (db *DB) CommitStep(ctx context.Context, sc store.StepCommit) (*store.Envelope, error) {
	return db.StartCommitStep(ctx, sc).Wait()
}

// StartCommitStep implements store.RunStore.
func (db *DB) StartCommitStep(ctx context.Context, sc store.StepCommit) *store.PendingCommit {
	pc, complete := store.NewPendingCommit()
	r, err := db.prepareStep(sc)
	if err != nil {
		complete(nil, err)
		return pc
	}
	id, index := sc.Run.ID, sc.Index
	r.complete = func(env *store.Envelope, err error) {
		if err != nil {
			complete(nil, fmt.Errorf("commit step %q/%d: %w", id, index, err))
			return
		}
		complete(env, nil)
	}
	db.enqueue(ctx, r)
	return pc
}

// enqueue hands r to the committer (or completes it with the reason it
// cannot be).
func (db *DB) enqueue(ctx context.Context, r *stepReq) {
	if err := ctx.Err(); err != nil {
		r.complete(nil, err)
		return
	}
	db.mu.RLock()
	if db.closed {
		db.mu.RUnlock()
		r.complete(nil, store.ErrClosed)
		return
	}
	db.queue <- r
	db.mu.RUnlock()
}

// submit enqueues r and waits for its outcome.
func (db *DB) submit(ctx context.Context, r *stepReq) error {
	pc, complete := store.NewPendingCommit()
	r.complete = complete
	db.enqueue(ctx, r)
	_, err := pc.Wait()
	return err
}

func (db *DB) prepareStep(sc store.StepCommit) (*stepReq, error) {
	if err := store.CheckRun(sc.Run); err != nil {
		return nil, fmt.Errorf("commit step: %w", err)
	}
	id := sc.Run.ID
	if sc.Index < 0 {
		return nil, fmt.Errorf("commit step %q/%d: negative index", id, sc.Index)
	}
	if !jsonwrite.Valid(sc.Step) {
		return nil, fmt.Errorf("commit step %q/%d: step is not valid JSON", id, sc.Index)
	}
	r := &stepReq{sc: sc, step: append([]byte(nil), sc.Step...)}
	now := db.now().UTC()
	if !sc.KeepRun {
		e := sc.Run
		e.Input, e.Program = nil, nil
		e.UpdatedAt = now
		if !e.CreatedAt.IsZero() {
			e.CreatedAt = e.CreatedAt.UTC()
			v, err := store.EncodeRun(&e)
			if err != nil {
				return nil, fmt.Errorf("commit step %q/%d: encode execution: %w", id, sc.Index, err)
			}
			r.rec, r.recAt = v, e.CreatedAt.UnixNano()
		}
		r.updated = e
	}
	if sc.Envelope != nil {
		d := *sc.Envelope
		if d.TraceID == "" {
			d.TraceID = id
		}
		if d.TraceID != id || (d.StepIndex != 0 && d.StepIndex != sc.Index) {
			return nil, fmt.Errorf("commit step %q/%d: envelope is for %q/%d", id, sc.Index, d.TraceID, d.StepIndex)
		}
		d.StepIndex = sc.Index
		d.RecordSHA256 = store.RecordSHA256(sc.Step)
		d.RunSHA256, d.RunStatus = "", ""
		if r.rec != nil {
			d.RunSHA256, d.RunStatus = store.RecordSHA256(r.rec), string(sc.Run.Status)
		}
		s, err := store.PrepareEnvelope(d)
		if err != nil {
			return nil, fmt.Errorf("commit step %q/%d: %w", id, sc.Index, err)
		}
		// The prepared draft holds the sealer's copy of the payload: the
		// caller may reuse its bytes once this returns.
		r.seal, r.draft, r.hasEnv = s, s.Draft(), true
	}
	return r, nil
}

type leaseRow struct {
	owner string
	epoch uint64
}

// CommitStats counts the step commits of this replica.
type CommitStats struct {
	// Batches is how many transactions the committer ran; Commits how
	// many step commits they carried (Commits/Batches is the mean group).
	Batches, Commits int64
	// HeadHeld is the time the two-trip batches held the chain head,
	// from the first round trip to the end of COMMIT (WAL flush
	// included): the serialised part of every replica's commits. (A
	// one-trip batch holds it for its statements and COMMIT, on the
	// server, not measured here.)
	HeadHeld time.Duration
	// OneTrip is how many batches committed in one round trip (fast.go);
	// Again how many one-trip batches a statement refused, run again as
	// two trips.
	OneTrip, Again int64
}

// CommitStats returns the counts since Open.
func (db *DB) CommitStats() CommitStats {
	return CommitStats{Batches: db.batches.Load(), Commits: db.commits.Load(), HeadHeld: time.Duration(db.headHeld.Load()), OneTrip: db.fastBatches.Load(), Again: db.fastAgain.Load()}
}

// runBatch sends batch's transaction (see the top of the file) and
// returns the function that waits for its COMMIT and completes every
// member.
func (db *DB) runBatch(batch []*stepReq) (finish func(), leave headState) {
	ctx := context.Background()
	outs := make([]*store.Envelope, len(batch))
	errs := make([]error, len(batch))
	var held time.Time
	wait := db.writeBatch(ctx, batch, outs, errs, &held, &leave)
	return func() {
		err := wait()
		if err != nil {
			db.batchFailed(batch, false)
		}
		if !held.IsZero() {
			db.headHeld.Add(int64(time.Since(held)))
		}
		db.batches.Add(1)
		db.commits.Add(int64(len(batch)))
		for i, r := range batch {
			switch {
			case errs[i] != nil:
				r.complete(nil, errs[i])
			case err != nil:
				r.complete(nil, err)
			default:
				r.complete(outs[i], nil)
			}
		}
	}, leave
}

// writeBatch runs batch's first round trip and its checks and sends its
// writes; wait reads their outcome and gives the connection back. held is
// set when the chain head was granted.
func (db *DB) writeBatch(ctx context.Context, batch []*stepReq, outs []*store.Envelope, errs []error, held *time.Time, leave *headState) (wait func() error) {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return func() error { return err }
	}
	failed := func(err error) func() error {
		rollback(conn.Conn())
		conn.Release()
		return func() error { return err }
	}
	var ids []string
	seenID := map[string]bool{}
	var acqIDs, acqOwners []string
	acqSeen := map[string]bool{}
	var idemKeys []string
	addID := func(id string) {
		if !seenID[id] {
			seenID[id] = true
			ids = append(ids, id)
		}
	}
	for i, r := range batch {
		id := r.sc.Run.ID
		switch r.kind {
		case kindAcquire:
			if acqSeen[id] {
				// One multi-row upsert cannot touch a row twice.
				errs[i] = fmt.Errorf("acquire lease of %q: %w (acquired by another call at the same moment)", id, store.ErrLeaseHeld)
				continue
			}
			acqSeen[id] = true
			acqIDs = append(acqIDs, id)
			acqOwners = append(acqOwners, r.owner)
			addID(id)
			continue
		case kindRelease:
			continue
		}
		addID(id)
		if r.ends() && r.sc.Run.IdempotencyKey != "" && r.sc.Run.Status.Terminal() {
			idemKeys = append(idemKeys, r.sc.Run.IdempotencyKey)
		}
	}
	b := &pgx.Batch{}
	b.Queue(`BEGIN`)
	b.Queue(`SELECT seq, hash FROM nanovm_chain_head WHERE id = 1 FOR UPDATE`)
	if len(acqIDs) > 0 {
		b.Queue(`INSERT INTO nanovm_leases AS l (trace_id, owner, epoch, released)
SELECT t, o, 1, false FROM unnest($1::text[], $2::text[]) AS u(t, o)
ON CONFLICT (trace_id) DO UPDATE SET owner = EXCLUDED.owner, epoch = l.epoch + 1, released = false
WHERE l.released OR l.owner = EXCLUDED.owner
   OR NOT EXISTS (SELECT 1 FROM nanovm_replicas r WHERE r.id = l.owner AND r.expires_at > clock_timestamp())
RETURNING trace_id`, acqIDs, acqOwners)
	}
	if len(ids) > 0 {
		// A run's steps are always a prefix (gaps are refused), so its
		// largest index says which are taken: one index probe per run.
		// The lease is read after the acquisitions above, and without a
		// row lock: every write of a lease holds the chain head (batches,
		// EndRun, DeleteProgram), which this transaction holds.
		b.Queue(`SELECT u.id, e.created_ns, (SELECT max(s.idx) FROM nanovm_steps s WHERE s.exec_id = u.id), l.owner, l.epoch
FROM unnest($1::text[]) AS u(id) LEFT JOIN nanovm_executions e ON e.id = u.id LEFT JOIN nanovm_leases l ON l.trace_id = u.id`, ids)
	}
	if len(idemKeys) > 0 {
		b.Queue(`SELECT key, record FROM nanovm_idempotency WHERE key = ANY($1) ORDER BY key FOR UPDATE`, idemKeys)
	}
	var (
		headSeq  uint64
		headHash string
	)
	created := map[string]int64{}
	next := map[string]int{} // a run's first free step index
	leases := map[string]leaseRow{}
	acquired := map[string]bool{}
	idem := map[string][]byte{}
	res := conn.SendBatch(ctx, b)
	read := func() error {
		if _, err := res.Exec(); err != nil {
			return err
		}
		if err := res.QueryRow().Scan(&headSeq, &headHash); err != nil {
			return fmt.Errorf("chain head: %w", err)
		}
		if len(acqIDs) > 0 {
			var id string
			if err := readRows(res, func(rows pgx.Rows) error {
				if err := rows.Scan(&id); err != nil {
					return err
				}
				acquired[id] = true
				return nil
			}); err != nil {
				return fmt.Errorf("acquire leases: %w", err)
			}
		}
		if len(ids) > 0 {
			var id string
			var ns, epoch *int64
			var last *int32
			var owner *string
			if err := readRows(res, func(rows pgx.Rows) error {
				if err := rows.Scan(&id, &ns, &last, &owner, &epoch); err != nil {
					return err
				}
				if ns != nil {
					created[id] = *ns
				}
				if last != nil {
					next[id] = int(*last) + 1
				}
				if owner != nil && epoch != nil {
					leases[id] = leaseRow{owner: *owner, epoch: uint64(*epoch)}
				}
				return nil
			}); err != nil {
				return err
			}
		}
		if len(idemKeys) > 0 {
			var k string
			if err := readRows(res, func(rows pgx.Rows) error {
				var v []byte
				if err := rows.Scan(&k, &v); err != nil {
					return err
				}
				idem[k] = v
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	}
	err = read()
	if cerr := res.Close(); err == nil {
		err = cerr
	}
	*held = time.Now()
	if err != nil {
		return failed(err)
	}

	// The checks, in queue order, over what was read and what earlier
	// members add.
	now := db.now().UTC()
	ws := &writeSet{}
	putExec := func(id string, run *store.Run, at int64, rec []byte) {
		ws.putExec(id, run, at, rec)
		created[id] = at
	}
	putBody := ws.putBody
	seq, hash := headSeq, headHash
	for i, r := range batch {
		if errs[i] != nil {
			continue
		}
		sc := &r.sc
		id := sc.Run.ID
		switch r.kind {
		case kindAcquire:
			l := leases[id]
			r.lease = store.Lease{TraceID: id, Owner: l.owner, Epoch: l.epoch}
			if !acquired[id] {
				errs[i] = fmt.Errorf("acquire lease of %q: %w (%s)", id, store.ErrLeaseHeld, l.owner)
				continue
			}
			if r.withRun {
				if _, ok := created[id]; ok {
					// Recorded already: StartRun replaces it under the
					// lease, with an envelope, as PutRun does.
					r.existed = true
					continue
				}
				putExec(id, &sc.Run, r.recAt, r.rec)
				putBody(id, sc.Run.Input, sc.Run.Program)
			}
			continue
		case kindRelease:
			ws.relIDs = append(ws.relIDs, id)
			ws.relOwners = append(ws.relOwners, r.lease.Owner)
			ws.relEpochs = append(ws.relEpochs, int64(r.lease.Epoch))
			ws.notify = append(ws.notify, id)
			continue
		}
		if sc.Lease != nil {
			l, ok := leases[id]
			if !ok || l.owner != sc.Lease.Owner || l.epoch != sc.Lease.Epoch {
				errs[i] = fmt.Errorf("%w (lease epoch %d of %s)", store.ErrLeaseLost, sc.Lease.Epoch, sc.Lease.Owner)
				continue
			}
		}
		if sc.Index < next[id] {
			errs[i] = store.ErrStepExists
			continue
		}
		if sc.Index > next[id] {
			errs[i] = store.ErrStepGap
			continue
		}
		var rec []byte
		if sc.KeepRun {
			if _, ok := created[id]; !ok {
				errs[i] = fmt.Errorf("execution: %w", store.ErrNotFound)
				continue
			}
		} else {
			rec = r.rec
			at := r.recAt
			if rec == nil {
				e := r.updated
				if ns, ok := created[id]; ok {
					e.CreatedAt = timeOf(ns)
				} else {
					e.CreatedAt = now
				}
				v, err := store.EncodeRun(&e)
				if err != nil {
					errs[i] = fmt.Errorf("encode execution: %w", err)
					continue
				}
				rec, at = v, e.CreatedAt.UnixNano()
			}
			putExec(id, &sc.Run, at, rec)
			putBody(id, sc.Run.Input, sc.Run.Program)
		}
		if r.hasEnv {
			s := r.seal
			if rec != nil && r.rec == nil {
				// The record was encoded here: seal its bytes.
				d := r.draft
				d.RunSHA256, d.RunStatus = store.RecordSHA256(rec), string(sc.Run.Status)
				var err error
				if s, err = store.PrepareEnvelope(d); err != nil {
					errs[i] = err
					continue
				}
			}
			env, v, err := s.Link(seq, hash, now)
			if err != nil {
				errs[i] = err
				continue
			}
			seq, hash = env.Seq, env.Hash
			ws.eSeq = append(ws.eSeq, int64(env.Seq))
			ws.eIDs = append(ws.eIDs, env.TraceID)
			ws.eVals = append(ws.eVals, v)
			outs[i] = &env
		}
		next[id] = sc.Index + 1
		ws.addStep(r)
		if r.ends() {
			if key := sc.Run.IdempotencyKey; key != "" && sc.Run.Status.Terminal() {
				if v, err := finishedIdem(key, idem[key], id, string(sc.Run.Status)); err == nil && v != nil {
					idem[key] = v
					ws.idemOut = append(ws.idemOut, key)
				}
			}
		}
	}

	ws.seq, ws.hash, ws.idem = seq, hash, idem
	*leave = headState{seq: seq, hash: hash, known: true}
	w := &pgx.Batch{}
	ws.queue(w)
	w.Queue(`COMMIT`)
	wres := conn.SendBatch(ctx, w)
	return func() error {
		var err error
		for range w.Len() {
			if _, err = wres.Exec(); err != nil {
				break
			}
		}
		if cerr := wres.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return failed(err)()
		}
		conn.Release()
		for i, r := range batch {
			if errs[i] == nil && r.ends() {
				db.markReleased(*r.sc.Lease)
			}
		}
		db.learnSlow(batch, errs, created, next, ws.seq, ws.hash)
		return nil
	}
}

// readRows reads the next result of a batch row by row.
func readRows(res pgx.BatchResults, fn func(pgx.Rows) error) error {
	rows, err := res.Query()
	if err != nil {
		return err
	}
	for rows.Next() {
		if err := fn(rows); err != nil {
			rows.Close()
			return err
		}
	}
	rows.Close()
	return rows.Err()
}

// finishedIdem returns key's stored record v with status set, or nil when
// there is nothing to finish: the key is absent, undecodable (it is left
// for the operator; the run's outcome is stored regardless), or names
// another run (claimed again after it expired).
func finishedIdem(key string, v []byte, traceID, status string) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	cur, err := idemRecord(key, v)
	if err != nil || cur.TraceID != traceID {
		return nil, err
	}
	cur.Status = status
	return json.Marshal(&cur)
}

// maxReleased bounds the leases remembered as released by their run's
// last write (a caller that never gives them up cannot grow it forever;
// a forgotten one is released again, harmlessly).
const maxReleased = 1 << 14

// markReleased remembers that l was released by its run's last write, so
// that the ReleaseLease that follows writes nothing.
func (db *DB) markReleased(l store.Lease) {
	db.relMu.Lock()
	if len(db.released) >= maxReleased {
		clear(db.released)
	}
	db.released[l] = struct{}{}
	db.relMu.Unlock()
}

// takeReleased reports whether l was released already, forgetting it.
func (db *DB) takeReleased(l store.Lease) bool {
	db.relMu.Lock()
	defer db.relMu.Unlock()
	if _, ok := db.released[l]; ok {
		delete(db.released, l)
		return true
	}
	return false
}

// rollback ends a failed transaction on conn (a no-op outside one).
func rollback(conn *pgx.Conn) {
	_, _ = conn.Exec(context.Background(), "ROLLBACK")
}
