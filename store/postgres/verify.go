package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/nanovm/nano-vm-mcp/store"
)

// VerifyChain implements store.AuditStore with the bbolt store's checks
// (store.ChainVerifier, store.RecordChecker) over one repeatable-read
// snapshot, so a replica verifies the chain all replicas append to.
func (db *DB) VerifyChain(ctx context.Context, executionID string) (store.VerifyReport, error) {
	var rep store.VerifyReport
	err := db.readTx(ctx, func(tx pgx.Tx) error {
		var seq int64
		var hash string
		if err := tx.QueryRow(ctx, `SELECT seq, hash FROM nanovm_chain_head WHERE id = 1`).Scan(&seq, &hash); err != nil {
			return fmt.Errorf("chain head: %w", err)
		}
		src := &pgRecords{ctx: ctx, tx: tx, db: db}
		var err error
		if executionID == "" {
			rep, err = verifyAll(ctx, tx, src, uint64(seq), hash)
		} else {
			rep, err = verifyExecution(ctx, tx, src, executionID, uint64(seq), hash)
		}
		return err
	})
	if err != nil {
		return store.VerifyReport{}, fmt.Errorf("verify chain: %w", err)
	}
	return rep, nil
}

func verifyAll(ctx context.Context, tx pgx.Tx, src *pgRecords, headSeq uint64, headHash string) (store.VerifyReport, error) {
	var v store.ChainVerifier
	var rc store.RecordChecker
	rows, err := tx.Query(ctx, `SELECT seq, value FROM nanovm_envelopes ORDER BY seq`)
	if err != nil {
		return store.VerifyReport{}, err
	}
	holds := true
	for rows.Next() {
		var seq int64
		var val []byte
		if err := rows.Scan(&seq, &val); err != nil {
			rows.Close()
			return store.VerifyReport{}, err
		}
		if holds {
			if holds = v.Add(store.ChainLink{Key: uint64(seq), Value: val}); holds {
				last := v.Last()
				rc.Add(&last)
				continue
			}
		}
		var e store.Envelope
		if json.Unmarshal(val, &e) == nil {
			rc.Add(&e)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return store.VerifyReport{}, err
	}
	rep := v.End(headSeq, headHash)
	if err := rc.Check(ctx, src, "", &rep); err != nil {
		return store.VerifyReport{}, err
	}
	return rep, nil
}

// verifyExecution checks each of the execution's envelopes within its
// window of the global chain (the envelope before, which its prev_hash
// names, and the one after, which names it), then its records.
func verifyExecution(ctx context.Context, tx pgx.Tx, src *pgRecords, id string, headSeq uint64, headHash string) (store.VerifyReport, error) {
	rows, err := tx.Query(ctx, `SELECT seq FROM nanovm_envelopes WHERE exec_id = $1 AND exec_id <> '' ORDER BY seq`, id)
	if err != nil {
		return store.VerifyReport{}, err
	}
	var seqs []uint64
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return store.VerifyReport{}, err
		}
		seqs = append(seqs, uint64(s))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return store.VerifyReport{}, err
	}
	get := func(seq uint64) ([]byte, error) {
		var v []byte
		err := tx.QueryRow(ctx, `SELECT value FROM nanovm_envelopes WHERE seq = $1`, int64(seq)).Scan(&v)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, nil
		}
		return v, err
	}
	rep := store.VerifyReport{OK: true}
	var rc store.RecordChecker
	var brk *store.BrokenLink
	for i, seq := range seqs {
		if err := ctx.Err(); err != nil {
			return store.VerifyReport{}, err
		}
		val, err := get(seq)
		if err != nil {
			return store.VerifyReport{}, err
		}
		var e store.Envelope
		if json.Unmarshal(val, &e) == nil {
			rc.Add(&e)
		}
		if brk != nil {
			continue
		}
		from := max(seq, 2) - 1
		var v store.ChainVerifier
		v.Start(from, store.GenesisHash)
		ok := true
		if from < seq {
			pv, err := get(from)
			if err != nil {
				return store.VerifyReport{}, err
			}
			if pv == nil {
				brk = &store.BrokenLink{Seq: from, Problem: store.ProblemGap, Reason: fmt.Sprintf("gap: seq %d missing", from)}
				continue
			}
			var pe store.Envelope
			if json.Unmarshal(pv, &pe) == nil {
				v.Start(from, pe.PrevHash)
			}
			ok = v.Add(store.ChainLink{Key: from, Value: pv})
		}
		if ok {
			ok = v.Add(store.ChainLink{Key: seq, Value: val})
		}
		if ok && e.TraceID != id {
			brk = &store.BrokenLink{Seq: seq, Problem: store.ProblemIndex, Reason: fmt.Sprintf("index mismatch: seq %d belongs to execution %q", seq, e.TraceID)}
			continue
		}
		if ok {
			nv, err := get(seq + 1)
			if err != nil {
				return store.VerifyReport{}, err
			}
			switch {
			case nv != nil:
				ok = v.Add(store.ChainLink{Key: seq + 1, Value: nv})
			case headSeq > seq:
				brk = &store.BrokenLink{Seq: seq + 1, Problem: store.ProblemGap, Reason: fmt.Sprintf("gap: seq %d missing", seq+1)}
				continue
			case headSeq == seq && headHash != e.Hash:
				brk = &store.BrokenLink{Seq: seq, Problem: store.ProblemHashMismatch, Reason: fmt.Sprintf("hash mismatch: seq %d differs from the recorded chain head", seq)}
				continue
			}
		}
		if !ok {
			brk = v.Broken()
			continue
		}
		_ = i
		rep.Checked++
	}
	if brk != nil {
		rep = store.VerifyReport{Checked: rep.Checked, Broken: brk}
	}
	if err := rc.Check(ctx, src, id, &rep); err != nil {
		return store.VerifyReport{}, err
	}
	return rep, nil
}

// pgRecords is the database's store.RecordSource, over one snapshot.
type pgRecords struct {
	ctx context.Context
	tx  pgx.Tx
	db  *DB
}

func (s *pgRecords) RunRecord(id string) ([]byte, error) {
	var v []byte
	err := s.tx.QueryRow(s.ctx, `SELECT record FROM nanovm_executions WHERE id = $1`, id).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return v, err
}

func (s *pgRecords) RunBody(id string) (input, program []byte, present bool, err error) {
	err = s.tx.QueryRow(s.ctx, `SELECT input, program FROM nanovm_exec_bodies WHERE id = $1`, id).Scan(&input, &program)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, false, nil
	}
	if err != nil {
		return nil, nil, false, err
	}
	return input, program, true, nil
}

func (s *pgRecords) StepRecords(id string) ([]store.Step, error) {
	return steps(s.ctx, s.tx, id, 0, 0)
}

func (s *pgRecords) BadStepKeys(string) int { return 0 }

func (s *pgRecords) Legacy(string) bool { return false }

func (s *pgRecords) TraceIDs() ([]string, error) {
	rows, err := s.tx.Query(s.ctx, `SELECT id FROM nanovm_executions UNION SELECT id FROM nanovm_exec_bodies
UNION SELECT DISTINCT exec_id FROM nanovm_steps ORDER BY 1`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

func (s *pgRecords) EachSecret(fn func(store.SecretRecord)) error {
	return eachSecretRow(s.ctx, s.tx, func(v []byte) error {
		var r store.SecretRecord
		if json.Unmarshal(v, &r) == nil {
			fn(r)
		}
		return nil
	})
}
