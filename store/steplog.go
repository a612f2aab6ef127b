package store

import (
	"encoding/binary"

	bolt "go.etcd.io/bbolt"
)

// The step log (schema 3). A step record is stored in step_log under
// the next log number (a big-endian uint64, one more than the last), and
// the steps bucket maps its trace id 0 index key to a reference to it:
// stepRefTag and the 8-byte log number. Concurrent runs' steps then land
// on the log's last page instead of one leaf per run in the steps bucket
// (bbolt rewrites every leaf a commit touches), and the steps bucket holds
// only short values. A value in steps that is not a reference is a step
// record itself, as every file before schema 3 stores them; readers take
// both. See .rationale/storage.md "Why are step records kept in a log
// keyed by commit order?".

// stepRefTag starts a reference in the steps bucket. A step record is a
// JSON object, which never starts with a NUL byte.
const stepRefTag = 0x00

// stepRefLen is a reference's length: the tag and the log number.
const stepRefLen = 9

// isStepRef reports whether v, a value of the steps bucket, is a
// reference into step_log rather than a step record.
func isStepRef(v []byte) bool { return len(v) == stepRefLen && v[0] == stepRefTag }

// stepRecord resolves v, a value of the steps bucket, to the step
// record's stored bytes (valid for tx's life). A reference to a log
// number that is missing resolves to nil: the step is gone, as if its
// key were.
func stepRecord(tx *bolt.Tx, v []byte) []byte {
	if !isStepRef(v) {
		return v
	}
	log := tx.Bucket(bucketStepLog)
	if log == nil {
		return nil // a damaged file: Open checks the bucket is there
	}
	return log.Get(v[1:])
}

// putStep stores step under key: the record at the end of step_log, the
// reference to it in steps. scratch, when it holds stepLogScratch bytes,
// takes both keys (bbolt keeps them until the commit; a write function
// that runs again, in a retried batch, runs in a new transaction). The
// next log number is kept in the transaction's cache after the first
// step of the transaction looked it up.
func (db *DB) putStep(tx *bolt.Tx, key, step, scratch []byte) error {
	log := tx.Bucket(bucketStepLog)
	if log == nil {
		return put(tx, bucketSteps, key, step) // unreachable after migrate
	}
	n := db.txc.logNext
	if n == 0 {
		n = 1
		if k, _ := log.Cursor().Last(); len(k) == 8 {
			n = binary.BigEndian.Uint64(k) + 1
		}
	}
	db.txc.logNext = n + 1
	if len(scratch) < stepLogScratch {
		scratch = make([]byte, stepLogScratch)
	}
	b := scratch[:stepLogScratch:stepLogScratch]
	binary.BigEndian.PutUint64(b[:8], n)
	b[8] = stepRefTag
	copy(b[9:], b[:8])
	if err := put(tx, bucketStepLog, b[:8:8], step); err != nil {
		return err
	}
	return put(tx, bucketSteps, key, b[8:])
}

// stepLogScratch is the scratch putStep uses: the log key and the
// reference.
const stepLogScratch = 8 + stepRefLen

// delStep removes the step under key, and the log record it refers to.
func delStep(tx *bolt.Tx, key, v []byte) error {
	if isStepRef(v) {
		if err := del(tx, bucketStepLog, v[1:]); err != nil {
			return err
		}
	}
	return del(tx, bucketSteps, key)
}

// appendOnly sets FillPercent 1.0 on b, named name, when its keys only
// grow (or nearly: time-ordered ids and creation times of concurrent
// runs): bbolt's default of 50 % suits random inserts and leaves
// append-only pages half empty, so every batch touches twice the pages.
// FillPercent lasts for the transaction's life; put sets it at each
// write, which costs four comparisons and no bucket lookup.
func appendOnly(b *bolt.Bucket, name []byte) {
	switch string(name) {
	case string(bucketEnvelopes), string(bucketStepLog), string(bucketRunBodies), string(bucketRunTime):
		b.FillPercent = 1.0
	}
}
