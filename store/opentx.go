package store

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The open write transaction. On a journaled database a batch is durable
// once its journal record is synced, so bbolt's commit of it can wait:
// the committer keeps one bbolt write transaction open across batches,
// each batch's changes living in it once its record is synced and its
// callers are told, and commits it (unsynced, as before) every
// openMaxBatches batches or openMaxBytes of operations, after openIdle
// without writes, before a checkpoint, before a read, and at Close. A
// leaf a sequential chain appends to is then spilled and written once
// per bbolt commit instead of once per step, and bbolt's nodes stay
// materialized between batches. See .rationale/storage.md "Why is
// bbolt's write transaction kept open across journaled batches?".
//
// Everything here is the commitMu holder's, like the rest of the
// committer's state; dirty is read by readers without it.

const (
	// openMaxBatches and openMaxBytes bound what the open transaction
	// holds (bbolt's dirty nodes, the operations kept for re-applying).
	openMaxBatches = 128
	openMaxBytes   = 1 << 20
	// openIdle is how long the open transaction waits without a write
	// before the committer commits it, so a reader after a burst rarely
	// pays for the commit.
	openIdle = time.Millisecond
)

// openTx is the write transaction kept open across journaled batches.
type openTx struct {
	tx *bolt.Tx // nil when none is open
	// acked holds the operations of the batches acknowledged since the
	// last bbolt commit, in order: their journal records' payloads. A
	// rollback (a batch member failing, a commit failing) loses them
	// from tx; they are applied again and committed before the next
	// batch (see batchTx).
	acked   []byte
	batches int // batches in acked
	ops     int // operations in acked, for DB.nearRemap
	// stuck is the error of the last commit that failed (a full
	// disk): no write is taken until a commit succeeds, so a disk
	// that fills fails writes as it did before the transaction was
	// kept open, rather than filling the journal.
	stuck error
}

// batchTx returns the open write transaction, beginning one if none is
// open. Acknowledged operations a rollback dropped from bbolt's
// transaction are first applied again and committed (flushOpen), so the
// next rollback has nothing to apply again: a batch with many failing
// members, or writers whose every other write fails, re-applies each
// acknowledged operation once, not once per failure (up to 1 MiB each).
func (db *DB) batchTx() (*bolt.Tx, error) {
	if db.otx.tx != nil {
		return db.otx.tx, nil
	}
	if db.otx.batches > 0 {
		if err := db.flushOpen(); err != nil {
			return nil, err
		}
	}
	tx, err := db.bolt.Begin(true)
	if err != nil {
		return nil, err
	}
	db.otx.tx = tx
	return tx, nil
}

// reapplied begins a write transaction holding every acknowledged
// operation bbolt has not committed, after a rollback dropped them.
// Journaled and acknowledged already: not recorded again.
func (db *DB) reapplied() (*bolt.Tx, error) {
	tx, err := db.bolt.Begin(true)
	if err != nil {
		return nil, err
	}
	if err := guard(func() error { return applyOps(tx, db.otx.acked) }); err != nil {
		_ = tx.Rollback()
		return nil, fmt.Errorf("apply acknowledged writes again: %w", err)
	}
	return tx, nil
}

// dropBatch rolls the open transaction back after a batch that is not
// acknowledged wrote to it; the acknowledged batches before it are
// applied again and committed before the next one (batchTx).
func (db *DB) dropBatch() {
	if db.otx.tx != nil {
		_ = db.otx.tx.Rollback()
		db.otx.tx = nil
	}
}

// acked notes the batch just journaled (its record synced) as
// acknowledged in the open transaction.
func (db *DB) ackBatch(ops []byte, n int) {
	db.otx.acked = append(db.otx.acked, ops...)
	db.otx.batches++
	db.otx.ops += n
	if !db.dirty.Load() {
		db.dirty.Store(true)
		select {
		case db.kick <- struct{}{}:
		default:
		}
	}
}

// openFull reports whether the open transaction holds as much as it may.
func (db *DB) openFull() bool {
	return db.otx.batches >= openMaxBatches || len(db.otx.acked) >= openMaxBytes
}

// flushOpen commits the open transaction's acknowledged batches to bbolt
// (unsynced: their journal records are synced). On error (a full disk)
// nothing is lost: the records stay in the journal and the operations
// in memory, the next flush tries again, and no checkpoint happens
// before one succeeds (checkpoint flushes first).
func (db *DB) flushOpen() error {
	if db.otx.batches == 0 {
		db.dropBatch() // nothing acknowledged in it
		return nil
	}
	tx := db.otx.tx
	if tx == nil {
		var err error
		if tx, err = db.reapplied(); err != nil {
			return err
		}
	}
	db.otx.tx = nil
	db.setAllocSize(tx)
	db.pw.discard()
	statsBefore(tx)
	if err := guard(tx.Commit); err != nil {
		_ = tx.Rollback() // bbolt rolled back already, except after a panic
		db.otx.stuck = fmt.Errorf("commit acknowledged writes to the database file: %w", err)
		return db.otx.stuck
	}
	statsAfter(tx)
	if cap(db.otx.acked) > 4<<20 {
		db.otx.acked = nil
	}
	db.otx = openTx{acked: db.otx.acked[:0]}
	db.dirty.Store(false)
	return nil
}

// settle makes every acknowledged write visible to a read transaction
// that begins after it returns: bbolt's readers see only what bbolt
// committed.
func (db *DB) settle() error {
	db.commitMu.Lock()
	defer db.commitMu.Unlock()
	if !db.dirty.Load() {
		return nil
	}
	db.settles.Add(1)
	if err := db.flushOpen(); err != nil {
		return fmt.Errorf("read: %w", EnvError(err))
	}
	return nil
}

// idleFlush commits the open transaction once no write has come for
// openIdle; it returns how long to wait before looking again (0: the
// transaction is committed or there is none).
func (db *DB) idleFlush() time.Duration {
	if !db.dirty.Load() {
		return 0
	}
	if wait := openIdle - time.Since(time.Unix(0, db.lastWrite.Load())); wait > 0 {
		return wait
	}
	if !db.commitMu.TryLock() {
		return openIdle // someone is committing: look again later
	}
	defer db.commitMu.Unlock()
	if wait := openIdle - time.Since(time.Unix(0, db.lastWrite.Load())); wait > 0 {
		return wait
	}
	if err := db.flushOpen(); err != nil {
		// Kept for the next try (a write, a read, the next idle).
		return openIdle * 100
	}
	return 0
}
