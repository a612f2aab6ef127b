package runtime_test

import (
	"context"
	"testing"

	"github.com/nanovm/nano-vm-mcp/internal/benchmark"
	"github.com/nanovm/nano-vm-mcp/runtime/runtimetest"
	"github.com/nanovm/nano-vm-mcp/store/postgres/pgtest"
)

// BenchmarkRefundPostgres is BenchmarkRefund on a fresh PostgreSQL
// database (NANO_VM_MCP_TEST_POSTGRES; skipped without it): the same
// programs, every step committed with its envelope, grouped per replica.
func BenchmarkRefundPostgres(b *testing.B) {
	b.StopTimer()
	sel, err := benchmark.Select("refund")
	if err != nil || len(sel) != 1 {
		b.Fatalf("select refund: %v", err)
	}
	ctx := context.Background()
	e, err := benchmark.Open(ctx, benchmark.Config{DBPath: pgtest.Fresh(b), CacheDir: runtimetest.CacheDir, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	r, err := e.Run(ctx, sel[0], benchmark.Options{Items: b.N, Concurrency: 200, Timer: b})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if !r.OK() {
		b.Fatalf("%d invariant(s) broken: %v", r.ViolationsTotal, r.Violations)
	}
	if rep, err := e.Audit(ctx); err != nil || !rep.OK {
		b.Fatalf("audit: %+v %v", rep, err)
	}
	b.ReportMetric(r.Throughput, r.Unit+"/s")
	b.ReportMetric(r.P95MS, "p95-ms")
}
