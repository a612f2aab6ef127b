package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/nanovm/nano-vm-mcp/store"
	"github.com/nanovm/nano-vm-mcp/store/postgres"
	"github.com/nanovm/nano-vm-mcp/store/postgres/pgtest"
	"github.com/nanovm/nano-vm-mcp/store/storetest"
)

// TestConformance ensures the PostgreSQL store passes the conformance
// suite the bbolt store passes, each subtest on a fresh database.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
		return openFresh(t, &postgres.Options{Now: now})
	})
}

// dsnOf returns the address of an empty database created for t.
func dsnOf(t testing.TB) string { return pgtest.Fresh(t) }

func openFresh(t testing.TB, opts *postgres.Options) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), dsnOf(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}
