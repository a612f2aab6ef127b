package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// PutProgram implements ProgramStore.
func (db *DB) PutProgram(ctx context.Context, p Program) (Program, error) {
	if err := checkID("program", p.ID); err != nil {
		return Program{}, fmt.Errorf("put program: %w", err)
	}
	now := db.now().UTC()
	var out Program
	err := db.update(ctx, func(tx *bolt.Tx) error {
		rec := p
		b := tx.Bucket(bucketPrograms)
		if old := b.Get([]byte(p.ID)); old != nil {
			var prev Program
			if err := decodeRecord(old, &prev); err != nil {
				return err
			}
			if rec.CreatedAt.IsZero() {
				rec.CreatedAt = prev.CreatedAt
			}
			if err := del(tx, bucketProgramsTime, timeKey(prev.CreatedAt, prev.ID)); err != nil {
				return err
			}
		}
		if rec.CreatedAt.IsZero() {
			rec.CreatedAt = now
		}
		rec.CreatedAt = rec.CreatedAt.UTC()
		v, err := json.Marshal(&rec)
		if err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		if err := put(tx, bucketPrograms, []byte(rec.ID), v); err != nil {
			return err
		}
		out = rec
		return put(tx, bucketProgramsTime, timeKey(rec.CreatedAt, rec.ID), nil)
	})
	if err != nil {
		return Program{}, fmt.Errorf("put program %q: %w", p.ID, err)
	}
	return out, nil
}

// Program implements ProgramStore.
func (db *DB) Program(ctx context.Context, id string) (Program, error) {
	var p Program
	err := db.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketPrograms).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		return decodeRecord(v, &p)
	})
	if err != nil {
		return Program{}, fmt.Errorf("program %q: %w", id, err)
	}
	return p, nil
}

// Programs implements ProgramStore.
func (db *DB) Programs(ctx context.Context, limit int) ([]Program, error) {
	var out []Program
	err := db.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPrograms)
		c := tx.Bucket(bucketProgramsTime).Cursor()
		for k, _ := c.Last(); k != nil && (limit <= 0 || len(out) < limit); k, _ = c.Prev() {
			v := b.Get(k[8:])
			if v == nil {
				return fmt.Errorf("%w: program %q indexed but missing", ErrCorrupt, k[8:])
			}
			var p Program
			if err := decodeRecord(v, &p); err != nil {
				return err
			}
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list programs: %w", err)
	}
	return out, nil
}

// DeleteProgram implements ProgramStore.
func (db *DB) DeleteProgram(ctx context.Context, id string) error {
	err := db.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPrograms)
		v := b.Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		var p Program
		if err := decodeRecord(v, &p); err != nil {
			return err
		}
		// Collect first: deleting while iterating a bbolt cursor skips keys.
		var execIDs []string
		prefix := append([]byte(id), 0)
		c := tx.Bucket(bucketRunProgram).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			execIDs = append(execIDs, string(k[len(prefix)+8:]))
		}
		for _, eid := range execIDs {
			if err := db.deleteRun(tx, eid); err != nil {
				return err
			}
		}
		if err := del(tx, bucketProgramsTime, timeKey(p.CreatedAt, p.ID)); err != nil {
			return err
		}
		return del(tx, bucketPrograms, []byte(id))
	})
	if err != nil {
		return fmt.Errorf("delete program %q: %w", id, err)
	}
	return nil
}
