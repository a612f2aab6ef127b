// Package pgtest gives tests a fresh PostgreSQL database on the cluster
// NANO_VM_MCP_TEST_POSTGRES names (.ci/pg.sh starts a throwaway one). A
// test that needs one skips without it, saying how to get one, unless CI
// is "true": then it fails.
package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Env names the variable holding the test cluster's address, e.g.
// postgres:///postgres?host=/tmp/pg-sock&user=postgres.
const Env = "NANO_VM_MCP_TEST_POSTGRES"

var n atomic.Int64

// Fresh creates an empty database for tb, dropped at cleanup, and returns
// its address.
func Fresh(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv(Env)
	if base == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatal(Env + " is unset: .ci/run starts a throwaway cluster (.ci/pg.sh) and sets it")
		}
		tb.Skip("set " + Env + "=postgres:///postgres?host=/path/to/socket&user=postgres to run the PostgreSQL tests (.ci/pg.sh starts a throwaway cluster; Debian: apt-get install postgresql)")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("connect to %s: %v", Env, err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("nanovm_test_%d_%d_%d", os.Getpid(), time.Now().UnixNano(), n.Add(1))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}
