package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ClearIdempotencyHint is the operator's way out of a corrupt idempotency
// record, quoted by CorruptIdempotencyError.
const ClearIdempotencyHint = "list such keys with `nano-vm-mcp idempotency ls` and clear one with `nano-vm-mcp idempotency rm KEY` (the server must be stopped; the run the key started, if any, is kept)"

// CorruptIdempotencyError reports an idempotency record that cannot be
// decoded. It wraps ErrCorrupt. The key stays refused until an operator
// clears it: whether its request ran is unknown, so running it again
// could run it twice.
type CorruptIdempotencyError struct {
	Key string
	Err error
}

func (e *CorruptIdempotencyError) Error() string {
	return fmt.Sprintf("the stored record of idempotency key %s is corrupt (%v); %s", Clip(e.Key), e.Err, ClearIdempotencyHint)
}

func (e *CorruptIdempotencyError) Unwrap() error { return e.Err }

func getIdem(tx *bolt.Tx, key string) (IdempotencyRecord, bool, error) {
	var r IdempotencyRecord
	v := tx.Bucket(bucketIdem).Get([]byte(key))
	if v == nil {
		return r, false, nil
	}
	if err := decodeRecord(v, &r); err != nil {
		return r, false, &CorruptIdempotencyError{Key: key, Err: err}
	}
	if r.Key != key {
		return r, false, &CorruptIdempotencyError{Key: key, Err: fmt.Errorf("%w: the record names key %s", ErrCorrupt, Clip(r.Key))}
	}
	return r, true, nil
}

func putIdem(tx *bolt.Tx, r IdempotencyRecord) error {
	v, err := json.Marshal(&r)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	if err := put(tx, bucketIdem, []byte(r.Key), v); err != nil {
		return err
	}
	return put(tx, bucketIdemExpiry, timeKey(r.ExpiresAt, r.Key), nil)
}

func deleteIdem(tx *bolt.Tx, r IdempotencyRecord) error {
	if err := del(tx, bucketIdemExpiry, timeKey(r.ExpiresAt, r.Key)); err != nil {
		return err
	}
	return del(tx, bucketIdem, []byte(r.Key))
}

// live reports whether r is honoured at now: it expires at ExpiresAt.
func live(r IdempotencyRecord, now time.Time) bool { return now.Before(r.ExpiresAt) }

// ClaimIdempotencyKey implements IdempotencyStore.
func (db *DB) ClaimIdempotencyKey(ctx context.Context, key, requestHash, traceID string, ttl time.Duration) (IdempotencyRecord, bool, error) {
	if err := CheckIdempotencyKey(key); err != nil {
		return IdempotencyRecord{}, false, fmt.Errorf("claim idempotency key: %w", err)
	}
	if err := checkID("trace", traceID); err != nil {
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
				return fmt.Errorf("%w: key was used for another request (run %q)", ErrIdempotencyConflict, cur.TraceID)
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
			TraceID:     traceID,
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
			if err := del(tx, bucketIdemExpiry, k); err != nil {
				return err
			}
			cur, ok, err := getIdem(tx, string(k[8:]))
			if errors.As(err, new(*CorruptIdempotencyError)) {
				// Left for the operator (idempotency ls / rm); the
				// other keys are purged.
				continue
			}
			if err != nil {
				return err
			}
			// A key re-claimed since has a newer index entry; keep it.
			if ok && !live(cur, now) {
				if err := del(tx, bucketIdem, k[8:]); err != nil {
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

// IdempotencyEntry is one stored idempotency key, as `nano-vm-mcp
// idempotency ls` lists it: its record, or the error decoding it.
type IdempotencyEntry struct {
	Key    string
	Record IdempotencyRecord
	// Err is a *CorruptIdempotencyError when the record cannot be decoded.
	Err error
}

// IdempotencyEntries lists every stored idempotency key in key order,
// expired and corrupt ones included, for the operator.
func (db *DB) IdempotencyEntries(ctx context.Context) ([]IdempotencyEntry, error) {
	var out []IdempotencyEntry
	err := db.view(ctx, func(tx *bolt.Tx) error {
		out = out[:0]
		c := tx.Bucket(bucketIdem).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			r, _, err := getIdem(tx, string(k))
			out = append(out, IdempotencyEntry{Key: string(k), Record: r, Err: err})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list idempotency keys: %w", err)
	}
	return out, nil
}

// DeleteIdempotencyKey removes key's record and its expiry index entries,
// also when the record is corrupt, so the key can be used again. It
// reports whether there was a record. The run the key started is kept.
func (db *DB) DeleteIdempotencyKey(ctx context.Context, key string) (bool, error) {
	var found bool
	err := db.update(ctx, func(tx *bolt.Tx) error {
		found = tx.Bucket(bucketIdem).Get([]byte(key)) != nil
		// The expiry of a corrupt record is unknown: find its index
		// entries by their key suffix.
		var stale [][]byte
		c := tx.Bucket(bucketIdemExpiry).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) >= 8 && string(k[8:]) == key {
				stale = append(stale, bytes.Clone(k))
			}
		}
		for _, k := range stale {
			if err := del(tx, bucketIdemExpiry, k); err != nil {
				return err
			}
		}
		return del(tx, bucketIdem, []byte(key))
	})
	if err != nil {
		return false, fmt.Errorf("delete idempotency key %s: %w", Clip(key), err)
	}
	return found, nil
}
