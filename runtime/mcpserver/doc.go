// Package mcpserver serves the governed runtime over the Model Context
// Protocol (mcp-go): the tools a model calls to run, inspect, resume and
// audit programs, every registered tool the policy lets run as a tool of
// its own (tools_exposed.go; Options.ExposeTools), the same objects as
// resources, and the stdio, Streamable
// HTTP and legacy SSE transports with their HTTP guards (bearer auth, Host
// and Origin checks, a body cap).
//
// # Invariants
//
//   - A failure a model can fix (a bad argument, an invalid program, a
//     denied tool, an unknown trace) is a tool result with isError and a
//     JSON body {"error": code, "message": …}; only an unknown tool name or a
//     malformed JSON-RPC message is a protocol error.
//   - An infrastructure failure or a panic in a handler is an isError result
//     with a generic message and an incident id; the error itself goes to
//     the log, never to the client.
//   - No result is unbounded: every result's JSON is kept under
//     MaxResultBytes by paging and by clipping large values, so it stays
//     inside Claude Code's default 25,000-token tool-output limit.
//   - Nothing is ever written to stdout but MCP messages (ServeStdio).
//   - ServeStdio holds no message over 32 MiB (jsonlines.MaxMessageBytes):
//     a longer line is skipped unread and answered with a JSON-RPC error,
//     as on the command's own stdio transport (internal/primary).
//   - A registered tool called directly runs as a one-step program through
//     runtime.CallTool, never around it: the same policy check, sandbox,
//     envelope, trace and idempotency (its key in _meta,
//     MetaIdempotencyKey) as run_program. A management tool's name is never
//     taken by a registered tool (ExposedPrefix).
//   - notifications/tools/list_changed goes to every session, of every
//     process sharing the database, when the listed registered tools
//     change, and only then.
//
// # Caveats
//
// mcp-go keeps one process-wide stdio session, so ServeStdio may run only
// once at a time per process.
package mcpserver
