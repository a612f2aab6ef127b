package mcpserver

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/mark3labs/mcp-go/server"
)

// ServeStdio serves MCP over newline-delimited JSON-RPC on in and out
// with mcp-go's stdio reader, until in ends or ctx is cancelled. The
// command's `--transport stdio` does not use it: it serves through
// internal/primary (primary.Serve, or primary.ServeLines where the database
// cannot be shared), whose reader bounds a message at
// primary.MaxMessageBytes and answers an oversized or malformed one with a
// JSON-RPC error; prefer that for untrusted input. Cancelling ctx also cancels the runs in flight, which stop
// after their current step and are left resumable. Logs go to the Server's
// Logger, never to out.
func (s *Server) ServeStdio(ctx context.Context, in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.stop, cancel)
	defer stop()
	stdio := server.NewStdioServer(s.mcp)
	stdio.SetErrorLogger(slog.NewLogLogger(filterBarrier{s.log.Handler()}, slog.LevelWarn))
	err := stdio.Listen(ctx, in, out)
	if errors.Is(err, context.Canceled) || errors.Is(err, io.ErrClosedPipe) {
		return nil
	}
	return err
}
