package store

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestCoalescedWrites ensures a commit bbolt does not sync (behind the
// journal) writes its adjacent pages with fewer pwrites than pages, that
// a commit bbolt syncs (no journal) writes every page through, and that
// what was written reads back after a reopen either way.
func TestCoalescedWrites(t *testing.T) {
	for _, tc := range []struct {
		name      string
		opts      *Options
		coalesced bool
	}{
		{"journal", nil, true},
		{"nojournal", &Options{NoJournal: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "pw.db")
			db, err := Open(path, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if db.pw == nil {
				t.Fatal("the page writer is not installed: bbolt's db.ops.writeAt changed (see pwrite.go)")
			}
			val := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i%26)}, 1500) }
			var pages int64
			before := db.pw.writes
			// Thirty 1.5 KB records appended: a dozen new pages, side by
			// side at the end of the file.
			if err := db.update(ctx, func(tx *bolt.Tx) error {
				for i := range 30 {
					if err := put(tx, bucketStepLog, u64(uint64(i+1)), val(i)); err != nil {
						return err
					}
				}
				tx.OnCommit(func() { st := tx.Stats(); pages = st.GetWrite() })
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			// A read: bbolt commits the transaction kept open.
			if err := db.view(ctx, func(*bolt.Tx) error { return nil }); err != nil {
				t.Fatal(err)
			}
			writes := db.pw.writes - before
			t.Logf("%d pages, %d pwrites", pages, writes)
			if pages < 10 {
				t.Fatalf("the commit wrote %d pages; want at least 10 for the test to mean anything", pages)
			}
			if tc.coalesced && writes*2 > int(pages) {
				t.Errorf("journaled commit: %d pwrites for %d pages; want them coalesced", writes, pages)
			}
			if !tc.coalesced && writes != int(pages) {
				t.Errorf("synced commit: %d pwrites for %d pages; want one each", writes, pages)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db, err = Open(path, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.view(ctx, func(tx *bolt.Tx) error {
				for i := range 30 {
					if got := tx.Bucket(bucketStepLog).Get(u64(uint64(i + 1))); !bytes.Equal(got, val(i)) {
						return fmt.Errorf("record %d reads back %d bytes, not the %d written", i+1, len(got), len(val(i)))
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}
