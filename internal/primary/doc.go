// Package primary lets several MCP server processes serve one database
// through one primary process. It has one job, the database's socket, seen
// from both ends: electing the process that serves it (the primary),
// serving it (MCP lines from other processes and the operator channel of
// the CLI's administrative commands), and forwarding a later process's
// client to it. The operator channel stays here rather than in a package
// of its own because it is one more kind of line on the same socket, under
// the same election and the same framing.
//
// The first process to take the database becomes the primary and serves a Unix
// socket beside it; every later process forwards its own client's MCP
// messages to that socket, and takes the database over when the primary
// goes away. It is the gopls "-remote=auto" model applied to a bbolt file,
// which one process at a time may hold.
//
// Every participant speaks newline-delimited JSON-RPC, the framing of MCP's
// stdio transport, on both its client side and the socket; a forwarder is
// a line pump that understands just enough of each message (its id and
// method) to re-initialize the session on a new primary (send its initialize
// again) and to
// answer or retry the requests a dead primary left unanswered.
//
// # Invariants
//
//   - Only the holder of the election lock (<db>.sock.lock, flock) creates,
//     replaces or removes the socket (<db>.sock); the socket is created
//     with mode 0600 before its name appears, so no other user can connect.
//   - Waiting for a primary is bounded (Options.WaitTimeout): a database
//     held by a process that serves no socket is an error, never a hang.
//   - A request in flight when its primary died is answered exactly once:
//     by the new primary if it was safe to send again (read-only or
//     idempotent tools, list and read methods, a run with an
//     idempotency_key), otherwise by a JSON-RPC error asking to retry.
//
// # Limits
//
// One message (one line, without its newline) is at most MaxMessageBytes,
// 32 MiB, on stdin and on the socket alike: room for register_tool with a
// 20 MiB module as base64. A longer line is skipped to its newline without
// being held and answered with a JSON-RPC error -32600 under its id when
// the id can be read from it (else null); a line that is not JSON gets
// -32700, and valid JSON that is not a request -32600. The stream, the
// process and the primary's other sessions go on.
//
// # Caveats
//
//   - Unix only (flock and Unix sockets); elsewhere Serve returns
//     ErrUnsupported and the caller serves its client alone.
//   - A socket path is limited to about 104 bytes; a primary whose
//     database path is too long serves its own client only, and later
//     processes fail with ErrNoPrimary naming the path.
package primary
