package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

func getIdem(tx *bolt.Tx, key string) (IdempotencyRecord, bool, error) {
	var r IdempotencyRecord
	v := tx.Bucket(bucketIdem).Get([]byte(key))
	if v == nil {
		return r, false, nil
	}
	if err := decodeRecord(v, &r); err != nil {
		return r, false, err
	}
	return r, true, nil
}

func putIdem(tx *bolt.Tx, r IdempotencyRecord) error {
	v, err := json.Marshal(&r)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	if err := tx.Bucket(bucketIdem).Put([]byte(r.Key), v); err != nil {
		return err
	}
	return tx.Bucket(bucketIdemExpiry).Put(timeKey(r.ExpiresAt, r.Key), nil)
}

func deleteIdem(tx *bolt.Tx, r IdempotencyRecord) error {
	if err := tx.Bucket(bucketIdemExpiry).Delete(timeKey(r.ExpiresAt, r.Key)); err != nil {
		return err
	}
	return tx.Bucket(bucketIdem).Delete([]byte(r.Key))
}

// live reports whether r is honoured at now: it expires at ExpiresAt.
func live(r IdempotencyRecord, now time.Time) bool { return now.Before(r.ExpiresAt) }

// ClaimIdempotencyKey implements IdempotencyStore.
func (db *DB) ClaimIdempotencyKey(ctx context.Context, key, requestHash, executionID string, ttl time.Duration) (IdempotencyRecord, bool, error) {
	if err := CheckIdempotencyKey(key); err != nil {
		return IdempotencyRecord{}, false, fmt.Errorf("claim idempotency key: %w", err)
	}
	if err := checkID("execution", executionID); err != nil {
		return IdempotencyRecord{}, false, fmt.Errorf("claim idempotency key %s: %w", Clip(key), err)
	}
	if ttl <= 0 {
		ttl = DefaultIdempotencyTTL
	}
	var (
		out     IdempotencyRecord
		claimed bool
	)
	err := db.update(ctx, func(tx *bolt.Tx) error {
		now := db.now().UTC()
		cur, ok, err := getIdem(tx, key)
		if err != nil {
			return err
		}
		if ok && live(cur, now) {
			if cur.RequestHash != requestHash {
				return fmt.Errorf("%w: key was used for another request (execution %q)", ErrIdempotencyConflict, cur.ExecutionID)
			}
			out, claimed = cur, false
			return nil
		}
		if ok {
			if err := deleteIdem(tx, cur); err != nil {
				return err
			}
		}
		rec := IdempotencyRecord{
			Key:         key,
			RequestHash: requestHash,
			ExecutionID: executionID,
			Status:      IdempotencyPending,
			CreatedAt:   now,
			ExpiresAt:   now.Add(ttl),
		}
		out, claimed = rec, true
		return putIdem(tx, rec)
	})
	if err != nil {
		return IdempotencyRecord{}, false, fmt.Errorf("claim idempotency key %s: %w", Clip(key), err)
	}
	return out, claimed, nil
}

// IdempotencyKey implements IdempotencyStore.
func (db *DB) IdempotencyKey(ctx context.Context, key string) (IdempotencyRecord, error) {
	var r IdempotencyRecord
	err := db.view(ctx, func(tx *bolt.Tx) error {
		cur, ok, err := getIdem(tx, key)
		if err != nil {
			return err
		}
		if !ok || !live(cur, db.now()) {
			return ErrNotFound
		}
		r = cur
		return nil
	})
	if err != nil {
		return IdempotencyRecord{}, fmt.Errorf("idempotency key %s: %w", Clip(key), err)
	}
	return r, nil
}

// FinishIdempotencyKey implements IdempotencyStore.
func (db *DB) FinishIdempotencyKey(ctx context.Context, key, status string) error {
	if status == "" || status == IdempotencyPending {
		return fmt.Errorf("finish idempotency key %s: status %q is not terminal", Clip(key), status)
	}
	err := db.update(ctx, func(tx *bolt.Tx) error {
		cur, ok, err := getIdem(tx, key)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotFound
		}
		cur.Status = status
		return putIdem(tx, cur)
	})
	if err != nil {
		return fmt.Errorf("finish idempotency key %s: %w", Clip(key), err)
	}
	return nil
}

// PurgeExpired implements IdempotencyStore. It walks the expiry index from
// the oldest, so its cost is proportional to what it deletes.
func (db *DB) PurgeExpired(ctx context.Context) (int, error) {
	var n int
	err := db.update(ctx, func(tx *bolt.Tx) error {
		n = 0
		now := db.now().UTC()
		// Collect first: deleting while iterating a bbolt cursor skips keys.
		var expired [][]byte
		c := tx.Bucket(bucketIdemExpiry).Cursor()
		for k, _ := c.First(); k != nil && len(k) >= 8 && !now.Before(time.Unix(0, int64(be64(k)))); k, _ = c.Next() {
			expired = append(expired, bytes.Clone(k))
		}
		for _, k := range expired {
			if err := tx.Bucket(bucketIdemExpiry).Delete(k); err != nil {
				return err
			}
			cur, ok, err := getIdem(tx, string(k[8:]))
			if err != nil {
				return err
			}
			// A key re-claimed since has a newer index entry; keep it.
			if ok && !live(cur, now) {
				if err := tx.Bucket(bucketIdem).Delete(k[8:]); err != nil {
					return err
				}
				n++
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("purge expired idempotency keys: %w", err)
	}
	return n, nil
}
