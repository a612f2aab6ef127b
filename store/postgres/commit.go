package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nanovm/nano-vm-mcp/store"
)

// Group commit. StartCommitStep validates and encodes in the caller's
// goroutine and queues; one committer goroutine per replica takes
// everything queued and writes it in one transaction of two round trips:
//
//  1. BEGIN; lock the chain head (FOR UPDATE); read the batch's execution
//     rows, the steps its members and their predecessors would collide
//     with, and the leases that fence them (FOR SHARE);
//  2. the checks run in Go on what was read (plus what earlier members of
//     the batch add), refused members are told at once, and the rest is
//     written with one multi-row INSERT per table, the head updated, and
//     COMMIT.
//
// A lone commit pays the two round trips and one WAL flush; while one
// batch commits the next one fills, so throughput grows with concurrency.
// The head lock is held from the first round trip to the end of the
// commit, WAL flush included: that is the price of one global gap-free
// chain, paid once per batch, not per step.

type stepReq struct {
	sc       store.StepCommit
	step     []byte
	rec      []byte // the execution record, when known ahead (CreatedAt set)
	recAt    int64
	seal     *store.PreparedEnvelope
	draft    store.Envelope
	hasEnv   bool
	updated  store.Run
	complete func(*store.Envelope, error)
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
	if err := ctx.Err(); err != nil {
		r.complete(nil, err)
		return pc
	}
	db.mu.RLock()
	if db.closed {
		db.mu.RUnlock()
		r.complete(nil, store.ErrClosed)
		return pc
	}
	db.queue <- r
	db.mu.RUnlock()
	return pc
}

func (db *DB) prepareStep(sc store.StepCommit) (*stepReq, error) {
	if err := store.CheckRun(sc.Run); err != nil {
		return nil, fmt.Errorf("commit step: %w", err)
	}
	id := sc.Run.ID
	if sc.Index < 0 {
		return nil, fmt.Errorf("commit step %q/%d: negative index", id, sc.Index)
	}
	if !json.Valid(sc.Step) {
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
			v, err := json.Marshal(&e)
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
		r.seal, r.draft, r.hasEnv = s, d, true
	}
	return r, nil
}

func (db *DB) commitLoop() {
	defer close(db.done)
	batch := make([]*stepReq, 0, db.maxBatch)
	for r := range db.queue {
		batch = append(batch[:0], r)
	gather:
		for len(batch) < db.maxBatch {
			select {
			case r, ok := <-db.queue:
				if !ok {
					break gather
				}
				batch = append(batch, r)
			default:
				break gather
			}
		}
		db.runBatch(batch)
		clear(batch)
	}
}

type stepKey struct {
	id  string
	idx int
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
	// HeadHeld is the time the batches held the chain head, from the
	// first round trip to the end of COMMIT (WAL flush included): the
	// serialised part of every replica's commits.
	HeadHeld time.Duration
}

// CommitStats returns the counts since Open.
func (db *DB) CommitStats() CommitStats {
	return CommitStats{Batches: db.batches.Load(), Commits: db.commits.Load(), HeadHeld: time.Duration(db.headHeld.Load())}
}

// runBatch commits batch in one transaction (see the top of the file).
func (db *DB) runBatch(batch []*stepReq) {
	ctx := context.Background()
	outs := make([]*store.Envelope, len(batch))
	errs := make([]error, len(batch))
	t0 := time.Now()
	err := db.writeBatch(ctx, batch, outs, errs)
	db.headHeld.Add(int64(time.Since(t0)))
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
}

