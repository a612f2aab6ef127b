package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// ExecutionTrace implements ExecutionStore.
func (db *DB) ExecutionTrace(ctx context.Context, id string) (Execution, []Step, error) {
	var (
		e     Execution
		steps []Step
	)
	err := db.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketExecutions).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		if err := decodeRecord(v, &e); err != nil {
			return err
		}
		if err := loadBody(tx, &e); err != nil {
			return err
		}
		prefix := append([]byte(id), 0)
		c := tx.Bucket(bucketSteps).Cursor()
		for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
			steps = append(steps, Step{
				Index: int(binary.BigEndian.Uint64(k[len(prefix):])),
				Data:  bytes.Clone(v),
			})
		}
		return nil
	})
	if err != nil {
		return Execution{}, nil, fmt.Errorf("execution trace %q: %w", id, err)
	}
	return e, steps, nil
}
