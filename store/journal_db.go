package store

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

// journalIdle is how long the committer waits with records after the
// last checkpoint before it checkpoints anyway, so an idle server's
// journal is clean and its bbolt file synced.
const journalIdle = 2 * time.Second

// journalPendingPages is how many pages freed since the last checkpoint
// (kept from reuse by its pin) make the committer checkpoint: bbolt
// sorts them all into the freelist it writes at every commit, and the
// file grows by them.
const journalPendingPages = 512

// restoreMetas writes the meta pages saved by the checkpoint s back
// into the bbolt file at path and syncs it: bbolt then opens exactly the
// checkpointed state, whose pages the checkpoint's pin kept from reuse,
// whatever a power cut left of the later, unsynced commits. lastTxid is
// the txid of the last journal record: a bbolt file further on was
// written without the journal, and is left alone.
func restoreMetas(path string, s jSlot, lastTxid uint64, timeout time.Duration) error {
	_, ok0 := readMeta(bytesReaderAt(s.meta[0][:]), 0)
	_, ok1 := readMeta(bytesReaderAt(s.meta[1][:]), 0)
	if !ok0 && !ok1 {
		return fmt.Errorf("%w: journal checkpoint %d: no saved meta page validates", ErrCorrupt, s.gen)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: the journal %s holds commits of a database file that is missing: put the file back beside it, or remove the journal to start empty", ErrCorrupt, path+JournalSuffix)
	}
	if err != nil {
		return fmt.Errorf("restore checkpoint from journal: %w", err)
	}
	defer f.Close()
	// bbolt's own lock, held while the pages are written: a process of
	// a build without the journal may hold the file.
	if err := lockJournal(f, timeout); err != nil {
		return fmt.Errorf("restore checkpoint from journal: bbolt file: %w", err)
	}
	defer unlockJournal(f)
	var cur uint64
	known := false
	for _, off := range []int64{0, int64(s.pageSize)} {
		if m, ok := readMeta(f, off); ok {
			known = true
			cur = max(cur, m.txid)
		}
	}
	if known && cur > lastTxid {
		return fmt.Errorf("%w: the bbolt file is at transaction %d, past its journal's last record (%d): it was written without the journal after an unclean stop; move %s aside to keep the file as it is", ErrCorrupt, cur, lastTxid, path+JournalSuffix)
	}
	if known && cur < s.txid {
		return fmt.Errorf("%w: the bbolt file is at transaction %d, before its journal's checkpoint (%d): the file is not the one the journal belongs to", ErrCorrupt, cur, s.txid)
	}
	for i, off := range []int64{0, int64(s.pageSize)} {
		if _, err := f.WriteAt(s.meta[i][:], off); err != nil {
			return fmt.Errorf("restore checkpoint from journal: %w", err)
		}
	}
	if err := fdatasync(f); err != nil {
		return fmt.Errorf("restore checkpoint from journal: %w", err)
	}
	return nil
}

type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(b)) {
		return 0, syscall.EINVAL
	}
	return copy(p, b[off:]), nil
}

// recover replays the records found after the journal's checkpoint (the
// bbolt file is back at that checkpoint), then checkpoints. Without
// journaling it leaves the journal marking the bbolt file authoritative.
func (db *DB) recover(j *journal, replay []jRecord, journaled, freelistSynced bool) error {
	db.jr = j
	if len(replay) > 0 {
		err := guard(func() error {
			return db.bolt.Update(func(tx *bolt.Tx) error {
				db.setAllocSize(tx)
				for _, r := range replay {
					if err := applyOps(tx, r.ops); err != nil {
						return fmt.Errorf("journal record %d: %w", r.seq, err)
					}
				}
				return nil
			})
		})
		if err != nil {
			return fmt.Errorf("replay journal: %w", err)
		}
	}
	if !journaled {
		if err := db.bolt.Sync(); err != nil {
			return fmt.Errorf("journal checkpoint: sync: %w", err)
		}
		if err := j.checkpoint(jSlot{}); err != nil {
			return err
		}
		db.jr = nil
		return j.close()
	}
	db.ckptAt = (j.size - jDataStart) / 4
	db.openDatasz = journalMmap
	db.rec = &recorder{j: j}
	recorders.Store(db.bolt, db.rec)
	if len(replay) > 0 || !freelistSynced {
		// After an unclean stop the checkpoint restored has no
		// freelist (see commitFreelist): store one, so the next
		// Open need not rebuild it.
		return db.cleanCheckpoint()
	}
	return db.checkpoint()
}

