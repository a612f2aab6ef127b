package postgres_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nanovm/nano-vm-mcp/store"
	"github.com/nanovm/nano-vm-mcp/store/postgres"
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
func dsnOf(t testing.TB) string {
	t.Helper()
	base := os.Getenv("NANO_VM_MCP_TEST_POSTGRES")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("NANO_VM_MCP_TEST_POSTGRES is unset: .ci/run starts a throwaway cluster (.ci/pg.sh) and sets it")
		}
		t.Skip("set NANO_VM_MCP_TEST_POSTGRES=postgres:///postgres?host=/path/to/socket to run the PostgreSQL tests (.ci/pg.sh starts a throwaway cluster)")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to NANO_VM_MCP_TEST_POSTGRES: %v", err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("nanovm_test_%d_%d", os.Getpid(), time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return withDatabase(t, base, name)
}

// withDatabase rewrites the database name of a postgres:// URL.
func withDatabase(t testing.TB, base, name string) string {
	t.Helper()
	u, err := urlParse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

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
