package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Group commit. Every write is queued to one committer goroutine, which
// runs everything queued so far in a single bbolt transaction and one
// fsync. A lone writer pays one fsync and no added delay; while a commit is
// syncing, new writes pile up and share the next one, so durable throughput
// grows with concurrency. See .rationale/storage.md "Why our own group
// commit rather than bolt.DB.Batch?".
//
// A write function may run more than once (when another write in its batch
// fails, the batch is retried without it), so it must compute everything
// from the transaction and only assign, never accumulate, outer variables.

// txCache is what the committer remembers within one write transaction.
// Only the committer goroutine touches it, and DB.write clears it at the
// start of every transaction, so a batch that is rolled back and retried
// never sees values from the failed attempt.
type txCache struct {
	head   chainHead
	headOK bool
	// headDirty is set when an append moved the head: write stores it
	// once, at the end of the transaction, however many envelopes the
	// batch appended.
	headDirty bool
	// logNext is the step log's next number once a step of the
	// transaction looked it up (0: not yet; see putStep).
	logNext uint64
}

// write runs fn in a write transaction with a fresh txCache, and stores
// the chain head if fn moved it. On a journaled database the
// transaction's record is synced to the journal before bbolt commits it
// unsynced (see journal.go).
func (db *DB) write(fn func(tx *bolt.Tx) error) error {
	var err error
	if db.jr != nil {
		err = db.journaledWrite(fn)
	} else {
		err = db.boltWrite(fn)
	}
	switch {
	case err != nil:
		// Maybe committed (a checkpoint failed after), maybe not: the
		// next transaction reads the stored head.
		db.head = committedHead{}
	case db.txc.headDirty:
		db.head = committedHead{h: db.txc.head, ok: true}
	}
	return err
}

// committedHead is the chain head as of the last committed write
// transaction, so that a transaction need not read and decode the stored
// one (a sequential chain commits one append per transaction). Only the
// commitMu holder touches it; every write goes through DB.write, which
// keeps it or, when a transaction's outcome is unsure, forgets it.
type committedHead struct {
	h  chainHead
	ok bool
}

// boltWrite is write on a database without the journal.
func (db *DB) boltWrite(fn func(tx *bolt.Tx) error) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		db.txc = txCache{}
		if err := fn(tx); err != nil {
			return err
		}
		if db.txc.headDirty {
			if err := putChainHead(tx, db.txc.head); err != nil {
				return fmt.Errorf("put chain head: %w", err)
			}
		}
		return nil
	})
}

// journaledWrite is write on a journaled database: fn's mutations are
// recorded (put, del, createBucket) in the open write transaction (see
// opentx.go), the record is written and synced to the journal (one
// fdatasync), and the caller is told: the batch is durable. bbolt
// commits it, unsynced, with the batches around it (flushOpen).
func (db *DB) journaledWrite(fn func(tx *bolt.Tx) error) error {
	return db.journaledBatch(fn, false)
}

// journaledBatch is journaledWrite; retried is set when fn runs again
// after the open transaction was committed or the journal checkpointed
// to make room for it.
func (db *DB) journaledBatch(fn func(tx *bolt.Tx) error, retried bool) error {
	if db.jerr != nil {
		return db.jerr
	}
	if db.otx.stuck != nil {
		if err := db.flushOpen(); err != nil {
			return err // nothing of this batch is stored
		}
	}
	tx, err := db.batchTx()
	if err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			// A fault inside bbolt (a damaged page, see guard): whatever
			// the batch left half done in the open transaction goes.
			db.rec.tx = nil
			db.dropBatch()
			panic(r)
		}
	}()
	db.txc = txCache{}
	db.jr.begin()
	db.rec.tx, db.rec.ops = tx, 0
	err = fn(tx)
	if err == nil && db.txc.headDirty {
		if err = putChainHead(tx, db.txc.head); err != nil {
			err = fmt.Errorf("put chain head: %w", err)
		}
	}
	db.rec.tx = nil
	if err != nil {
		if db.rec.ops > 0 || db.otx.batches == 0 {
			// Rolled back; the batches acknowledged before it are
			// applied again to the next transaction. (A batch that
			// recorded no operation changed nothing: every mutation
			// is recorded, so the transaction is kept as it is.)
			db.dropBatch()
		}
		return err
	}
	if db.rec.ops == 0 && !db.forceCommit {
		if db.otx.batches == 0 {
			db.dropBatch() // nothing changed: the rollback is the commit
		}
		return nil
	}
	n := int64(len(db.jr.buf))
	if n > int64(db.jr.maxRecord()) || db.nearRemap(tx) {
		if db.otx.batches > 0 && !retried {
			// The synced path's first slot makes the journal's records
			// stale: the acknowledged batches go to bbolt first, then
			// this one runs again, alone.
			db.dropBatch()
			if err := db.flushOpen(); err != nil {
				return err
			}
			return db.journaledBatch(fn, true)
		}
		db.otx.tx = nil
		return db.syncedCommit(tx)
	}
	lap, pos, ok := db.jr.place(n)
	if !ok {
		if retried {
			// No room even after a checkpoint; nothing else is in tx.
			db.otx.tx = nil
			return db.syncedCommit(tx)
		}
		// The records since the checkpoint fill the journal: make
		// them redundant first, then run fn again.
		db.dropBatch()
		if err := db.flushOpen(); err != nil {
			return err
		}
		if err := db.checkpoint(); err != nil {
			return db.fail(err)
		}
		return db.journaledBatch(fn, true)
	}
	if err := db.jr.write(lap, pos, uint64(tx.ID())); err != nil {
		// Maybe written in part, maybe whole: a checkpoint (with a
		// new salt) makes the record stale either way, once the
		// acknowledged batches before it are in bbolt.
		db.dropBatch()
		if ferr := db.flushOpen(); ferr != nil {
			return errors.Join(err, db.fail(ferr))
		}
		if cerr := db.checkpoint(); cerr != nil {
			return errors.Join(err, db.fail(cerr))
		}
		return err
	}
	// Durable: from here on the batch is acknowledged whatever bbolt
	// does with it.
	db.ackBatch(db.jr.buf[jRecHdr:], db.rec.ops)
	db.jr.trim()
	if db.forceCommit {
		return db.flushOpen()
	}
	// Committing the open transaction when full, and checkpointing,
	// wait until the batch's members are told (upkeep).
	return nil
}

