package benchmark

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/nanovm/nano-vm-mcp/store/postgres/pgtest"
)

// Ensure an Env on a postgres:// address runs the refund pipeline and the
// long horizon on a fresh database of that server (not on the database
// the address names), verifies the chain there, measures the server's CPU
// (the cluster .ci/pg.sh starts is on this machine and readable), and
// drops the fresh database at Close.
func TestEnvPostgres(t *testing.T) {
	addr := pgtest.Fresh(t)
	ctx := context.Background()
	e, err := Open(ctx, Config{DBPath: addr, CacheDir: sharedCache})
	if err != nil {
		t.Fatal(err)
	}
	fresh := e.DBPath()
	if fresh == addr || !strings.Contains(fresh, "/nano_vm_mcp_bench_") {
		t.Errorf("scenarios run on %q, want a fresh nano_vm_mcp_bench_ database beside %q", fresh, addr)
	}
	if d := e.Durability(); !strings.Contains(d, "synchronous_commit=on") || !strings.Contains(d, "fsync=on") {
		t.Errorf("durability %q, want the server's fsync=on and synchronous_commit=on", d)
	}
	sel, err := Select("refund,long")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sel {
		r, err := e.Run(ctx, s, Options{Items: 200, Concurrency: 8})
		if err != nil {
			t.Fatal(err)
		}
		if !r.OK() || r.Envelopes == 0 {
			t.Errorf("%s: %d violation(s) %v, %d envelopes", r.Name, r.ViolationsTotal, r.Violations, r.Envelopes)
		}
		if !strings.HasPrefix(r.ServerCPU, "included") || r.ServerCPUMSPerItem <= 0 || r.CPUMSPerItem <= 0 {
			t.Errorf("%s: server CPU %q %v ms/item, own %v ms/item", r.Name, r.ServerCPU, r.ServerCPUMSPerItem, r.CPUMSPerItem)
		}
		if !strings.HasPrefix(r.Durability, "PostgreSQL") {
			t.Errorf("%s: durability %q", r.Name, r.Durability)
		}
	}
	a, err := e.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !a.OK {
		t.Errorf("audit: %+v", a)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	name := fresh[strings.LastIndex(fresh, "/")+1:]
	if i := strings.IndexByte(name, '?'); i >= 0 {
		name = name[:i]
	}
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after Close", name)
	}
}
