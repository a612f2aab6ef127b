package shared

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/mark3labs/mcp-go/server"
)

// maxLine bounds one JSON-RPC message on the socket and on stdin: room
// for register_tool's base64 module under the HTTP transport's 4 MiB cap,
// with slack for the envelope.
const maxLine = 8 << 20

// lineWriter writes whole lines, one writer at a time.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// writeLine writes msg and a newline in one Write, so that a reader
// killed mid-stream never sees two messages spliced together.
func (l *lineWriter) writeLine(msg []byte) error {
	buf := make([]byte, 0, len(msg)+1)
	buf = append(append(buf, msg...), '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := l.w.Write(buf)
	return err
}

// readLines calls fn with every line of r (without its newline) until r
// ends or fails. A last line without a newline is dropped when dropTorn is
// set: from a dying peer it is a torn message; from a client closing stdin
// it is its final message and is kept.
func readLines(r io.Reader, dropTorn bool, fn func([]byte)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := readLine(br)
		if err != nil {
			if t := bytes.TrimSpace(line); len(t) > 0 && err == io.EOF && !dropTorn {
				fn(t)
			}
			if err == io.EOF {
				return nil
			}
			return err
		}
		if t := bytes.TrimSpace(line); len(t) > 0 {
			fn(t)
		}
	}
}

// readLine reads up to and without the next newline. A line over maxLine
// is an error: the stream cannot be resynchronised safely after it.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxLine {
			return nil, fmt.Errorf("read message: over %d bytes", maxLine)
		}
		switch err {
		case nil:
			return line[:len(line)-1], nil
		case bufio.ErrBufferFull:
			continue
		default:
			return line, err
		}
	}
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
func serveConn(ctx context.Context, srv *server.MCPServer, conn io.ReadWriteCloser, sessionID string, log *slog.Logger) error {
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
		msg := json.RawMessage(bytes.Clone(line))
		e, err := parseEnvelope(msg)
		if err != nil {
			out.writeLine(errorLine(nil, codeParse, "parse error: "+err.Error(), nil))
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
	err := readLines(conn, true, handle)
	cancel()
	wg.Wait()
	if ctx.Err() != nil && err != nil {
		err = nil // the connection was closed under the reader on purpose
	}
	return err
}

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
