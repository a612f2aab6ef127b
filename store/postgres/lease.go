package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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

// AcquireLease implements store.LeaseStore.
func (db *DB) AcquireLease(ctx context.Context, traceID, owner string) (store.Lease, error) {
	if err := db.check(ctx); err != nil {
		return store.Lease{}, err
	}
	var epoch int64
	err := db.pool.QueryRow(ctx, `INSERT INTO nanovm_leases AS l (trace_id, owner, epoch, released) VALUES ($1, $2, 1, false)
ON CONFLICT (trace_id) DO UPDATE SET owner = EXCLUDED.owner, epoch = l.epoch + 1, released = false
WHERE l.released OR l.owner = EXCLUDED.owner
   OR NOT EXISTS (SELECT 1 FROM nanovm_replicas r WHERE r.id = l.owner AND r.expires_at > clock_timestamp())
RETURNING epoch`, traceID, owner).Scan(&epoch)
	if err == nil {
		return store.Lease{TraceID: traceID, Owner: owner, Epoch: uint64(epoch)}, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return store.Lease{}, fmt.Errorf("acquire lease of %q: %w", traceID, err)
	}
	held := store.Lease{TraceID: traceID}
	if err := db.pool.QueryRow(ctx, `SELECT owner, epoch FROM nanovm_leases WHERE trace_id = $1`, traceID).Scan(&held.Owner, &epoch); err == nil {
		held.Epoch = uint64(epoch)
	}
	return held, fmt.Errorf("acquire lease of %q: %w (%s)", traceID, store.ErrLeaseHeld, held.Owner)
}

// ReleaseLease implements store.LeaseStore.
func (db *DB) ReleaseLease(ctx context.Context, l store.Lease) error {
	if err := db.check(ctx); err != nil {
		return err
	}
	if _, err := db.pool.Exec(ctx, `UPDATE nanovm_leases SET released = true WHERE trace_id = $1 AND owner = $2 AND epoch = $3`,
		l.TraceID, l.Owner, int64(l.Epoch)); err != nil {
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
