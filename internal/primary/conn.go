package primary

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"

	"github.com/mark3labs/mcp-go/server"
)

// lineWriter writes whole lines, one writer at a time.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// writeLine writes msg and a newline, one writer at a time, so two
// messages are never spliced together; a writer that dies between the two
// leaves a line without its newline, which a reader drops as torn. A
// short message goes in one Write; a long one is not copied for it
// (net.Buffers: one writev on a socket).
func (l *lineWriter) writeLine(msg []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(msg) < 64<<10 {
		buf := make([]byte, 0, len(msg)+1)
		_, err := l.w.Write(append(append(buf, msg...), '\n'))
		return err
	}
	bufs := net.Buffers{msg, []byte{'\n'}}
	_, err := bufs.WriteTo(l.w)
	return err
}

// connSession is one connection's session. serveConn encodes its
// notifications one at a time, in queue order, each after the one before
// is written; EncodesNotifications says so to the MCP server, which then
// orders a run's answer behind its notifications with a barrier (see
// .rationale/mcp.md, "Why does a run's answer wait behind a barrier
// notification?").
type connSession struct{ *server.InProcessSession }

// EncodesNotifications reports that this session's notifications are
// encoded to JSON before they are written.
func (connSession) EncodesNotifications() bool { return true }

// serveConn serves one MCP session over a newline-delimited JSON-RPC
// stream (a socket connection or the primary's own in-process pipe) until
// the stream ends or ctx is cancelled; then it cancels the session's
// requests in flight, as the stdio transport does when stdin closes.
//
// gate, when set, lets the connection open an operator session with its
// first line (see operator.go); nil for the primary's own client and a
// lone stdio server.
func serveConn(ctx context.Context, srv *server.MCPServer, conn io.ReadWriteCloser, sessionID string, dropTorn bool, gate *operatorGate, log *slog.Logger) error {
	sess := connSession{server.NewInProcessSession(sessionID, nil)}
	if err := srv.RegisterSession(ctx, sess); err != nil {
		return fmt.Errorf("serve session %s: %w", sessionID, err)
	}
	defer srv.UnregisterSession(context.Background(), sessionID)
	ctx, cancel := context.WithCancel(srv.WithContext(ctx, sess))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	out := &lineWriter{w: conn}
	var wg sync.WaitGroup
	var op *operatorSession
	if gate != nil {
		op = &operatorSession{gate: gate, first: true}
	}
	wg.Go(func() {
		for {
			select {
			case n := <-sess.ClientNotifications():
				b, err := json.Marshal(n)
				if err == nil {
					err = out.writeLine(b)
				}
				if err != nil {
					log.Debug("shared: notification not sent", "session", sessionID, "err", err)
				}
			case <-ctx.Done():
				return
			}
		}
	})
	handle := func(line []byte) {
		msg := json.RawMessage(line)
		e, err := parseEnvelope(msg)
		if err != nil {
			code, what := codeParse, "parse error: "
			if json.Valid(line) {
				code, what = codeInvalidRequest, "invalid request: "
			}
			out.writeLine(errorLine(recoverID(line), code, what+err.Error(), nil))
			return
		}
		if e.Method == "" && !e.isResponse() {
			out.writeLine(errorLine(e.ID, codeInvalidRequest, "invalid request: a JSON-RPC request needs a method", nil))
			return
		}
		if op != nil && op.intercept(ctx, e, out, func(f func()) { wg.Go(f) }) {
			return
		}
		if e.Method == "" {
			// A response to a server-initiated request: this transport
			// sends none (no sampling, roots or elicitation), so there is
			// nothing waiting for it.
			return
		}
		run := func() {
			resp := handleMessage(ctx, srv, e.ID, msg, log)
			if resp == nil {
				return
			}
			b, err := json.Marshal(resp)
			if err != nil {
				b = errorLine(e.ID, codeInternal, "encode response: "+err.Error(), nil)
			}
			if err := out.writeLine(b); err != nil {
				log.Debug("shared: response not sent", "session", sessionID, "err", err)
			}
		}
		if e.isRequest() {
			// Off the read loop, so a long run does not hold up the
			// session's other requests or its cancellations.
			wg.Go(run)
			return
		}
		// Notifications are handled in order, before anything after them.
		run()
	}
	tooLong := func(o oversized) {
		log.Warn("shared: skipped an oversized message", "session", sessionID, "bytes", o.N, "limit", maxLine())
		if err := out.writeLine(errorLine(o.ID, codeInvalidRequest, o.Message(), map[string]any{"limit_bytes": maxLine()})); err != nil {
			log.Debug("shared: response not sent", "session", sessionID, "err", err)
		}
	}
	err := readLines(conn, dropTorn, handle, tooLong)
	cancel()
	wg.Wait()
	if ctx.Err() != nil && err != nil {
		err = nil // the connection was closed under the reader on purpose
	}
	return err
}

// ServeLines serves one MCP session over newline-delimited JSON-RPC read
// from in and written to out (a single process's stdin and stdout) until
// in ends (nil) or ctx is cancelled (ctx's error), cancelling the
// session's requests in flight then. It applies the limits of the shared
// transport: a message over MaxMessageBytes, or one that is not JSON-RPC,
// is answered with a JSON-RPC error and the session goes on.
func ServeLines(ctx context.Context, srv *server.MCPServer, in io.Reader, out io.Writer, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	// Read in through a pipe, so that cancelling ctx ends the session even
	// when in is a reader that cannot be closed under a blocked Read.
	pr, pw := io.Pipe()
	go func() {
		_, err := io.Copy(pw, in)
		pw.CloseWithError(err)
	}()
	err := serveConn(ctx, srv, pipeConn{pr, out}, "stdio", false, nil, log)
	if err == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

type pipeConn struct {
	*io.PipeReader
	w io.Writer
}

func (c pipeConn) Write(p []byte) (int, error) { return c.w.Write(p) }

// handleMessage runs one message through the server, turning a panic into
// an INTERNAL_ERROR response instead of a dead process.
func handleMessage(ctx context.Context, srv *server.MCPServer, id json.RawMessage, msg json.RawMessage, log *slog.Logger) (resp any) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("shared: panic handling a message", "panic", r)
			if len(id) > 0 {
				resp = json.RawMessage(errorLine(id, codeInternal, "internal error", nil))
			} else {
				resp = nil
			}
		}
	}()
	r := srv.HandleMessage(ctx, msg)
	if r == nil {
		return nil
	}
	return r
}
