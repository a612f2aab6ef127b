package runtime_test

import (
	"testing"

	"github.com/nanovm/nano-vm-mcp/internal/benchmark"
	"github.com/nanovm/nano-vm-mcp/store/postgres/pgtest"
)

// BenchmarkRefundPostgres is BenchmarkRefund on a fresh PostgreSQL
// database (NANO_VM_MCP_TEST_POSTGRES; skipped without it): the same
// programs, every step committed with its envelope, grouped per replica.
func BenchmarkRefundPostgres(b *testing.B) {
	b.StopTimer()
	benchChecked(b, "refund", benchmark.Config{DBPath: pgtest.Fresh(b)}, b.N, 200)
}
