package store

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Head implements AuditStore. It reads the recorded head in one small read
// transaction, whatever the chain's length.
func (db *DB) Head(ctx context.Context) (seq uint64, hash string, err error) {
	var h chainHead
	err = db.view(ctx, func(tx *bolt.Tx) error {
		var err error
		h, err = readHead(tx)
		return err
	})
	if err != nil {
		return 0, "", fmt.Errorf("chain head: %w", err)
	}
	return h.Seq, h.Hash, nil
}
