package store

import (
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

func getSecret(tx *bolt.Tx, id string) (SecretRecord, bool, error) {
	var r SecretRecord
	v := tx.Bucket(bucketSecrets).Get([]byte(id))
	if v == nil {
		return r, false, nil
	}
	if err := decodeRecord(v, &r); err != nil {
		return r, false, err
	}
	return r, true, nil
}

func putSecret(tx *bolt.Tx, r SecretRecord) error {
	v, err := json.Marshal(&r)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	return put(tx, bucketSecrets, []byte(r.ID), v)
}

// PutSecret implements SecretStore.
func (db *DB) PutSecret(ctx context.Context, rec SecretRecord) error {
	if err := checkSecretID(rec.ID); err != nil {
		return fmt.Errorf("put secret: %w", err)
	}
	if rec.Tombstoned || len(rec.Ciphertext) == 0 {
		return fmt.Errorf("put secret %q: record has no ciphertext", rec.ID)
	}
	if rec.CreatedAt.IsZero() {
		rec.CreatedAt = db.now().UTC()
	}
	err := db.update(ctx, func(tx *bolt.Tx) error {
		cur, ok, err := getSecret(tx, rec.ID)
		if err != nil {
			return err
		}
		if ok && cur.Tombstoned {
			return ErrTombstoned
		}
		return putSecret(tx, rec)
	})
	if err != nil {
		return fmt.Errorf("put secret %q: %w", rec.ID, err)
	}
	return nil
}

// Secret implements SecretStore.
func (db *DB) Secret(ctx context.Context, id string) (SecretRecord, error) {
	var r SecretRecord
	err := db.view(ctx, func(tx *bolt.Tx) error {
		cur, ok, err := getSecret(tx, id)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotFound
		}
		r = cur
		return nil
	})
	if err != nil {
		return SecretRecord{}, fmt.Errorf("secret %q: %w", id, err)
	}
	return r, nil
}

// Secrets implements SecretStore.
func (db *DB) Secrets(ctx context.Context) ([]SecretRecord, error) {
	var out []SecretRecord
	err := db.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSecrets).ForEach(func(_, v []byte) error {
			var r SecretRecord
			if err := decodeRecord(v, &r); err != nil {
				return err
			}
			r.Nonce, r.Ciphertext = nil, nil
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	return out, nil
}

// EraseSecret implements SecretStore.
func (db *DB) EraseSecret(ctx context.Context, id string) (SecretRecord, error) {
	var out SecretRecord
	err := db.update(ctx, func(tx *bolt.Tx) error {
		cur, ok, err := getSecret(tx, id)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotFound
		}
		if !cur.Tombstoned {
			cur.Tombstoned = true
			cur.ErasedAt = db.now().UTC()
			cur.Nonce, cur.Ciphertext = nil, nil
			if err := putSecret(tx, cur); err != nil {
				return err
			}
		}
		out = cur
		return nil
	})
	if err != nil {
		return SecretRecord{}, fmt.Errorf("erase secret %q: %w", id, err)
	}
	return out, nil
}
