package runtime_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/nanovm/nano-vm-mcp/internal/benchmark"
	"github.com/nanovm/nano-vm-mcp/runtime/runtimetest"
)

// benchConcurrency is the number of runs in flight in the Go benchmarks:
// enough to share commits and keep both cores busy, small enough that
// b.N = 1 still means something. `nano-vm-mcp bench` uses the original's
// 200.
const benchConcurrency = 32

// runScenario runs one of the original's workloads through the real path
// (kernel, governed executor, a sandbox per tool call, bbolt with fsync and
// an envelope per step) for b.N items, timing only the items, and checks
// every invariant and the audit chain afterwards.
func runScenario(b *testing.B, name string, noSync bool) {
	runScaled(b, name, benchmark.Config{NoSync: noSync}, 1)
}

// runScaled runs b.N × scale items: the long horizon counts items in
// thousands, one program per thousand. cfg gives NoSync and
// PipelinePureSteps.
func runScaled(b *testing.B, name string, cfg benchmark.Config, scale int) {
	b.StopTimer()
	cfg.DBPath = filepath.Join(b.TempDir(), "bench.db")
	b.ReportAllocs()
	r := benchChecked(b, name, cfg, b.N*scale, benchConcurrency)
	// Per item, from the process's rusage and the runtime's allocation
	// count over the timed phase: comparable on a shared machine.
	b.ReportMetric(r.CPUMicrosPerItem, "cpu-µs/"+r.ItemUnit)
	b.ReportMetric(r.AllocsPerItem, "allocs/"+r.ItemUnit)
	b.ReportMetric(100*r.GCShare, "gc-%")
	if r.Envelopes > 0 {
		b.ReportMetric(float64(r.Envelopes)/float64(r.Items), "envelopes/op")
	}
}

// BenchmarkRefund is BM-INT-01: the refund pipeline, two llm steps (mock
// model) and three sandboxed tool calls per program.
func BenchmarkRefund(b *testing.B) {
	b.Run("fsync", func(b *testing.B) { runScenario(b, "refund", false) })
	b.Run("nosync", func(b *testing.B) { runScenario(b, "refund", true) })
	b.Run("fsync-pipelined", func(b *testing.B) {
		runScaled(b, "refund", benchmark.Config{PipelinePureSteps: true}, 1)
	})
}

// BenchmarkParallel is BM-INT-04: one parallel step of ten sandboxed calls.
func BenchmarkParallel(b *testing.B) { runScenario(b, "parallel", false) }

// BenchmarkStoreRoundTrip is BM-INT-05: save and get a program and a trace,
// sequentially; an op is one item of four calls, items/s × 4 = ops/s.
func BenchmarkStoreRoundTrip(b *testing.B) {
	b.Run("nosync", func(b *testing.B) { runScenario(b, "roundtrip-nosync", false) })
	b.Run("fsync", func(b *testing.B) { runScenario(b, "roundtrip-fsync", false) })
}

// BenchmarkEnvelope is BM-INT-06: the refund pipeline, then its envelopes
// read back and checked, inside the timed item.
func BenchmarkEnvelope(b *testing.B) { runScenario(b, "envelope", false) }

// BenchmarkReplay is BM-INT-08: replay recorded refund runs from the store
// and check each is equivalent (the recording is untimed).
func BenchmarkReplay(b *testing.B) { runScenario(b, "replay", false) }

// BenchmarkLongHorizon is BM-INT-10: one op is a 1,000-step chain of a
// sandboxed tool with every step durable, each before the next starts
// (fsync) or pipelined (fsync-pipelined, Config.PipelinePureSteps).
func BenchmarkLongHorizon(b *testing.B) {
	b.Run("fsync", func(b *testing.B) { runScaled(b, "long", benchmark.Config{}, benchmark.LongHorizonSteps) })
	b.Run("fsync-pipelined", func(b *testing.B) {
		runScaled(b, "long", benchmark.Config{PipelinePureSteps: true}, benchmark.LongHorizonSteps)
	})
}

// BenchmarkToolCall is a sandboxed call of get_order_amount, a fresh
// instance per call and a warm pooled one.
func BenchmarkToolCall(b *testing.B) {
	b.Run("fresh", func(b *testing.B) { runScenario(b, "toolcall-fresh", false) })
	b.Run("pooled", func(b *testing.B) { runScenario(b, "toolcall-pooled", false) })
}

// benchChecked opens a benchmark Env on cfg (the tests' cache and a quiet
// logger added), runs items of the scenario name with the timer running
// only for them, fails on a broken invariant or audit chain, and reports
// throughput and p95 latency.
func benchChecked(b *testing.B, name string, cfg benchmark.Config, items, concurrency int) benchmark.Result {
	b.Helper()
	sel, err := benchmark.Select(name)
	if err != nil || len(sel) != 1 {
		b.Fatalf("select %q: %v", name, err)
	}
	ctx := context.Background()
	cfg.CacheDir, cfg.Logger = runtimetest.CacheDir, quietLogger()
	e, err := benchmark.Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	r, err := e.Run(ctx, sel[0], benchmark.Options{Items: items, Concurrency: concurrency, Timer: b})
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
	return r
}
