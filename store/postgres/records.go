package postgres

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nanovm/nano-vm-mcp/store"
)

func timeOf(ns int64) time.Time { return time.Unix(0, ns).UTC() }

// decode decodes a stored JSON record; undecodable bytes are corruption.
func decode(v []byte, into any) error {
	if err := json.Unmarshal(v, into); err != nil {
		return fmt.Errorf("%w: decode %T: %w", store.ErrCorrupt, into, err)
	}
	return nil
}

// tx runs fn in a transaction.
func (db *DB) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	if err := db.check(ctx); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, db.pool, fn)
}

// lockHead locks the chain head for an append in tx and returns it.
func lockHead(ctx context.Context, tx pgx.Tx) (uint64, string, error) {
	var seq int64
	var hash string
	if err := tx.QueryRow(ctx, `SELECT seq, hash FROM nanovm_chain_head WHERE id = 1 FOR UPDATE`).Scan(&seq, &hash); err != nil {
		return 0, "", fmt.Errorf("chain head: %w", err)
	}
	return uint64(seq), hash, nil
}

// appendEnvelopes links drafts onto the chain in tx, which must not hold
// the head yet: it locks it.
func (db *DB) appendEnvelopes(ctx context.Context, tx pgx.Tx, drafts ...*store.PreparedEnvelope) ([]store.Envelope, error) {
	seq, hash, err := lockHead(ctx, tx)
	if err != nil {
		return nil, err
	}
	// The committer's next batch must not link to the head it left (it
	// would be refused by the head condition and run again).
	db.forgetHead()
	now := db.now().UTC()
	out := make([]store.Envelope, 0, len(drafts))
	for _, d := range drafts {
		env, v, err := d.Link(seq, hash, now)
		if err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO nanovm_envelopes (seq, exec_id, value) VALUES ($1, $2, $3)`, int64(env.Seq), env.TraceID, v); err != nil {
			return nil, fmt.Errorf("put envelope %d: %w", env.Seq, err)
		}
		seq, hash = env.Seq, env.Hash
		out = append(out, env)
	}
	if _, err := tx.Exec(ctx, `UPDATE nanovm_chain_head SET seq = $1, hash = $2 WHERE id = 1`, int64(seq), hash); err != nil {
		return nil, fmt.Errorf("put chain head: %w", err)
	}
	return out, nil
}

// PutProgram implements store.ProgramStore.
func (db *DB) PutProgram(ctx context.Context, p store.Program) (store.Program, error) {
	if err := store.CheckStoreID("program", p.ID); err != nil {
		return store.Program{}, fmt.Errorf("put program: %w", err)
	}
	now := db.now().UTC()
	var out store.Program
	err := db.tx(ctx, func(tx pgx.Tx) error {
		rec := p
		if rec.CreatedAt.IsZero() {
			var ns int64
			err := tx.QueryRow(ctx, `SELECT created_ns FROM nanovm_programs WHERE id = $1 FOR UPDATE`, p.ID).Scan(&ns)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				rec.CreatedAt = now
			case err != nil:
				return err
			default:
				rec.CreatedAt = timeOf(ns)
			}
		}
		rec.CreatedAt = rec.CreatedAt.UTC()
		v, err := json.Marshal(&rec)
		if err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		out = rec
		_, err = tx.Exec(ctx, `INSERT INTO nanovm_programs (id, created_ns, record) VALUES ($1, $2, $3)
ON CONFLICT (id) DO UPDATE SET created_ns = EXCLUDED.created_ns, record = EXCLUDED.record`, rec.ID, rec.CreatedAt.UnixNano(), v)
		return err
	})
	if err != nil {
		return store.Program{}, fmt.Errorf("put program %q: %w", p.ID, err)
	}
	return out, nil
}

// Program implements store.ProgramStore.
func (db *DB) Program(ctx context.Context, id string) (store.Program, error) {
	var p store.Program
	err := db.one(ctx, func() error {
		var v []byte
		if err := db.pool.QueryRow(ctx, `SELECT record FROM nanovm_programs WHERE id = $1`, id).Scan(&v); err != nil {
			return err
		}
		return decode(v, &p)
	})
	if err != nil {
		return store.Program{}, fmt.Errorf("program %q: %w", id, err)
	}
	return p, nil
}

// one runs a read, mapping no rows to store.ErrNotFound.
func (db *DB) one(ctx context.Context, fn func() error) error {
	if err := db.check(ctx); err != nil {
		return err
	}
	err := fn()
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

// Programs implements store.ProgramStore.
func (db *DB) Programs(ctx context.Context, limit int) ([]store.Program, error) {
	if err := db.check(ctx); err != nil {
		return nil, err
	}
	q := `SELECT record FROM nanovm_programs ORDER BY created_ns DESC, id DESC`
	args := []any{}
	if limit > 0 {
		q += ` LIMIT $1`
		args = append(args, limit)
	}
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list programs: %w", err)
	}
	defer rows.Close()
	var out []store.Program
	for rows.Next() {
		var v []byte
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("list programs: %w", err)
		}
		var p store.Program
		if err := decode(v, &p); err != nil {
			return nil, fmt.Errorf("list programs: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list programs: %w", err)
	}
	return out, nil
}

// DeleteProgram implements store.ProgramStore.
func (db *DB) DeleteProgram(ctx context.Context, id string) error {
	err := db.tx(ctx, func(tx pgx.Tx) error {
		// The head first, as every appending transaction takes it.
		if _, _, err := lockHead(ctx, tx); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM nanovm_programs WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		rows, err := tx.Query(ctx, `SELECT id, record FROM nanovm_executions WHERE program_id = $1 ORDER BY created_ns, id FOR UPDATE`, id)
		if err != nil {
			return err
		}
		type ex struct {
			id, key, policy string
		}
		var execs []ex
		for rows.Next() {
			var eid string
			var v []byte
			if err := rows.Scan(&eid, &v); err != nil {
				rows.Close()
				return err
			}
			var e store.Run
			if err := decode(v, &e); err != nil {
				rows.Close()
				return err
			}
			execs = append(execs, ex{eid, e.IdempotencyKey, e.PolicyHash})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		var drafts []*store.PreparedEnvelope
		for _, e := range execs {
			for _, q := range []string{
				`DELETE FROM nanovm_steps WHERE exec_id = $1`,
				`DELETE FROM nanovm_exec_bodies WHERE id = $1`,
				`DELETE FROM nanovm_executions WHERE id = $1`,
				`DELETE FROM nanovm_leases WHERE trace_id = $1`,
			} {
				if _, err := tx.Exec(ctx, q, e.id); err != nil {
					return err
				}
			}
			if e.key != "" {
				if err := deleteIdemOf(ctx, tx, e.key, e.id); err != nil {
					return err
				}
			}
			d, err := store.PrepareEnvelope(store.Envelope{Kind: store.EnvelopeKindDelete, TraceID: e.id, PolicyHash: e.policy})
			if err != nil {
				return err
			}
			drafts = append(drafts, d)
		}
		if len(drafts) > 0 {
			_, err := db.appendEnvelopesLocked(ctx, tx, drafts...)
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete program %q: %w", id, err)
	}
	return nil
}

// appendEnvelopesLocked is appendEnvelopes for a transaction that locked
// the head already (FOR UPDATE again is a no-op on a row tx holds).
func (db *DB) appendEnvelopesLocked(ctx context.Context, tx pgx.Tx, drafts ...*store.PreparedEnvelope) ([]store.Envelope, error) {
	return db.appendEnvelopes(ctx, tx, drafts...)
}

// deleteIdemOf deletes key when it started execution id.
func deleteIdemOf(ctx context.Context, tx pgx.Tx, key, id string) error {
	var v []byte
	err := tx.QueryRow(ctx, `SELECT record FROM nanovm_idempotency WHERE key = $1 FOR UPDATE`, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	var r store.IdempotencyRecord
	if json.Unmarshal(v, &r) == nil && r.TraceID != id {
		return nil
	}
	_, err = tx.Exec(ctx, `DELETE FROM nanovm_idempotency WHERE key = $1`, key)
	return err
}

// PutRun implements store.RunStore.
func (db *DB) PutRun(ctx context.Context, e store.Run) (store.Run, error) {
	if err := store.CheckRun(e); err != nil {
		return store.Run{}, fmt.Errorf("put execution: %w", err)
	}
	var out store.Run
	err := db.tx(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = db.putRunTx(ctx, tx, e)
		return err
	})
	if err != nil {
		return store.Run{}, fmt.Errorf("put execution %q: %w", e.ID, err)
	}
	return out, nil
}

// putRunTx is PutRun in tx (which may hold the chain head already).
func (db *DB) putRunTx(ctx context.Context, tx pgx.Tx, e store.Run) (store.Run, error) {
	now := db.now().UTC()
	var out store.Run
	write := func(ctx context.Context, tx pgx.Tx, createdNS int64, replace bool) error {
		rec := e
		rec.Input, rec.Program = nil, nil
		if rec.CreatedAt.IsZero() {
			if replace {
				rec.CreatedAt = timeOf(createdNS)
			} else {
				rec.CreatedAt = now
			}
		}
		rec.CreatedAt = rec.CreatedAt.UTC()
		rec.UpdatedAt = now
		v, err := store.EncodeRun(&rec)
		if err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		if replace {
			_, err = tx.Exec(ctx, `UPDATE nanovm_executions SET program_id = $2, status = $3, created_ns = $4, record = $5 WHERE id = $1`,
				e.ID, e.ProgramID, e.Status, rec.CreatedAt.UnixNano(), v)
		} else {
			_, err = tx.Exec(ctx, `INSERT INTO nanovm_executions (id, program_id, status, created_ns, record) VALUES ($1, $2, $3, $4, $5)`,
				e.ID, e.ProgramID, e.Status, rec.CreatedAt.UnixNano(), v)
		}
		if err != nil {
			return err
		}
		if len(e.Input) > 0 || len(e.Program) > 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO nanovm_exec_bodies (id, input, program) VALUES ($1, $2, $3)
ON CONFLICT (id) DO UPDATE SET input = COALESCE(EXCLUDED.input, nanovm_exec_bodies.input),
  program = COALESCE(EXCLUDED.program, nanovm_exec_bodies.program)`,
				e.ID, nilIfEmpty(e.Input), nilIfEmpty(e.Program)); err != nil {
				return err
			}
		}
		out = rec
		out.Input, out.Program = e.Input, e.Program
		if !replace {
			return nil
		}
		// A rewrite no step commit carries is sealed by an envelope of
		// its own, committing to the input and program as stored too.
		d := store.Envelope{Kind: store.EnvelopeKindRun, TraceID: e.ID, PolicyHash: e.PolicyHash,
			RunSHA256: store.RecordSHA256(v), RunStatus: string(e.Status), Payload: store.StatusPayload(e.Status)}
		var in, prog []byte
		err = tx.QueryRow(ctx, `SELECT input, program FROM nanovm_exec_bodies WHERE id = $1`, e.ID).Scan(&in, &prog)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if len(in) > 0 {
			d.InputSHA256 = store.RecordSHA256(in)
		}
		if len(prog) > 0 {
			d.ProgramSHA256 = store.RecordSHA256(prog)
		}
		pe, err := store.PrepareEnvelope(d)
		if err != nil {
			return err
		}
		_, err = db.appendEnvelopesLocked(ctx, tx, pe)
		return err
	}
	err := func() error {
		// A new record needs no envelope and no head lock.
		var ns int64
		err := tx.QueryRow(ctx, `SELECT created_ns FROM nanovm_executions WHERE id = $1`, e.ID).Scan(&ns)
		if errors.Is(err, pgx.ErrNoRows) {
			if _, err := tx.Exec(ctx, `SAVEPOINT fresh`); err != nil {
				return err
			}
			if err := write(ctx, tx, 0, false); err == nil {
				return nil
			} else if !isUnique(err) {
				return err
			}
			// Inserted meanwhile: replace it.
			if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT fresh`); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		if _, _, err := lockHead(ctx, tx); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT created_ns FROM nanovm_executions WHERE id = $1 FOR UPDATE`, e.ID).Scan(&ns); err != nil {
			return err
		}
		return write(ctx, tx, ns, true)
	}()
	return out, err
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// Execution implements store.RunStore.
func (db *DB) Run(ctx context.Context, id string) (store.Run, error) {
	var e store.Run
	err := db.one(ctx, func() error {
		var v, in, prog []byte
		err := db.pool.QueryRow(ctx, `SELECT e.record, b.input, b.program FROM nanovm_executions e
LEFT JOIN nanovm_exec_bodies b ON b.id = e.id WHERE e.id = $1`, id).Scan(&v, &in, &prog)
		if err != nil {
			return err
		}
		if err := decode(v, &e); err != nil {
			return err
		}
		e.Input, e.Program = raw(in), raw(prog)
		return nil
	})
	if err != nil {
		return store.Run{}, fmt.Errorf("execution %q: %w", id, err)
	}
	return e, nil
}

