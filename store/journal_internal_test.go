package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// testJournal creates a journal of size bytes with a checkpoint that
// holds (fake) meta pages, so records after it are scanned.
func testJournal(t *testing.T, size int64) (*journal, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x.db"+JournalSuffix)
	j, err := openJournal(path, size, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.close() })
	if err := j.checkpoint(jSlot{metas: true, pageSize: 4096, txid: 7}); err != nil {
		t.Fatal(err)
	}
	return j, path
}

// appendTestRecord writes one record holding a put of key → val.
func appendTestRecord(t *testing.T, j *journal, key, val string) (pos int64) {
	t.Helper()
	j.begin()
	j.buf = appendOp(j.buf, opPut, []byte("b"), []byte(key), []byte(val))
	lap, pos, ok := j.place(int64(len(j.buf)))
	if !ok {
		t.Fatalf("record %q does not fit", key)
	}
	if err := j.write(lap, pos, j.seq+100); err != nil {
		t.Fatal(err)
	}
	return pos
}

// reopenScan reopens the journal file and returns the keys its scan
// yields, in order.
func reopenScan(t *testing.T, path string) []string {
	t.Helper()
	j, err := openJournal(path, 0, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	var keys []string
	if err := j.scan(func(r jRecord) error {
		for b := r.ops; len(b) > 0; {
			o, rest, err := nextOp(b)
			if err != nil {
				return err
			}
			keys = append(keys, string(o.key))
			b = rest
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// rewriteRecord reads the journal record at [from, to) of the file at
// path, lets edit (when not nil) change its bytes, encodes its header again
// with lap, seq and salt (and a good crc) and writes it back in place.
func rewriteRecord(t *testing.T, path string, from, to int64, edit func(rec []byte), lap uint32, seq, salt uint64) {
	t.Helper()
	rec := make([]byte, to-from)
	f, _ := os.Open(path)
	_, _ = f.ReadAt(rec, from)
	f.Close()
	if edit != nil {
		edit(rec)
	}
	encodeRecordHeader(rec, lap, seq, salt, 1)
	patchFile(t, path, from, rec)
}

func patchFile(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestJournalScan ensures the scan after a checkpoint yields exactly the
// records written after it, in order, and ends at the first record that
// is torn, fails its checksum, is from an earlier lap or checkpoint, or
// is out of sequence; and that a damaged header slot falls back to the
// other one.
func TestJournalScan(t *testing.T) {
	tests := []struct {
		name string
		// damage changes the file after records a, b, c were written
		// at positions pos.
		damage func(t *testing.T, j *journal, path string, pos []int64)
		want   []string
	}{
		{name: "intact", damage: func(*testing.T, *journal, string, []int64) {}, want: []string{"a", "b", "c"}},
		{name: "torn tail", damage: func(t *testing.T, j *journal, path string, pos []int64) {
			// The last record's end never reached the disk.
			patchFile(t, path, j.pos-3, make([]byte, 3))
		}, want: []string{"a", "b"}},
		{name: "torn header", damage: func(t *testing.T, j *journal, path string, pos []int64) {
			patchFile(t, path, pos[2]+10, make([]byte, 20))
		}, want: []string{"a", "b"}},
		{name: "bad crc in the middle", damage: func(t *testing.T, j *journal, path string, pos []int64) {
			patchFile(t, path, pos[1]+jRecHdr+4, []byte{0xff})
		}, want: []string{"a"}},
		{name: "stale lap", damage: func(t *testing.T, j *journal, path string, pos []int64) {
			// b rewritten as it would have been one lap earlier.
			rewriteRecord(t, path, pos[1], pos[2], nil, j.ckpt.lap-1, j.ckpt.seq+1, j.ckpt.salt)
		}, want: []string{"a"}},
		{name: "stale salt", damage: func(t *testing.T, j *journal, path string, pos []int64) {
			rewriteRecord(t, path, pos[1], pos[2], nil, j.ckpt.lap, j.ckpt.seq+1, j.ckpt.salt+1)
		}, want: []string{"a"}},
		{name: "out of sequence", damage: func(t *testing.T, j *journal, path string, pos []int64) {
			rewriteRecord(t, path, pos[1], pos[2], nil, j.ckpt.lap, j.ckpt.seq+5, j.ckpt.salt)
		}, want: []string{"a"}},
		{name: "bad operation under a good crc", damage: func(t *testing.T, j *journal, path string, pos []int64) {
			unknownOp := func(rec []byte) { rec[jRecHdr] = 99 }
			rewriteRecord(t, path, pos[1], pos[2], unknownOp, j.ckpt.lap, j.ckpt.seq+1, j.ckpt.salt)
		}, want: []string{"a"}},
		{name: "current slot damaged", damage: func(t *testing.T, j *journal, path string, pos []int64) {
			// The checkpoint slot written last is torn: the one before
			// it (the empty journal's, bbolt authoritative) holds.
			cur := 1 - j.nextSlot
			patchFile(t, path, int64(cur*jSlotSize)+20, []byte{1, 2, 3})
		}, want: nil},
		{name: "both slots damaged", damage: func(t *testing.T, j *journal, path string, pos []int64) {
			patchFile(t, path, 20, []byte{1})
			patchFile(t, path, jSlotSize+20, []byte{1})
		}, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j, path := testJournal(t, jMinBytes)
			var pos []int64
			for _, k := range []string{"a", "b", "c"} {
				pos = append(pos, appendTestRecord(t, j, k, "value of "+k))
			}
			_ = j.close()
			tc.damage(t, j, path, pos)
			if got := reopenScan(t, path); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("scan = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestJournalLaps ensures records wrap to the start of the journal once
// the end is reached, one lap on, and that the scan follows them there;
// and that a record never overwrites one after the checkpoint.
func TestJournalLaps(t *testing.T) {
	j, path := testJournal(t, jMinBytes)
	val := string(bytes.Repeat([]byte("v"), 6000))
	var want []string
	// Fill most of the first lap, checkpoint, then write past the end.
	for i := range 8 {
		appendTestRecord(t, j, fmt.Sprint("old", i), val)
	}
	if err := j.checkpoint(jSlot{metas: true, pageSize: 4096, txid: 9}); err != nil {
		t.Fatal(err)
	}
	lap0 := j.lap
	for i := 0; ; i++ {
		j.begin()
		j.buf = appendOp(j.buf, opPut, []byte("b"), []byte(fmt.Sprint("new", i)), []byte(val))
		lap, pos, ok := j.place(int64(len(j.buf)))
		if !ok {
			break
		}
		if pos < j.ckpt.pos && pos+int64(len(j.buf)) > j.ckpt.pos && lap != j.ckpt.lap {
			t.Fatalf("record %d at %d would overwrite the checkpoint's first record at %d", i, pos, j.ckpt.pos)
		}
		if err := j.write(lap, pos, 1); err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprint("new", i))
	}
	if j.lap != lap0+1 {
		t.Fatalf("lap = %d after filling the journal, want %d", j.lap, lap0+1)
	}
	_ = j.close()
	if got := reopenScan(t, path); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("scan = %q\nwant %q", got, want)
	}
}

// TestReplayIdempotent ensures applying a record twice leaves what
// applying it once does.
func TestReplayIdempotent(t *testing.T) {
	var ops []byte
	ops = appendOp(ops, opCreateBucket, []byte("b"), nil, nil)
	ops = appendOp(ops, opPut, []byte("b"), []byte("k1"), []byte("v1"))
	ops = appendOp(ops, opPut, []byte("b"), []byte("k2"), []byte("v2"))
	ops = appendOp(ops, opDelete, []byte("b"), []byte("k1"), nil)
	ops = appendOp(ops, opPut, []byte("b"), []byte("k3"), nil)
	ops = appendOp(ops, opDelete, []byte("b"), []byte("never"), nil)
	dump := func(times int) string {
		bdb, err := bolt.Open(filepath.Join(t.TempDir(), "r.db"), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer bdb.Close()
		for range times {
			if err := bdb.Update(func(tx *bolt.Tx) error { return applyOps(tx, ops) }); err != nil {
				t.Fatal(err)
			}
		}
		var out bytes.Buffer
		_ = bdb.View(func(tx *bolt.Tx) error {
			return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
				return b.ForEach(func(k, v []byte) error {
					fmt.Fprintf(&out, "%s/%s=%q;", name, k, v)
					return nil
				})
			})
		})
		return out.String()
	}
	once, twice := dump(1), dump(2)
	if once != twice || once != `b/k2="v2";b/k3="";` {
		t.Fatalf("once %s, twice %s", once, twice)
	}
}

// FuzzJournalRecord feeds the record decoder arbitrary bytes: it never
// panics, and what it accepts re-encodes to the same bytes and decodes
// into operations that apply.
func FuzzJournalRecord(f *testing.F) {
	rec := make([]byte, jRecHdr)
	rec = appendOp(rec, opCreateBucket, []byte("b"), nil, nil)
	rec = appendOp(rec, opPut, []byte("b"), []byte("k"), []byte("v"))
	rec = appendOp(rec, opDelete, []byte("b"), []byte("k"), nil)
	encodeRecordHeader(rec, 3, 9, 42, 5)
	f.Add(rec)
	f.Add(rec[:jRecHdr+3])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeJRecord(b, 3, 9, 42)
		if err != nil {
			if !errors.Is(err, errRecordEnd) {
				t.Fatalf("error %v is not errRecordEnd", err)
			}
			return
		}
		again := make([]byte, jRecHdr+len(r.ops))
		copy(again[jRecHdr:], r.ops)
		encodeRecordHeader(again, r.lap, r.seq, r.salt, r.txid)
		if !bytes.Equal(again, b[:len(again)]) {
			t.Fatalf("re-encoded %x, decoded from %x", again, b)
		}
		for ops := r.ops; len(ops) > 0; {
			var err error
			if _, ops, err = nextOp(ops); err != nil {
				t.Fatalf("accepted record has a bad operation: %v", err)
			}
		}
	})
}