// commitFreelist commits an empty transaction that writes bbolt's
// freelist, journaled like any other (a record without operations).
// Journaled commits skip the freelist (bbolt's NoFreelistSync): bbolt
// rewrites the whole list, free and pending page ids, at every commit
// that writes it, several pages for each step of a sequential chain,
// while the journal's replay needs none of it. A bbolt file whose meta
// names no freelist is still complete: bbolt rebuilds the list by
// walking the tree, which costs an Open time in proportion to the file.
// So the states a later Open starts from (Close, an idle store, the end
// of a recovery) get one, through this commit before their checkpoint.
// A checkpoint without one (the committer's, when the journal or the
// pinned pages fill) is as safe, only slower to open after a power cut.
func (db *DB) commitFreelist() error {
	db.bolt.NoFreelistSync = false
	db.forceCommit = true
	defer func() {
		db.bolt.NoFreelistSync = true
		db.forceCommit = false
	}()
	return guard(func() error {
		return db.journaledWrite(func(*bolt.Tx) error { return nil })
	})
}

// cleanCheckpoint is commitFreelist, then a checkpoint: the .db file is
// then complete, current and quick to open by itself.
func (db *DB) cleanCheckpoint() error {
	if err := db.commitFreelist(); err != nil {
		return err
	}
	return db.checkpoint()
}

// checkpoint makes every commit so far durable in the bbolt file and
// records that state in the journal: db.Sync (one fdatasync of the
// bbolt file), the meta pages saved in the next header slot (one
// fdatasync of the journal), then the pin moves to this state. Nothing
// commits in between: only the committer writes.
func (db *DB) checkpoint() error {
	// Acknowledged batches only in the open transaction go to bbolt
	// first: the new checkpoint makes their records redundant.
	if err := db.flushOpen(); err != nil {
		return fmt.Errorf("journal checkpoint: %w", err)
	}
	if err := db.bolt.Sync(); err != nil {
		return fmt.Errorf("journal checkpoint: sync: %w", err)
	}
	ps := db.bolt.Info().PageSize
	s := jSlot{metas: true, pageSize: uint32(ps)}
	for i := range s.meta {
		if _, err := db.file.ReadAt(s.meta[i][:], int64(i*ps)); err != nil {
			return fmt.Errorf("journal checkpoint: read meta page %d: %w", i, err)
		}
		if m, ok := readMeta(bytesReaderAt(s.meta[i][:]), 0); ok {
			s.txid = max(s.txid, m.txid)
		}
	}
	pin, err := db.bolt.Begin(false)
	if err != nil {
		return fmt.Errorf("journal checkpoint: pin: %w", err)
	}
	if uint64(pin.ID()) != s.txid {
		_ = pin.Rollback()
		return fmt.Errorf("journal checkpoint: the meta pages are at transaction %d, bbolt at %d", s.txid, pin.ID())
	}
	if err := db.jr.checkpoint(s); err != nil {
		_ = pin.Rollback()
		return err
	}
	if db.pin != nil {
		_ = db.pin.Rollback()
	}
	db.pin = pin
	return nil
}

// fail marks the journal's state unknown after err: every later write
// fails with it, and Close writes no checkpoint. The next Open recovers
// from what is on disk.
func (db *DB) fail(err error) error {
	if db.jerr == nil {
		db.jerr = fmt.Errorf("journal: %w (the store refuses writes until it is reopened)", err)
	}
	return db.jerr
}