// upkeep commits the open transaction once it is full or the journal
// is due a checkpoint, and checkpoints; commitBatch runs it after the
// batch's members were told, so they go on meanwhile.
func (db *DB) upkeep() {
	if db.jr == nil || db.jerr != nil {
		return
	}
	if db.otx.batches > 0 && (db.openFull() || db.jr.used() >= db.ckptAt) {
		if err := db.flushOpen(); err != nil {
			// Kept in memory and in the journal; the next write,
			// read or idle moment tries again.
			return
		}
	}
	if db.otx.batches == 0 && (db.jr.used() >= db.ckptAt || db.bolt.Stats().PendingPageN >= journalPendingPages) {
		if err := db.checkpoint(); err != nil {
			// The batches are durable (their records are synced);
			// the next writes are not accepted until the store is
			// reopened.
			db.fail(err)
		}
	}
}

type writeReq struct {
	fn func(tx *bolt.Tx) error
	// err is the outcome, set before finished is released.
	err error
	// finished is released when the outcome is known, when waiting is
	// set (queueAndWait): a WaitGroup rather than a channel, so that a
	// request kept in its caller's struct (a step commit's) costs no
	// allocation of its own.
	finished sync.WaitGroup
	waiting  bool
	// then, when set, is told the outcome on the committer goroutine; it
	// must not block. A request has then or waiting, not both.
	then func(error)
}

func (r *writeReq) finish(err error) {
	r.err = err
	switch {
	case r.then != nil:
		r.then(err)
	case r.waiting:
		// Last: the waiter may reuse r once released.
		r.finished.Done()
	}
}

// errMemberFailed aborts a batch transaction after one member failed.
var errMemberFailed = errors.New("batch member failed")

// update commits fn and waits until it is durable. Once queued the write
// completes even if ctx is cancelled, so the caller never has to guess
// whether it happened.
//
// A lone writer (nothing queued or committing, no MaxBatchDelay) commits
// on its own goroutine: a sequential chain of steps then pays no hand-off
// to the committer and back (two goroutine wake-ups per step). Anyone
// who comes while it commits queues as usual and shares the committer's
// next batch.
func (db *DB) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if db.delay == 0 && db.inflight.Load() == 0 {
		if done, err := db.commitAlone(fn); done {
			return err
		}
	}
	return db.queueAndWait(ctx, &writeReq{fn: fn})
}

// updateReq is update of req.fn, for a caller that keeps req (only fn
// set, and used once) in a struct of its own: a step commit's stepWrite,
// which then needs no allocation for the request.
func (db *DB) updateReq(ctx context.Context, req *writeReq) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if db.delay == 0 && db.inflight.Load() == 0 {
		if done, err := db.commitAlone(req.fn); done {
			return err
		}
	}
	return db.queueAndWait(ctx, req)
}

// queueAndWait queues req and waits for its outcome.
func (db *DB) queueAndWait(ctx context.Context, req *writeReq) error {
	req.waiting = true
	req.finished.Add(1)
	if err := db.queue1(ctx, req); err != nil {
		return err
	}
	req.finished.Wait()
	return req.err
}

