// Package telemetry is what nano-vm-mcp reports to an operator's tracing
// and metrics systems: an OpenTelemetry tracer provider configured only
// from the standard OTEL_* environment variables (FromEnv), the attribute
// keys of the MCP and gen_ai semantic conventions the spans carry, and the
// Prometheus metrics served at /metrics (Metrics).
//
// # Invariants
//
//   - With no exporter configured, FromEnv returns the no-op tracer
//     provider, and the runtime then wraps nothing: a run costs what it
//     cost before tracing existed (RATIONALE.md, "Why are runs traced from
//     outside the kernel, and only when an exporter is configured?").
//   - Counting is cheap: every metric on a run's path is an atomic add or
//     a lock-free histogram observation; what costs more (the audit
//     chain's length) is read only when /metrics is scraped.
//   - Label values are bounded: method and tool names a client sends are
//     recorded only when the server knows them, so no client can grow the
//     metrics without bound.
//
// The kernel never imports this package (it is standard-library only):
// the runtime instruments the kernel's Observer, ToolExecutor and
// LLMClient interfaces from outside.
package telemetry
