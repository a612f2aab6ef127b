package store_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/nanovm/nano-vm-mcp/store"
	"github.com/nanovm/nano-vm-mcp/store/storetest"
)

// openTemp opens a fresh bbolt store in t.TempDir, closed in t.Cleanup.
func openTemp(t testing.TB, opts *store.Options) *store.DB {
	t.Helper()
	db := openAt(t, filepath.Join(t.TempDir(), "nano.db"), opts)
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

// TestConformance ensures the bbolt store passes the store conformance
// suite, in each durability mode: the journal (the default), no
// fsync, and bbolt's own fsyncs without the journal.
func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name      string
		noSync    bool
		noJournal bool
	}{{name: "fsync"}, {name: "nosync", noSync: true}, {name: "nojournal", noJournal: true}} {
		t.Run(tc.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
				return openTemp(t, &store.Options{Now: now, NoSync: tc.noSync, NoJournal: tc.noJournal})
			})
		})
	}
}
