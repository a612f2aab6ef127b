package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/store"
)

// Leases live as long as their owner's heartbeat: a lease row names its
// owner and epoch, and is live while the owner's row in nanovm_replicas
// has not expired (and the lease was not released). A heartbeat is then
// one row per replica, whatever the number of runs it holds, and the
// database's clock decides expiry, so replicas' clocks need not agree.

// Heartbeat implements store.LeaseStore.
func (db *DB) Heartbeat(ctx context.Context, r store.Replica, ttl time.Duration) ([]store.Replica, error) {
	if err := db.check(ctx); err != nil {
		return nil, err
	}
	if _, err := db.pool.Exec(ctx, `INSERT INTO nanovm_replicas (id, policy_hash, serving, started_at, expires_at)
VALUES ($1, $2, $3, clock_timestamp(), clock_timestamp() + make_interval(secs => $4))
ON CONFLICT (id) DO UPDATE SET policy_hash = EXCLUDED.policy_hash, serving = EXCLUDED.serving, expires_at = EXCLUDED.expires_at`,
		r.ID, r.PolicyHash, r.Serving, ttl.Seconds()); err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	rows, err := db.pool.Query(ctx, `SELECT id, policy_hash, serving, started_at, expires_at FROM nanovm_replicas
WHERE expires_at > clock_timestamp() ORDER BY started_at, id`)
	if err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	defer rows.Close()
	var out []store.Replica
	for rows.Next() {
		var x store.Replica
		if err := rows.Scan(&x.ID, &x.PolicyHash, &x.Serving, &x.StartedAt, &x.ExpiresAt); err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

// AcquireLease implements store.LeaseStore: a request to the committer,
// sharing a transaction with whatever else is queued.
func (db *DB) AcquireLease(ctx context.Context, traceID, owner string) (store.Lease, error) {
	if err := db.check(ctx); err != nil {
		return store.Lease{}, err
	}
	r := &stepReq{kind: kindAcquire, owner: owner, sc: store.StepCommit{Run: store.Run{ID: traceID}}}
	if err := db.submit(ctx, r); err != nil {
		if errors.Is(err, store.ErrLeaseHeld) {
			return r.lease, err
		}
		return store.Lease{}, fmt.Errorf("acquire lease of %q: %w", traceID, err)
	}
	return r.lease, nil
}

// StartRun implements store.LeaseStore: the lease and the new record are
// one request to the committer. A record that exists already (a run
// recorded by a replica that then died before its first step, say) is
// replaced under the lease just acquired, as PutRun replaces one.
func (db *DB) StartRun(ctx context.Context, e store.Run, owner string) (store.Run, store.Lease, error) {
	if err := store.CheckRun(e); err != nil {
		return store.Run{}, store.Lease{}, fmt.Errorf("start run: %w", err)
	}
	if err := db.check(ctx); err != nil {
		return store.Run{}, store.Lease{}, err
	}
	now := db.now().UTC()
	rec := e
	rec.Input, rec.Program = nil, nil
	if rec.CreatedAt.IsZero() {
		rec.CreatedAt = now
	}
	rec.CreatedAt = rec.CreatedAt.UTC()
	rec.UpdatedAt = now
	v, err := store.EncodeRun(&rec)
	if err != nil {
		return store.Run{}, store.Lease{}, fmt.Errorf("start run %q: encode: %w", e.ID, err)
	}
	r := &stepReq{kind: kindAcquire, owner: owner, withRun: true, sc: store.StepCommit{Run: e}, rec: v, recAt: rec.CreatedAt.UnixNano()}
	if err := db.submit(ctx, r); err != nil {
		if errors.Is(err, store.ErrLeaseHeld) {
			return store.Run{}, r.lease, err
		}
		return store.Run{}, store.Lease{}, fmt.Errorf("start run %q: %w", e.ID, err)
	}
	if r.existed {
		out, err := db.endRun(ctx, store.RunEnd{Run: &e, Lease: r.lease})
		if err != nil {
			return store.Run{}, r.lease, fmt.Errorf("start run %q: %w", e.ID, err)
		}
		return out, r.lease, nil
	}
	out := rec
	out.Input, out.Program = e.Input, e.Program
	return out, r.lease, nil
}

// EndRun implements store.LeaseStore: one transaction that takes the
// chain head (as every transaction writing a lease or appending does,
// first), checks the lease, replaces the record, finishes the
// idempotency key and releases the lease.
func (db *DB) EndRun(ctx context.Context, end store.RunEnd) error {
	_, err := db.endRun(ctx, end)
	return err
}

func (db *DB) endRun(ctx context.Context, end store.RunEnd) (store.Run, error) {
	l := end.Lease
	what := fmt.Sprintf("end run %q", l.TraceID)
	if end.Run != nil {
		if err := store.CheckRun(*end.Run); err != nil {
			return store.Run{}, fmt.Errorf("%s: %w", what, err)
		}
		if end.Run.ID != l.TraceID {
			return store.Run{}, fmt.Errorf("%s: the lease is for %q, the record for %q", what, l.TraceID, end.Run.ID)
		}
	}
	key, status := end.IdempotencyKey, end.Status
	ended, release, notify := false, false, key != ""
	if e := end.Run; e != nil && e.Status != kernel.StatusRunning {
		// Suspended, the lease goes (any replica may resume the run); a
		// finished run keeps it, nothing takes a finished run over.
		ended, release = true, !e.Status.Terminal()
		notify = notify || e.IdempotencyKey != ""
		if key == "" && e.IdempotencyKey != "" && e.Status.Terminal() {
			key, status = e.IdempotencyKey, string(e.Status)
		}
	}
	if key != "" && (status == "" || status == store.IdempotencyPending) {
		return store.Run{}, fmt.Errorf("%s: idempotency status %q is not terminal", what, status)
	}
	var out store.Run
	err := db.tx(ctx, func(tx pgx.Tx) error {
		// The head first, as every transaction that writes a lease
		// or appends takes it.
		if _, _, err := lockHead(ctx, tx); err != nil {
			return err
		}
		var owner string
		var epoch int64
		err := tx.QueryRow(ctx, `SELECT owner, epoch FROM nanovm_leases WHERE trace_id = $1`, l.TraceID).Scan(&owner, &epoch)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: no lease is recorded (lease epoch %d of %s)", store.ErrLeaseLost, l.Epoch, l.Owner)
		}
		if err != nil {
			return err
		}
		if owner != l.Owner || uint64(epoch) != l.Epoch {
			return fmt.Errorf("%w: the lease is at epoch %d of %s, this write carries epoch %d of %s", store.ErrLeaseLost, epoch, owner, l.Epoch, l.Owner)
		}
		if end.Run != nil {
			if out, err = db.putRunTx(ctx, tx, *end.Run); err != nil {
				return err
			}
		}
		if key != "" {
			if err := finishIdemTx(ctx, tx, key, status); err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("finish idempotency key %s: %w", store.Clip(key), err)
			}
		}
		if release {
			if _, err := tx.Exec(ctx, `UPDATE nanovm_leases SET released = true WHERE trace_id = $1`, l.TraceID); err != nil {
				return err
			}
		}
		if notify || release {
			if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, runsChannel, l.TraceID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return store.Run{}, fmt.Errorf("%s: %w", what, err)
	}
	if ended {
		db.markReleased(l)
	}
	return out, nil
}

// ReleaseLease implements store.LeaseStore. A lease its run's last write
// released already (store.RunEnd) costs nothing; another is a request to
// the committer.
func (db *DB) ReleaseLease(ctx context.Context, l store.Lease) error {
	if err := db.check(ctx); err != nil {
		return err
	}
	if db.takeReleased(l) {
		return nil
	}
	r := &stepReq{kind: kindRelease, lease: l, sc: store.StepCommit{Run: store.Run{ID: l.TraceID}}}
	if err := db.submit(ctx, r); err != nil {
		return fmt.Errorf("release lease of %q: %w", l.TraceID, err)
	}
	return nil
}

// Orphans implements store.LeaseStore.
func (db *DB) Orphans(ctx context.Context, limit int) ([]store.Run, error) {
	if limit <= 0 {
		limit = 100
	}
	out, err := db.executionsWhere(ctx, `e.status = 'running' AND NOT EXISTS (
  SELECT 1 FROM nanovm_leases l JOIN nanovm_replicas r ON r.id = l.owner
  WHERE l.trace_id = e.id AND NOT l.released AND r.expires_at > clock_timestamp())`, limit)
	if err != nil {
		return nil, fmt.Errorf("list orphaned executions: %w", err)
	}
	return out, nil
}
