package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// Every mutation of the bbolt file goes through put, del or
// createBucket (TestMutationsGoThroughTheJournal holds the package to
// it): on a journaled database each also appends the operation to the
// committer's journal record, so replaying the record repeats the
// transaction exactly. Replay is idempotent: a put stores the value the
// transaction stored, a delete removes the key, a bucket is created if
// missing.

const (
	opCreateBucket byte = 1
	opPut          byte = 2
	opDelete       byte = 3
)

// recorders maps a journaled *bolt.DB to the committer's recorder.
var recorders sync.Map

// recorder is the journal record of the write transaction the committer
// is running.
type recorder struct {
	j  *journal
	tx *bolt.Tx // the committer's transaction; nil between transactions
	// ops counts the operations, for DB.nearRemap.
	ops int
}

// errUnjournaledWrite is a bug: a write transaction the committer did
// not begin wrote to a journaled database.
var errUnjournaledWrite = errors.New("write outside the committer's journaled transaction")

func record(tx *bolt.Tx, op byte, bucket, k, v []byte) error {
	x, ok := recorders.Load(tx.DB())
	if !ok {
		return nil
	}
	r := x.(*recorder)
	if r.tx != tx {
		return errUnjournaledWrite
	}
	r.j.buf = appendOp(r.j.buf, op, bucket, k, v)
	statsOp(bucket, k, v)
	r.ops++
	return nil
}

// appendOp encodes one operation: op, then bucket, key and (for a put)
// value, each a uvarint length and the bytes.
func appendOp(b []byte, op byte, bucket, k, v []byte) []byte {
	b = append(b, op)
	b = binary.AppendUvarint(b, uint64(len(bucket)))
	b = append(b, bucket...)
	if op != opCreateBucket {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
	}
	if op == opPut {
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return b
}

func bucketOf(tx *bolt.Tx, name []byte) (*bolt.Bucket, error) {
	b := tx.Bucket(name)
	if b == nil {
		return nil, fmt.Errorf("%w: bucket %q missing", ErrCorrupt, name)
	}
	return b, nil
}

// put stores k → v in the named top-level bucket.
func put(tx *bolt.Tx, bucket, k, v []byte) error {
	b, err := bucketOf(tx, bucket)
	if err != nil {
		return err
	}
	appendOnly(b, bucket)
	if err := b.Put(k, v); err != nil {
		return err
	}
	return record(tx, opPut, bucket, k, v)
}

// del removes k from the named top-level bucket.
func del(tx *bolt.Tx, bucket, k []byte) error {
	b, err := bucketOf(tx, bucket)
	if err != nil {
		return err
	}
	if err := b.Delete(k); err != nil {
		return err
	}
	return record(tx, opDelete, bucket, k, nil)
}

// createBucket creates the named top-level bucket if it is missing.
func createBucket(tx *bolt.Tx, name []byte) error {
	if _, err := tx.CreateBucketIfNotExists(name); err != nil {
		return fmt.Errorf("create bucket %q: %w", name, err)
	}
	return record(tx, opCreateBucket, name, nil, nil)
}

// journalOp is one decoded operation.
type journalOp struct {
	op          byte
	bucket, key []byte
	val         []byte
}

// nextOp decodes the operation at the start of b and returns the rest.
func nextOp(b []byte) (journalOp, []byte, error) {
	var o journalOp
	if len(b) == 0 {
		return o, nil, errors.New("empty")
	}
	o.op, b = b[0], b[1:]
	field := func() ([]byte, error) {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return nil, errors.New("bad length")
		}
		f := b[w : w+int(n)]
		b = b[w+int(n):]
		return f, nil
	}
	var err error
	if o.bucket, err = field(); err != nil {
		return o, nil, fmt.Errorf("bucket name: %w", err)
	}
	if len(o.bucket) == 0 {
		return o, nil, errors.New("empty bucket name")
	}
	switch o.op {
	case opCreateBucket:
	case opPut, opDelete:
		if o.key, err = field(); err != nil {
			return o, nil, fmt.Errorf("key: %w", err)
		}
		if len(o.key) == 0 || len(o.key) > bolt.MaxKeySize {
			return o, nil, fmt.Errorf("key of %d bytes", len(o.key))
		}
		if o.op == opPut {
			if o.val, err = field(); err != nil {
				return o, nil, fmt.Errorf("value: %w", err)
			}
			if len(o.val) > bolt.MaxValueSize {
				return o, nil, fmt.Errorf("value of %d bytes", len(o.val))
			}
		}
	default:
		return o, nil, fmt.Errorf("unknown operation %d", o.op)
	}
	return o, b, nil
}

// checkOps validates a record's payload without applying it.
func checkOps(b []byte) error {
	for len(b) > 0 {
		var err error
		if _, b, err = nextOp(b); err != nil {
			return err
		}
	}
	return nil
}

// applyOps replays a record's operations in tx, without recording them.
func applyOps(tx *bolt.Tx, b []byte) error {
	for len(b) > 0 {
		o, rest, err := nextOp(b)
		if err != nil {
			return fmt.Errorf("%w: journal record: %w", ErrCorrupt, err)
		}
		b = rest
		if o.op == opCreateBucket {
			if _, err := tx.CreateBucketIfNotExists(o.bucket); err != nil {
				return fmt.Errorf("replay: create bucket %q: %w", o.bucket, err)
			}
			continue
		}
		bk := tx.Bucket(o.bucket)
		if bk == nil {
			return fmt.Errorf("%w: journal record writes to missing bucket %q", ErrCorrupt, o.bucket)
		}
		if o.op == opPut {
			appendOnly(bk, o.bucket)
			// bbolt keeps the slices until the commit: copy them out
			// of the scan's buffer.
			err = bk.Put(append([]byte(nil), o.key...), append([]byte{}, o.val...))
		} else {
			err = bk.Delete(o.key)
		}
		if err != nil {
			return fmt.Errorf("replay: %q: %w", o.bucket, err)
		}
	}
	return nil
}