func (db *DB) writeBatch(ctx context.Context, batch []*stepReq, outs []*store.Envelope, errs []error) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	var ids []string
	seenID := map[string]bool{}
	var keyIDs []string
	var keyIdx []int32
	var leaseIDs []string
	for _, r := range batch {
		id := r.sc.Run.ID
		if !seenID[id] {
			seenID[id] = true
			ids = append(ids, id)
		}
		keyIDs = append(keyIDs, id)
		keyIdx = append(keyIdx, int32(r.sc.Index))
		if r.sc.Index > 0 {
			keyIDs = append(keyIDs, id)
			keyIdx = append(keyIdx, int32(r.sc.Index-1))
		}
		if r.sc.Lease != nil {
			leaseIDs = append(leaseIDs, id)
		}
	}
	b := &pgx.Batch{}
	b.Queue(`BEGIN`)
	b.Queue(`SELECT seq, hash FROM nanovm_chain_head WHERE id = 1 FOR UPDATE`)
	b.Queue(`SELECT id, created_ns FROM nanovm_executions WHERE id = ANY($1)`, ids)
	b.Queue(`SELECT s.exec_id, s.idx FROM nanovm_steps s JOIN unnest($1::text[], $2::int[]) AS k(e, i) ON s.exec_id = k.e AND s.idx = k.i`, keyIDs, keyIdx)
	if len(leaseIDs) > 0 {
		b.Queue(`SELECT trace_id, owner, epoch FROM nanovm_leases WHERE trace_id = ANY($1) ORDER BY trace_id FOR SHARE`, leaseIDs)
	}
	var (
		headSeq  uint64
		headHash string
	)
	created := map[string]int64{}
	exists := map[stepKey]bool{}
	leases := map[string]leaseRow{}
	res := conn.SendBatch(ctx, b)
	read := func() error {
		if _, err := res.Exec(); err != nil {
			return err
		}
		if err := res.QueryRow().Scan(&headSeq, &headHash); err != nil {
			return fmt.Errorf("chain head: %w", err)
		}
		rows, err := res.Query()
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			var ns int64
			if err := rows.Scan(&id, &ns); err != nil {
				rows.Close()
				return err
			}
			created[id] = ns
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = res.Query()
		if err != nil {
			return err
		}
		for rows.Next() {
			var k stepKey
			var idx int32
			if err := rows.Scan(&k.id, &idx); err != nil {
				rows.Close()
				return err
			}
			k.idx = int(idx)
			exists[k] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(leaseIDs) > 0 {
			rows, err = res.Query()
			if err != nil {
				return err
			}
			for rows.Next() {
				var id string
				var l leaseRow
				var epoch int64
				if err := rows.Scan(&id, &l.owner, &epoch); err != nil {
					rows.Close()
					return err
				}
				l.epoch = uint64(epoch)
				leases[id] = l
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		return nil
	}
	err = read()
	if cerr := res.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		rollback(conn.Conn())
		return err
	}

	// The checks, in queue order, over what was read and what earlier
	// members add.
	now := db.now().UTC()
	type execRow struct {
		programID, status string
		createdNS         int64
		rec               []byte
	}
	execRows := map[string]*execRow{}
	var execOrder []string
	type body struct{ input, program []byte }
	bodies := map[string]*body{}
	var bodyOrder []string
	var sIDs []string
	var sIdx []int32
	var sData [][]byte
	var eSeq []int64
	var eIDs []string
	var eVals [][]byte
	seq, hash := headSeq, headHash
	for i, r := range batch {
		sc := &r.sc
		id := sc.Run.ID
		k := stepKey{id, sc.Index}
		if sc.Lease != nil {
			l, ok := leases[id]
			if !ok || l.owner != sc.Lease.Owner || l.epoch != sc.Lease.Epoch {
				errs[i] = fmt.Errorf("%w (lease epoch %d of %s)", store.ErrLeaseLost, sc.Lease.Epoch, sc.Lease.Owner)
				continue
			}
		}
		if exists[k] {
			errs[i] = store.ErrStepExists
			continue
		}
		if sc.Index > 0 && !exists[stepKey{id, sc.Index - 1}] {
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
				v, err := json.Marshal(&e)
				if err != nil {
					errs[i] = fmt.Errorf("encode execution: %w", err)
					continue
				}
				rec, at = v, e.CreatedAt.UnixNano()
			}
			row := execRows[id]
			if row == nil {
				row = &execRow{}
				execRows[id] = row
				execOrder = append(execOrder, id)
			}
			*row = execRow{programID: sc.Run.ProgramID, status: string(sc.Run.Status), createdNS: at, rec: rec}
			created[id] = at
			if len(sc.Run.Input) > 0 || len(sc.Run.Program) > 0 {
				bd := bodies[id]
				if bd == nil {
					bd = &body{}
					bodies[id] = bd
					bodyOrder = append(bodyOrder, id)
				}
				if len(sc.Run.Input) > 0 {
					bd.input = sc.Run.Input
				}
				if len(sc.Run.Program) > 0 {
					bd.program = sc.Run.Program
				}
			}
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
			eSeq = append(eSeq, int64(env.Seq))
			eIDs = append(eIDs, env.TraceID)
			eVals = append(eVals, v)
			outs[i] = &env
		}
		exists[k] = true
		sIDs = append(sIDs, id)
		sIdx = append(sIdx, int32(sc.Index))
		sData = append(sData, r.step)
	}

	w := &pgx.Batch{}
	if len(sIDs) > 0 {
		w.Queue(`INSERT INTO nanovm_steps (exec_id, idx, data) SELECT * FROM unnest($1::text[], $2::int[], $3::bytea[])`, sIDs, sIdx, sData)
	}
	if len(execOrder) > 0 {
		n := len(execOrder)
		pids, sts, cns, recs := make([]string, n), make([]string, n), make([]int64, n), make([][]byte, n)
		for j, id := range execOrder {
			row := execRows[id]
			pids[j], sts[j], cns[j], recs[j] = row.programID, row.status, row.createdNS, row.rec
		}
		w.Queue(`INSERT INTO nanovm_executions (id, program_id, status, created_ns, record)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bytea[])
ON CONFLICT (id) DO UPDATE SET program_id = EXCLUDED.program_id, status = EXCLUDED.status, created_ns = EXCLUDED.created_ns, record = EXCLUDED.record`,
			execOrder, pids, sts, cns, recs)
	}
	if len(bodyOrder) > 0 {
		n := len(bodyOrder)
		ins, progs := make([][]byte, n), make([][]byte, n)
		for j, id := range bodyOrder {
			bd := bodies[id]
			ins[j], progs[j] = bd.input, bd.program
		}
		w.Queue(`INSERT INTO nanovm_exec_bodies (id, input, program)
SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[])
ON CONFLICT (id) DO UPDATE SET input = COALESCE(EXCLUDED.input, nanovm_exec_bodies.input),
  program = COALESCE(EXCLUDED.program, nanovm_exec_bodies.program)`,
			bodyOrder, ins, progs)
	}
	if len(eSeq) > 0 {
		w.Queue(`INSERT INTO nanovm_envelopes (seq, exec_id, value) SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[])`, eSeq, eIDs, eVals)
		w.Queue(`UPDATE nanovm_chain_head SET seq = $1, hash = $2 WHERE id = 1`, int64(seq), hash)
	}
	w.Queue(`COMMIT`)
	wres := conn.SendBatch(ctx, w)
	for range w.Len() {
		if _, err = wres.Exec(); err != nil {
			break
		}
	}
	if cerr := wres.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		rollback(conn.Conn())
		return err
	}
	return nil
}

// rollback ends a failed transaction on conn (a no-op outside one).
func rollback(conn *pgx.Conn) {
	_, _ = conn.Exec(context.Background(), "ROLLBACK")
}
