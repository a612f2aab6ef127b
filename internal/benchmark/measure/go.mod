module github.com/nanovm/nano-vm-mcp/internal/benchmark/measure

// A module of its own, with no requirements, so that the DBOS peer
// (runtime/peers/dbos) shares it without requiring nano-vm-mcp, whose
// requirements would then move the peer's (see .rationale/bench.md).
go 1.25.0