func raw(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	return b
}

// cursorKey is the bbolt store's cursor format: big-endian created ns,
// then the id.
func cursorKey(ns int64, id string) string {
	k := binary.BigEndian.AppendUint64(nil, uint64(ns))
	return base64.RawURLEncoding.EncodeToString(append(k, id...))
}

// Executions implements store.RunStore.
func (db *DB) Runs(ctx context.Context, f store.RunFilter) (store.RunPage, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = store.DefaultPageLimit
	}
	limit = min(limit, store.MaxPageLimit)
	var (
		afterNS int64 = -1
		afterID string
	)
	if f.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(f.Cursor)
		if err != nil || len(b) < 8 {
			return store.RunPage{}, fmt.Errorf("list runs: %w %s", store.ErrInvalidCursor, store.Clip(f.Cursor))
		}
		afterNS, afterID = int64(binary.BigEndian.Uint64(b)), string(b[8:])
	}
	if err := db.check(ctx); err != nil {
		return store.RunPage{}, err
	}
	rows, err := db.pool.Query(ctx, `SELECT id, created_ns, record FROM nanovm_executions
WHERE ($1::text = '' OR program_id = $1::text) AND ($2::text = '' OR status = $2::text) AND ($3::bigint < 0 OR (created_ns, id) < ($3::bigint, $4::text))
ORDER BY created_ns DESC, id DESC LIMIT $5`, f.ProgramID, f.Status, afterNS, afterID, limit+1)
	if err != nil {
		return store.RunPage{}, fmt.Errorf("list executions: %w", err)
	}
	defer rows.Close()
	var page store.RunPage
	var last string
	n := 0
	for rows.Next() {
		var id string
		var ns int64
		var v []byte
		if err := rows.Scan(&id, &ns, &v); err != nil {
			return store.RunPage{}, fmt.Errorf("list executions: %w", err)
		}
		if n == limit {
			page.NextCursor = last
			break
		}
		n++
		last = cursorKey(ns, id)
		var e store.Run
		if err := json.Unmarshal(v, &e); err != nil {
			page.Skipped = append(page.Skipped, store.SkippedRecord{ID: id, Error: err.Error()})
			continue
		}
		page.Runs = append(page.Runs, e)
	}
	if err := rows.Err(); err != nil {
		return store.RunPage{}, fmt.Errorf("list executions: %w", err)
	}
	return page, nil
}

