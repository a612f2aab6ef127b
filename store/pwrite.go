package store

import (
	"os"
	"reflect"
	"unsafe"

	bolt "go.etcd.io/bbolt"
)

// Coalesced page writes. bbolt writes each dirty page of a commit with a
// pwrite of its own, in page order, then the meta page; a refund
// program's commits wrote about eight pages, eight system calls, most of
// them next to each other in the file. When bbolt does not sync the
// commit (behind the journal, or with NoSync), the order and grouping of
// its unsynced writes do not matter to what is durable: the journal's
// record was synced first and a checkpoint restores the meta pages it
// saved (see .rationale/storage.md "Why are a commit's page writes
// coalesced?"). So writes of adjacent pages are gathered into one buffer
// and written with one pwrite when the next page is not adjacent, the
// buffer is full, or the meta page is written: bbolt writes the meta page
// last in every commit, so all of a commit's pages are in the file (in
// the page cache, which the mmap that readers read through shares) before
// its meta page is, and before Commit returns. A commit bbolt syncs
// (NoSync false: the synced path, or a store without the journal) writes
// every page through at once, so its data sync covers them.

// coalesceMax bounds the gathered bytes; a longer write goes through.
const coalesceMax = 1 << 20

// pageWriter replaces bbolt's writeAt (an unexported function field,
// db.ops.writeAt, set to the file's WriteAt by Open).
type pageWriter struct {
	f       *os.File
	bdb     *bolt.DB
	metaEnd int64 // the two meta pages end here
	buf     []byte
	off     int64 // file offset of buf[0]
	// writes counts the pwrites made, for tests.
	writes int
	// fail, set by tests, fails every page write with it (a full disk).
	fail error
}

// coalesceWrites installs a pageWriter in bdb; false when this bbolt
// has no such field (then bbolt writes as it always does).
func coalesceWrites(bdb *bolt.DB, f *os.File) (*pageWriter, bool) {
	ops := reflect.ValueOf(bdb).Elem().FieldByName("ops")
	if !ops.IsValid() || ops.Kind() != reflect.Struct {
		return nil, false
	}
	fn := ops.FieldByName("writeAt")
	want := reflect.TypeOf((func([]byte, int64) (int, error))(nil))
	if !fn.IsValid() || fn.Type() != want || f == nil {
		return nil, false
	}
	w := &pageWriter{f: f, bdb: bdb, metaEnd: 2 * int64(bdb.Info().PageSize)}
	reflect.NewAt(fn.Type(), unsafe.Pointer(fn.UnsafeAddr())).Elem().Set(reflect.ValueOf(w.writeAt))
	return w, true
}

func (w *pageWriter) writeAt(b []byte, off int64) (int, error) {
	if w.fail != nil {
		return 0, w.fail
	}
	if off < w.metaEnd || !w.bdb.NoSync || len(b) >= coalesceMax {
		// The meta page (or a synced commit, or a huge page): what is
		// gathered goes first, in order.
		if err := w.flush(); err != nil {
			return 0, err
		}
		w.writes++
		return w.f.WriteAt(b, off)
	}
	if len(w.buf) > 0 && (off != w.off+int64(len(w.buf)) || len(w.buf)+len(b) > coalesceMax) {
		if err := w.flush(); err != nil {
			return 0, err
		}
	}
	if len(w.buf) == 0 {
		w.off = off
	}
	// bbolt reuses the page's memory once its write pass ends: copy.
	w.buf = append(w.buf, b...)
	return len(b), nil
}

// flush writes what is gathered. On error it is dropped: bbolt rolls the
// commit back, and its pages are free again.
func (w *pageWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	w.writes++
	_, err := w.f.WriteAt(w.buf, w.off)
	w.buf = w.buf[:0]
	return err
}

// discard drops what a commit that failed before its meta page gathered:
// its pages are unreachable. Called before each commit.
func (w *pageWriter) discard() {
	if w != nil {
		w.buf = w.buf[:0]
	}
}
