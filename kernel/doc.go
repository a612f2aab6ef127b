// Package kernel implements nano-vm-mcp's deterministic execution kernel: the
// program model and its strict validation, the condition language, the
// finite-state machine δ(S, E) → S' that runs a program step by step, traces
// with canonical state hashes, projections of state, and replay.
//
// # Invariants
//
//   - The kernel imports the standard library only. Persistence, policy,
//     WebAssembly and MCP live in other packages and reach the kernel through
//     the small interfaces in interfaces.go.
//   - Given the same program, input, tool results and LLM answers, two runs
//     produce the same transitions, the same state hashes and the same trace
//     apart from wall-clock fields (started_at, finished_at, duration_ms).
//   - Time comes only from the Clock, ids only from the IDSource: nothing in
//     the kernel reads the wall clock or a random source directly.
package kernel
