// Package benchmark runs the original's benchmark workloads (BM-INT-01
// refund pipeline, -04 parallel, -05 store round trip, -06 envelope, -08
// replay equivalence, -10 long horizon, and a tool-call microbenchmark)
// through the real path: kernel → governed executor → a WebAssembly sandbox
// per tool call → bbolt with one envelope per step record. It measures
// throughput, latency percentiles and memory, and checks every run's
// invariants; the `nano-vm-mcp bench` command and the Go benchmarks in
// package runtime both drive it.
//
// # Invariants
//
// A Result is only worth its numbers when its Violations are empty: every
// run ended with the status its workload expects, took the expected path,
// had unique step ids, and left exactly one envelope per step record;
// Env.Audit then checks that the global chain verifies and holds exactly
// the envelopes the scenarios counted.
//
// # Caveats
//
// Peak RSS comes from /proc/self/status and is reset per scenario through
// /proc/self/clear_refs; elsewhere than Linux both read as zero.
package benchmark
