package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/mark3labs/mcp-go/server"

	"github.com/nanovm/nano-vm-mcp/internal/jsonlines"
)

// stdioLineLimit is the bound ServeStdio puts on one message:
// jsonlines.MaxMessageBytes, lowered by tests (a line several times the
// real limit costs seconds to scan under the race detector).
var stdioLineLimit atomic.Int64

func init() { stdioLineLimit.Store(jsonlines.MaxMessageBytes) }

// ServeStdio serves MCP over newline-delimited JSON-RPC on in and out
// until in ends or ctx is cancelled, with the limits of the command's own
// stdio transport (internal/primary), whose bounded line reader
// (internal/jsonlines) it shares: a message is at most
// jsonlines.MaxMessageBytes (32 MiB); a longer line is skipped to its
// newline without being held and answered with JSON-RPC error -32600 under
// its id when the id can be read from it, a line that is not JSON with
// -32700, and the stream goes on. It is safe for an untrusted client.
//
// The command's `--transport stdio` does not use it: it serves through
// internal/primary (primary.Serve, or primary.ServeLines where the database
// cannot be shared), which also shares the database with other processes.
// Cancelling ctx also cancels the runs in flight, which stop after their
// current step and are left resumable. Logs go to the Server's Logger,
// never to out. mcp-go keeps one process-wide stdio session, so only one
// ServeStdio may run at a time in a process.
func (s *Server) ServeStdio(ctx context.Context, in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.stop, cancel)
	defer stop()
	// mcp-go writes each message with one Write; so does the reader
	// below for what it refuses: one lock keeps every line whole.
	w := &lineLocked{w: out}
	// mcp-go reads with a newline reader of no bound: it gets only the
	// lines the bounded reader let through, over a pipe.
	pr, pw := io.Pipe()
	defer pr.Close() // unblocks the reader's pending Write when Listen ends first
	go func() {
		err := jsonlines.Read(in, int(stdioLineLimit.Load()), false, func(line []byte) {
			if !json.Valid(line) {
				// mcp-go would answer under a null id; the id can
				// often be read, so the client learns which request.
				s.log.Warn("stdio: a message that is not JSON", "bytes", len(line))
				w.Write(append(jsonlines.ErrorLine(jsonlines.RecoverID(line), jsonlines.CodeParse, "parse error: the message is not JSON", nil), '\n'))
				return
			}
			pw.Write(append(line, '\n'))
		}, func(o jsonlines.Oversized) {
			s.log.Warn("stdio: skipped an oversized message", "bytes", o.N, "limit", o.Limit)
			w.Write(append(jsonlines.ErrorLine(o.ID, jsonlines.CodeInvalidRequest, o.Message(), map[string]any{"limit_bytes": o.Limit}), '\n'))
		})
		pw.CloseWithError(err)
	}()
	stdio := server.NewStdioServer(s.mcp)
	stdio.SetErrorLogger(slog.NewLogLogger(filterBarrier{s.log.Handler()}, slog.LevelWarn))
	err := stdio.Listen(ctx, pr, w)
	if errors.Is(err, context.Canceled) || errors.Is(err, io.ErrClosedPipe) {
		return nil
	}
	return err
}

// lineLocked serialises Writes, each of which is one whole line.
type lineLocked struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineLocked) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