// Unfinished implements store.RunStore.
func (db *DB) Unfinished(ctx context.Context) ([]store.Run, error) {
	out, err := db.executionsWhere(ctx, `e.status IN ('running', 'suspended')`, 0)
	if err != nil {
		return nil, fmt.Errorf("list unfinished executions: %w", err)
	}
	return out, nil
}

// executionsWhere lists whole executions matching cond, oldest first.
func (db *DB) executionsWhere(ctx context.Context, cond string, limit int) ([]store.Run, error) {
	if err := db.check(ctx); err != nil {
		return nil, err
	}
	q := `SELECT e.id, e.record, b.input, b.program FROM nanovm_executions e
LEFT JOIN nanovm_exec_bodies b ON b.id = e.id WHERE ` + cond + ` ORDER BY e.created_ns, e.id`
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	rows, err := db.pool.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Run
	for rows.Next() {
		var id string
		var v, in, prog []byte
		if err := rows.Scan(&id, &v, &in, &prog); err != nil {
			return nil, err
		}
		var e store.Run
		if err := decode(v, &e); err != nil {
			return nil, fmt.Errorf("execution %q: %w", id, err)
		}
		e.Input, e.Program = raw(in), raw(prog)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Steps implements store.RunStore.
func (db *DB) Steps(ctx context.Context, executionID string, offset, limit int) ([]store.Step, error) {
	if err := db.check(ctx); err != nil {
		return nil, err
	}
	out, err := steps(ctx, db.pool, executionID, offset, limit)
	if err != nil {
		return nil, fmt.Errorf("steps of %q: %w", executionID, err)
	}
	return out, nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func steps(ctx context.Context, q querier, id string, offset, limit int) ([]store.Step, error) {
	sql := `SELECT idx, data FROM nanovm_steps WHERE exec_id = $1 AND idx >= $2 ORDER BY idx`
	args := []any{id, max(offset, 0)}
	if limit > 0 {
		sql += ` LIMIT $3`
		args = append(args, limit)
	}
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Step
	for rows.Next() {
		var idx int32
		var data []byte
		if err := rows.Scan(&idx, &data); err != nil {
			return nil, err
		}
		out = append(out, store.Step{Index: int(idx), Data: data})
	}
	return out, rows.Err()
}

// RunTrace implements store.RunStore: one repeatable-read
// transaction, so the record and the steps are consistent.
func (db *DB) RunTrace(ctx context.Context, id string) (store.Run, []store.Step, error) {
	var e store.Run
	var st []store.Step
	err := db.readTx(ctx, func(tx pgx.Tx) error {
		var v, in, prog []byte
		err := tx.QueryRow(ctx, `SELECT e.record, b.input, b.program FROM nanovm_executions e
LEFT JOIN nanovm_exec_bodies b ON b.id = e.id WHERE e.id = $1`, id).Scan(&v, &in, &prog)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if err := decode(v, &e); err != nil {
			return err
		}
		e.Input, e.Program = raw(in), raw(prog)
		st, err = steps(ctx, tx, id, 0, 0)
		return err
	})
	if err != nil {
		return store.Run{}, nil, fmt.Errorf("execution trace %q: %w", id, err)
	}
	return e, st, nil
}

// readTx runs fn in a read-only repeatable-read transaction: one snapshot.
func (db *DB) readTx(ctx context.Context, fn func(pgx.Tx) error) error {
	if err := db.check(ctx); err != nil {
		return err
	}
	return pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
}

// AppendEnvelope implements store.AuditStore.
func (db *DB) AppendEnvelope(ctx context.Context, draft store.Envelope) (store.Envelope, error) {
	pe, err := store.PrepareEnvelope(draft)
	if err != nil {
		return store.Envelope{}, err
	}
	var out store.Envelope
	err = db.tx(ctx, func(tx pgx.Tx) error {
		envs, err := db.appendEnvelopes(ctx, tx, pe)
		if err == nil {
			out = envs[0]
		}
		return err
	})
	if err != nil {
		return store.Envelope{}, fmt.Errorf("append envelope: %w", err)
	}
	return out, nil
}

// Envelope implements store.AuditStore.
func (db *DB) Envelope(ctx context.Context, seq uint64) (store.Envelope, error) {
	var e store.Envelope
	err := db.one(ctx, func() error {
		var v []byte
		if err := db.pool.QueryRow(ctx, `SELECT value FROM nanovm_envelopes WHERE seq = $1`, int64(seq)).Scan(&v); err != nil {
			return err
		}
		return decode(v, &e)
	})
	if err != nil {
		return store.Envelope{}, fmt.Errorf("envelope %d: %w", seq, err)
	}
	return e, nil
}

// Envelopes implements store.AuditStore.
func (db *DB) Envelopes(ctx context.Context, executionID string) ([]store.Envelope, error) {
	if err := db.check(ctx); err != nil {
		return nil, err
	}
	rows, err := db.pool.Query(ctx, `SELECT value FROM nanovm_envelopes WHERE exec_id = $1 AND exec_id <> '' ORDER BY seq`, executionID)
	if err != nil {
		return nil, fmt.Errorf("envelopes of %q: %w", executionID, err)
	}
	defer rows.Close()
	var out []store.Envelope
	for rows.Next() {
		var v []byte
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		var e store.Envelope
		if err := decode(v, &e); err != nil {
			return nil, fmt.Errorf("envelopes of %q: %w", executionID, err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// StepEnvelope returns the envelope of step index of a run: the first step
// envelope carrying that index, as Envelopes lists them; store.ErrNotFound
// when none does. The viewer's step page reads it; it decodes one
// envelope, usually, not the run's thousands.
func (db *DB) StepEnvelope(ctx context.Context, traceID string, index int) (store.Envelope, error) {
	if err := db.check(ctx); err != nil {
		return store.Envelope{}, err
	}
	// The usual order: the run's envelope number index is step index's,
	// or a later step's when the run has fewer envelopes before it. A few
	// rows from there say; anything else reads the run's envelopes in
	// order (as the bbolt store does).
	e, found, err := db.findStepEnvelope(ctx, traceID, index, max(index, 0), 8)
	if err == nil && !found {
		e, found, err = db.findStepEnvelope(ctx, traceID, index, 0, -1)
	}
	switch {
	case err != nil:
		return store.Envelope{}, fmt.Errorf("envelope of step %d of %q: %w", index, traceID, err)
	case !found:
		return store.Envelope{}, fmt.Errorf("envelope of step %d of %q: %w", index, traceID, store.ErrNotFound)
	}
	return e, nil
}

// findStepEnvelope looks for step index's envelope among the run's
// envelopes from offset on, in seq order: at most limit of them, stopping
// at a later step's, or (limit < 0) every one.
func (db *DB) findStepEnvelope(ctx context.Context, traceID string, index, offset, limit int) (store.Envelope, bool, error) {
	q := `SELECT value FROM nanovm_envelopes WHERE exec_id = $1 AND exec_id <> '' ORDER BY seq OFFSET $2`
	args := []any{traceID, offset}
	if limit >= 0 {
		q += ` LIMIT $3`
		args = append(args, limit)
	}
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return store.Envelope{}, false, err
	}
	defer rows.Close()
	for rows.Next() {
		var v []byte
		if err := rows.Scan(&v); err != nil {
			return store.Envelope{}, false, err
		}
		var e store.Envelope
		if err := decode(v, &e); err != nil {
			return store.Envelope{}, false, err
		}
		if e.Kind != store.EnvelopeKindStep {
			continue
		}
		if e.StepIndex == index {
			return e, true, nil
		}
		if limit >= 0 && e.StepIndex > index {
			break
		}
	}
	return store.Envelope{}, false, rows.Err()
}

// Head implements store.AuditStore.
func (db *DB) Head(ctx context.Context) (uint64, string, error) {
	if err := db.check(ctx); err != nil {
		return 0, "", err
	}
	var seq int64
	var hash string
	if err := db.pool.QueryRow(ctx, `SELECT seq, hash FROM nanovm_chain_head WHERE id = 1`).Scan(&seq, &hash); err != nil {
		return 0, "", fmt.Errorf("chain head: %w", err)
	}
	return uint64(seq), hash, nil
}

// live reports whether r is honoured at now.
func live(r store.IdempotencyRecord, now time.Time) bool { return now.Before(r.ExpiresAt) }

func idemRecord(key string, v []byte) (store.IdempotencyRecord, error) {
	var r store.IdempotencyRecord
	if err := decode(v, &r); err != nil {
		return r, &store.CorruptIdempotencyError{Key: key, Err: err}
	}
	if r.Key != key {
		return r, &store.CorruptIdempotencyError{Key: key, Err: fmt.Errorf("%w: the record names key %s", store.ErrCorrupt, store.Clip(r.Key))}
	}
	return r, nil
}

// ClaimIdempotencyKey implements store.IdempotencyStore. The claim is one
// transaction on the key's row, so of replicas claiming one key at once
// exactly one wins.
func (db *DB) ClaimIdempotencyKey(ctx context.Context, key, requestHash, executionID string, ttl time.Duration) (store.IdempotencyRecord, bool, error) {
	if err := store.CheckIdempotencyKey(key); err != nil {
		return store.IdempotencyRecord{}, false, fmt.Errorf("claim idempotency key: %w", err)
	}
	if err := store.CheckStoreID("execution", executionID); err != nil {
		return store.IdempotencyRecord{}, false, fmt.Errorf("claim idempotency key %s: %w", store.Clip(key), err)
	}
	if ttl <= 0 {
		ttl = store.DefaultIdempotencyTTL
	}
	var (
		out     store.IdempotencyRecord
		claimed bool
	)
	err := db.tx(ctx, func(tx pgx.Tx) error {
		now := db.now().UTC()
		rec := store.IdempotencyRecord{Key: key, RequestHash: requestHash, TraceID: executionID,
			Status: store.IdempotencyPending, CreatedAt: now, ExpiresAt: now.Add(ttl)}
		v, err := json.Marshal(&rec)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO nanovm_idempotency (key, expires_ns, record) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING`,
			key, rec.ExpiresAt.UnixNano(), v)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			out, claimed = rec, true
			return nil
		}
		var cv []byte
		if err := tx.QueryRow(ctx, `SELECT record FROM nanovm_idempotency WHERE key = $1 FOR UPDATE`, key).Scan(&cv); err != nil {
			return err
		}
		cur, err := idemRecord(key, cv)
		if err != nil {
			return err
		}
		if live(cur, now) {
			if cur.RequestHash != requestHash {
				return fmt.Errorf("%w: key was used for another request (execution %q)", store.ErrIdempotencyConflict, cur.TraceID)
			}
			out, claimed = cur, false
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE nanovm_idempotency SET expires_ns = $2, record = $3 WHERE key = $1`, key, rec.ExpiresAt.UnixNano(), v); err != nil {
			return err
		}
		out, claimed = rec, true
		return nil
	})
	if err != nil {
		return store.IdempotencyRecord{}, false, fmt.Errorf("claim idempotency key %s: %w", store.Clip(key), err)
	}
	return out, claimed, nil
}

// IdempotencyKey implements store.IdempotencyStore.
func (db *DB) IdempotencyKey(ctx context.Context, key string) (store.IdempotencyRecord, error) {
	var r store.IdempotencyRecord
	err := db.one(ctx, func() error {
		var v []byte
		if err := db.pool.QueryRow(ctx, `SELECT record FROM nanovm_idempotency WHERE key = $1`, key).Scan(&v); err != nil {
			return err
		}
		cur, err := idemRecord(key, v)
		if err != nil {
			return err
		}
		if !live(cur, db.now()) {
			return store.ErrNotFound
		}
		r = cur
		return nil
	})
	if err != nil {
		return store.IdempotencyRecord{}, fmt.Errorf("idempotency key %s: %w", store.Clip(key), err)
	}
	return r, nil
}

// FinishIdempotencyKey implements store.IdempotencyStore.
func (db *DB) FinishIdempotencyKey(ctx context.Context, key, status string) error {
	if status == "" || status == store.IdempotencyPending {
		return fmt.Errorf("finish idempotency key %s: status %q is not terminal", store.Clip(key), status)
	}
	err := db.tx(ctx, func(tx pgx.Tx) error { return finishIdemTx(ctx, tx, key, status) })
	if err != nil {
		return fmt.Errorf("finish idempotency key %s: %w", store.Clip(key), err)
	}
	return nil
}

// finishIdemTx is FinishIdempotencyKey in tx.
func finishIdemTx(ctx context.Context, tx pgx.Tx, key, status string) error {
	var v []byte
	err := tx.QueryRow(ctx, `SELECT record FROM nanovm_idempotency WHERE key = $1 FOR UPDATE`, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	if err != nil {
		return err
	}
	cur, err := idemRecord(key, v)
	if err != nil {
		return err
	}
	cur.Status = status
	if v, err = json.Marshal(&cur); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE nanovm_idempotency SET record = $2 WHERE key = $1`, key, v)
	return err
}

// PurgeExpired implements store.IdempotencyStore.
func (db *DB) PurgeExpired(ctx context.Context) (int, error) {
	if err := db.check(ctx); err != nil {
		return 0, err
	}
	tag, err := db.pool.Exec(ctx, `DELETE FROM nanovm_idempotency WHERE expires_ns <= $1`, db.now().UTC().UnixNano())
	if err != nil {
		return 0, fmt.Errorf("purge expired idempotency keys: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// IdempotencyEntries lists every stored idempotency key in key order,
// expired and corrupt ones included, for the operator.
func (db *DB) IdempotencyEntries(ctx context.Context) ([]store.IdempotencyEntry, error) {
	if err := db.check(ctx); err != nil {
		return nil, err
	}
	rows, err := db.pool.Query(ctx, `SELECT key, record FROM nanovm_idempotency ORDER BY key`)
	if err != nil {
		return nil, fmt.Errorf("list idempotency keys: %w", err)
	}
	defer rows.Close()
	var out []store.IdempotencyEntry
	for rows.Next() {
		var k string
		var v []byte
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		r, err := idemRecord(k, v)
		out = append(out, store.IdempotencyEntry{Key: k, Record: r, Err: err})
	}
	return out, rows.Err()
}

// DeleteIdempotencyKey removes key's record, also when it is corrupt,
// and reports whether there was one. The run the key started is kept.
func (db *DB) DeleteIdempotencyKey(ctx context.Context, key string) (bool, error) {
	if err := db.check(ctx); err != nil {
		return false, err
	}
	tag, err := db.pool.Exec(ctx, `DELETE FROM nanovm_idempotency WHERE key = $1`, key)
	if err != nil {
		return false, fmt.Errorf("delete idempotency key %s: %w", store.Clip(key), err)
	}
	return tag.RowsAffected() > 0, nil
}

// PutSecret implements store.SecretStore.
func (db *DB) PutSecret(ctx context.Context, rec store.SecretRecord) error {
	if err := store.CheckSecretID(rec.ID); err != nil {
		return fmt.Errorf("put secret: %w", err)
	}
	if rec.Tombstoned || len(rec.Ciphertext) == 0 {
		return fmt.Errorf("put secret %q: record has no ciphertext", rec.ID)
	}
	if rec.CreatedAt.IsZero() {
		rec.CreatedAt = db.now().UTC()
	}
	v, err := json.Marshal(&rec)
	if err != nil {
		return fmt.Errorf("put secret %q: encode: %w", rec.ID, err)
	}
	err = db.tx(ctx, func(tx pgx.Tx) error {
		var cv []byte
		err := tx.QueryRow(ctx, `SELECT record FROM nanovm_secrets WHERE id = $1 FOR UPDATE`, rec.ID).Scan(&cv)
		if err == nil {
			var cur store.SecretRecord
			if err := decode(cv, &cur); err != nil {
				return err
			}
			if cur.Tombstoned {
				return store.ErrTombstoned
			}
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO nanovm_secrets (id, record) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record`, rec.ID, v)
		return err
	})
	if err != nil {
		return fmt.Errorf("put secret %q: %w", rec.ID, err)
	}
	return nil
}

// Secret implements store.SecretStore.
func (db *DB) Secret(ctx context.Context, id string) (store.SecretRecord, error) {
	var r store.SecretRecord
	err := db.one(ctx, func() error {
		var v []byte
		if err := db.pool.QueryRow(ctx, `SELECT record FROM nanovm_secrets WHERE id = $1`, id).Scan(&v); err != nil {
			return err
		}
		return decode(v, &r)
	})
	if err != nil {
		return store.SecretRecord{}, fmt.Errorf("secret %q: %w", id, err)
	}
	return r, nil
}

// Secrets implements store.SecretStore.
func (db *DB) Secrets(ctx context.Context) ([]store.SecretRecord, error) {
	var out []store.SecretRecord
	err := db.eachSecret(ctx, db.pool, func(r store.SecretRecord) error {
		r.Nonce, r.Ciphertext = nil, nil
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	return out, nil
}

func (db *DB) eachSecret(ctx context.Context, q querier, fn func(store.SecretRecord) error) error {
	if err := db.check(ctx); err != nil {
		return err
	}
	return eachSecretRow(ctx, q, func(v []byte) error {
		var r store.SecretRecord
		if err := decode(v, &r); err != nil {
			return err
		}
		return fn(r)
	})
}

// eachSecretRow calls fn with each stored secret record's encoding, in
// id order.
func eachSecretRow(ctx context.Context, q querier, fn func(v []byte) error) error {
	rows, err := q.Query(ctx, `SELECT record FROM nanovm_secrets ORDER BY id`)
	if err != nil {
		return err
	}
	var v []byte
	_, err = pgx.ForEachRow(rows, []any{&v}, func() error { return fn(v) })
	return err
}

// EraseSecret implements store.SecretStore. PostgreSQL keeps the old row
// version until VACUUM reclaims it: without the vault key it is
// unreadable ciphertext.
func (db *DB) EraseSecret(ctx context.Context, id string) (store.SecretRecord, error) {
	var out store.SecretRecord
	err := db.tx(ctx, func(tx pgx.Tx) error {
		var v []byte
		err := tx.QueryRow(ctx, `SELECT record FROM nanovm_secrets WHERE id = $1 FOR UPDATE`, id).Scan(&v)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		var cur store.SecretRecord
		if err := decode(v, &cur); err != nil {
			return err
		}
		if cur.Tombstoned {
			out = cur
			return nil
		}
		cur.Nonce, cur.Ciphertext = nil, nil
		cur.Tombstoned = true
		cur.ErasedAt = db.now().UTC()
		if v, err = json.Marshal(&cur); err != nil {
			return err
		}
		out = cur
		_, err = tx.Exec(ctx, `UPDATE nanovm_secrets SET record = $2 WHERE id = $1`, id, v)
		return err
	})
	if err != nil {
		return store.SecretRecord{}, fmt.Errorf("erase secret %q: %w", id, err)
	}
	return out, nil
}

// PutToolVersion implements store.ToolStore; every replica is told
// (NOTIFY nanovm_tools) when the transaction commits.
func (db *DB) PutToolVersion(ctx context.Context, rec store.ToolRecord, module []byte) error {
	v, err := store.PrepareToolVersion(&rec, module, db.now())
	if err != nil {
		return err
	}
	err = db.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO nanovm_tool_modules (sha256, module) VALUES ($1, $2) ON CONFLICT DO NOTHING`, rec.ModuleSHA256, module); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO nanovm_tool_versions (name, sha256, record) VALUES ($1, $2, $3)
ON CONFLICT (name, sha256) DO UPDATE SET record = EXCLUDED.record`, rec.Name, rec.ModuleSHA256, v); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO nanovm_tools_current (name, sha256) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET sha256 = EXCLUDED.sha256`, rec.Name, rec.ModuleSHA256); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, toolsChannel, rec.Name)
		return err
	})
	if err != nil {
		return fmt.Errorf("put tool version %q: %w", rec.Name, err)
	}
	return nil
}

func toolRecord(v []byte) (store.ToolRecord, error) {
	var r store.ToolRecord
	if err := decode(v, &r); err != nil {
		return r, err
	}
	r.Source = r.EffectiveSource()
	return r, nil
}

// Tool implements store.ToolStore.
func (db *DB) Tool(ctx context.Context, name string) (store.ToolRecord, error) {
	var r store.ToolRecord
	err := db.one(ctx, func() error {
		var v []byte
		if err := db.pool.QueryRow(ctx, `SELECT v.record FROM nanovm_tools_current c JOIN nanovm_tool_versions v
ON v.name = c.name AND v.sha256 = c.sha256 WHERE c.name = $1`, name).Scan(&v); err != nil {
			return err
		}
		var err error
		r, err = toolRecord(v)
		return err
	})
	if err != nil {
		return store.ToolRecord{}, fmt.Errorf("tool %q: %w", name, err)
	}
	return r, nil
}

// ToolVersion implements store.ToolStore.
func (db *DB) ToolVersion(ctx context.Context, name, moduleSHA256 string) (store.ToolRecord, error) {
	var r store.ToolRecord
	err := db.one(ctx, func() error {
		var v []byte
		if err := db.pool.QueryRow(ctx, `SELECT record FROM nanovm_tool_versions WHERE name = $1 AND sha256 = $2`, name, moduleSHA256).Scan(&v); err != nil {
			return err
		}
		var err error
		r, err = toolRecord(v)
		return err
	})
	if err != nil {
		return store.ToolRecord{}, fmt.Errorf("tool %q version %s: %w", name, moduleSHA256, err)
	}
	return r, nil
}

// Module implements store.ToolStore.
func (db *DB) Module(ctx context.Context, moduleSHA256 string) ([]byte, error) {
	var out []byte
	err := db.one(ctx, func() error {
		return db.pool.QueryRow(ctx, `SELECT module FROM nanovm_tool_modules WHERE sha256 = $1`, moduleSHA256).Scan(&out)
	})
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", moduleSHA256, err)
	}
	return out, nil
}

// Tools implements store.ToolStore.
func (db *DB) Tools(ctx context.Context) ([]store.ToolRecord, error) {
	if err := db.check(ctx); err != nil {
		return nil, err
	}
	rows, err := db.pool.Query(ctx, `SELECT c.name, v.record FROM nanovm_tools_current c LEFT JOIN nanovm_tool_versions v
ON v.name = c.name AND v.sha256 = c.sha256 ORDER BY c.name`)
	if err != nil {
		return nil, fmt.Errorf("list tools: %w", err)
	}
	defer rows.Close()
	var out []store.ToolRecord
	for rows.Next() {
		var name string
		var v []byte
		if err := rows.Scan(&name, &v); err != nil {
			return nil, err
		}
		if v == nil {
			return nil, fmt.Errorf("list tools: %w: current version of %q: %w", store.ErrCorrupt, name, store.ErrNotFound)
		}
		r, err := toolRecord(v)
		if err != nil {
			return nil, fmt.Errorf("list tools: %w: current version of %q: %w", store.ErrCorrupt, name, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// RemoveTool implements store.ToolStore.
func (db *DB) RemoveTool(ctx context.Context, name string) error {
	err := db.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM nanovm_tools_current WHERE name = $1`, name)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, toolsChannel, name)
		return err
	})
	if err != nil {
		return fmt.Errorf("remove tool %q: %w", name, err)
	}
	return nil
}