// commitAlone commits fn on the caller's goroutine when nobody else is
// committing or queued; done is false when it did not (the caller
// queues fn).
func (db *DB) commitAlone(fn func(tx *bolt.Tx) error) (done bool, err error) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return true, ErrClosed
	}
	if !db.commitMu.TryLock() {
		return false, nil
	}
	defer db.commitMu.Unlock()
	// Checked again under commitMu: a write queued before this one is
	// counted until the committer has finished it.
	if db.inflight.Load() != 0 {
		return false, nil
	}
	req := writeReq{fn: fn}
	db.commitBatch([]*writeReq{&req})
	return true, req.err
}

// commitBatch runs batch under commitMu, telling onCommit.
func (db *DB) commitBatch(batch []*writeReq) {
	if db.onCommit == nil {
		db.runBatch(batch)
	} else {
		start := time.Now()
		db.runBatch(batch)
		db.onCommit(len(batch), time.Since(start))
	}
	db.upkeep()
	db.lastWrite.Store(time.Now().UnixNano())
}

// queue1 queues req, whose then or waiting is set, and returns at once;
// req is told the outcome unless queue1 fails. Writes are committed in
// the order they were queued.
func (db *DB) queue1(ctx context.Context, req *writeReq) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	db.inflight.Add(1)
	db.queue <- req
	return nil
}

func (db *DB) commitLoop() {
	defer close(db.done)
	batch := make([]*writeReq, 0, db.maxBatch)
	var idleC <-chan time.Time
	if db.jr != nil {
		// Records wait in the journal after the last write: checkpoint
		// once idle. A ticker, since writers that commit alone do not
		// pass through this loop.
		idle := time.NewTicker(journalIdle / 4)
		defer idle.Stop()
		idleC = idle.C
	}
	openT := time.NewTimer(time.Hour)
	openT.Stop()
	defer openT.Stop()
	for {
		var req *writeReq
		var ok bool
		select {
		case req, ok = <-db.queue:
		case <-idleC:
			db.commitMu.Lock()
			if db.jerr == nil && db.jr.used() > 0 && time.Since(time.Unix(0, db.lastWrite.Load())) >= journalIdle &&
				db.flushOpen() == nil {
				// (A commit that fails, a full disk, is tried again
				// later: the store is not failed for it.)
				if err := db.cleanCheckpoint(); err != nil {
					db.fail(err)
				}
			}
			db.commitMu.Unlock()
			continue
		case <-db.kick:
			// The open transaction holds acknowledged writes: commit
			// it once idle.
			openT.Reset(openIdle)
			continue
		case <-openT.C:
			if wait := db.idleFlush(); wait > 0 {
				openT.Reset(wait)
			}
			continue
		case reply := <-db.ckptReq:
			db.commitMu.Lock()
			reply <- db.checkpointNow()
			db.commitMu.Unlock()
			continue
		}
		if !ok {
			return
		}
		batch = append(batch[:0], req)
		batch = db.gather(batch)
		db.commitMu.Lock()
		db.commitBatch(batch)
		db.commitMu.Unlock()
		db.inflight.Add(-int64(len(batch)))
		clear(batch)
	}
}

// gather adds whatever is already queued, and with MaxBatchDelay waits up
// to that long for more.
func (db *DB) gather(batch []*writeReq) []*writeReq {
	var timer <-chan time.Time
	if db.delay > 0 {
		t := time.NewTimer(db.delay)
		defer t.Stop()
		timer = t.C
	}
	for len(batch) < db.maxBatch {
		select {
		case req, ok := <-db.queue:
			if !ok {
				return batch
			}
			batch = append(batch, req)
			continue
		default:
		}
		if timer == nil {
			return batch
		}
		select {
		case req, ok := <-db.queue:
			if !ok {
				return batch
			}
			batch = append(batch, req)
		case <-timer:
			return batch
		}
	}
	return batch
}

// runBatch commits batch in one transaction. A member that fails is taken
// out and the rest retried; a member that failed after others had written
// in the same transaction is then re-run alone, so its error reflects the
// committed state and not a rolled-back one.
func (db *DB) runBatch(batch []*writeReq) {
	pending := batch
	var solo []*writeReq
	for len(pending) > 0 {
		failed, memberErr := -1, error(nil)
		err := guard(func() error {
			return db.write(func(tx *bolt.Tx) error {
				for i, r := range pending {
					if err := r.fn(tx); err != nil {
						failed, memberErr = i, err
						return errMemberFailed
					}
				}
				return nil
			})
		})
		if failed < 0 || !errors.Is(err, errMemberFailed) {
			// A commit that failed (a full disk) is rolled back whole:
			// nothing of the batch is stored.
			err = EnvError(err)
			for _, r := range pending {
				r.finish(err)
			}
			break
		}
		if failed == 0 {
			// It ran first on a clean transaction: its error is final.
			pending[0].finish(memberErr)
		} else {
			solo = append(solo, pending[failed])
		}
		pending = append(pending[:failed:failed], pending[failed+1:]...)
	}
	for _, r := range solo {
		r.finish(EnvError(guard(func() error { return db.write(r.fn) })))
	}
}