// syncedCommit commits tx through bbolt's own two fdatasyncs, for a
// transaction the journal does not take (bigger than half of it, or
// one that may make bbolt remap the file, which the pin would block).
// The journal first records that the bbolt file is authoritative (after
// syncing it), so no restore can bring back a state whose pages this
// commit may reuse; then the pin goes, the commit syncs, and a new
// checkpoint follows.
func (db *DB) syncedCommit(tx *bolt.Tx) error {
	if err := db.bolt.Sync(); err != nil {
		_ = tx.Rollback()
		return fmt.Errorf("journal: sync: %w", err)
	}
	if err := db.jr.checkpoint(jSlot{}); err != nil {
		_ = tx.Rollback()
		return err
	}
	if db.pin != nil {
		_ = db.pin.Rollback()
		db.pin = nil
	}
	// bbolt's own commit, freelist included: the file is authoritative
	// until the next checkpoint.
	db.bolt.NoSync, db.bolt.NoFreelistSync = false, false
	db.setAllocSize(tx)
	err := tx.Commit()
	db.bolt.NoSync, db.bolt.NoFreelistSync = true, !db.forceCommit
	if cerr := db.checkpoint(); cerr != nil {
		return errors.Join(err, db.fail(cerr))
	}
	return err
}

// nearRemap reports whether committing tx might make bbolt grow its
// mapping of the file (and wait for the pin to end, forever). The bound
// is generous: a commit allocates at most a few pages per operation,
// its values' pages and the freelist's.
func (db *DB) nearRemap(tx *bolt.Tx) bool {
	datasz := boltDatasz(db.bolt)
	if datasz <= 0 {
		datasz = db.openDatasz
	}
	ps := int64(db.bolt.Info().PageSize)
	st := db.bolt.Stats()
	// Everything the open transaction holds: the acknowledged batches
	// and this one.
	pages := int64(db.otx.ops+db.rec.ops)*8 + int64(len(db.otx.acked)+len(db.jr.buf))*2/ps +
		int64(st.FreePageN+st.PendingPageN)*8/ps + 64
	return tx.Size()+pages*ps >= int64(datasz)
}

// boltDatasz reads bbolt's current mapping size (an unexported field;
// 0 when a bbolt release renames it, and then the size mapped at Open,
// journalMmapSize, is assumed). Only the committer calls it, between
// its own transactions, which are the only ones that remap.
func boltDatasz(bdb *bolt.DB) int {
	f := reflect.ValueOf(bdb).Elem().FieldByName("datasz")
	if !f.IsValid() || f.Kind() != reflect.Int {
		return 0
	}
	return int(f.Int())
}

// setAllocSize keeps the file growing as it does without the journal
// (doubling up to bbolt's 16 MiB step): bbolt grows a file by AllocSize
// once its mapping is past AllocSize, which the journal's far-ahead
// mapping always is.
func (db *DB) setAllocSize(tx *bolt.Tx) {
	db.bolt.AllocSize = int(min(max(tx.Size(), 32<<10), 16<<20))
}

// checkpointNow is a checkpoint on request (tests): on the committer
// goroutine, between transactions.
func (db *DB) checkpointNow() error {
	if db.jr == nil {
		return errors.New("journal checkpoint: the store has no journal")
	}
	if db.jerr != nil {
		return db.jerr
	}
	return db.checkpoint()
}

// requestCheckpoint has the committer checkpoint now and waits (tests).
func (db *DB) requestCheckpoint() error {
	reply := make(chan error, 1)
	db.ckptReq <- reply
	return <-reply
}

// closeJournal writes the final checkpoint and drops the pin; the
// committer has stopped.
func (db *DB) closeJournal() error {
	if db.jr == nil {
		return nil
	}
	var err error
	if db.jerr == nil {
		err = db.cleanCheckpoint()
	}
	// Still open after an error: rolled back, so that bbolt closes.
	// What it held is in the journal, which the next Open replays.
	db.dropBatch()
	if db.pin != nil {
		_ = db.pin.Rollback()
		db.pin = nil
	}
	return err
}

// releaseJournal unregisters the recorder and unlocks the journal.
func (db *DB) releaseJournal() {
	db.dropBatch()
	if db.pin != nil {
		_ = db.pin.Rollback()
		db.pin = nil
	}
	if db.rec != nil {
		recorders.Delete(db.bolt)
		db.rec = nil
	}
	if db.jr != nil {
		_ = db.jr.close()
		db.jr = nil
	}
}