// UploadedBytes returns what uploads store: every version record from an
// upload (removed names included) and each distinct module they run.
func (db *DB) UploadedBytes(ctx context.Context) (uint64, error) {
	if err := db.check(ctx); err != nil {
		return 0, err
	}
	rows, err := db.pool.Query(ctx, `SELECT v.name, v.sha256, v.record, length(m.module) FROM nanovm_tool_versions v
LEFT JOIN nanovm_tool_modules m ON m.sha256 = v.sha256`)
	if err != nil {
		return 0, fmt.Errorf("uploaded bytes: %w", err)
	}
	defer rows.Close()
	var n uint64
	seen := map[string]bool{}
	for rows.Next() {
		var name, sha string
		var v []byte
		var mlen *int64
		if err := rows.Scan(&name, &sha, &v, &mlen); err != nil {
			return 0, err
		}
		var r store.ToolRecord
		if err := decode(v, &r); err != nil {
			return 0, fmt.Errorf("uploaded bytes: %w", err)
		}
		if r.EffectiveSource() != store.SourceUpload {
			continue
		}
		// As the bbolt store counts: the version's key and value.
		n += uint64(len(name) + 1 + len(sha) + len(v))
		if !seen[sha] && mlen != nil {
			seen[sha] = true
			n += uint64(*mlen)
		}
	}
	return n, rows.Err()
}
