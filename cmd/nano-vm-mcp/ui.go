package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/nanovm/nano-vm-mcp/internal/primary"
	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/runtime/mcpserver"
	"github.com/nanovm/nano-vm-mcp/runtime/viewer"
	"github.com/nanovm/nano-vm-mcp/store"
)

// cmdUI serves the run viewer on loopback for stdio users: the page the
// HTTP transport serves at /ui/, reading the database as the other
// administrative commands do — through the running server's operator
// channel when one holds it, else opening it — once per request, so that
// the database is never held between requests and a server can start
// beside it at any time.
func cmdUI(cmd *command, args []string, cio *cliIO) error {
	fs, c := newFlags(cmd, cio)
	listen := fs.String("listen", "", "loopback address to serve the viewer on, host:port; port 0 picks a free one (NANO_VM_MCP_UI_LISTEN; default 127.0.0.1:0)")
	pos, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("ui takes no arguments, got %q", pos[0])
	}
	if *listen == "" {
		*listen = envOr("UI_LISTEN", "127.0.0.1:0")
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return usagef("--listen (NANO_VM_MCP_UI_LISTEN) %q: want host:port, e.g. 127.0.0.1:8765", *listen)
	}
	if !mcpserver.IsLoopback(host) {
		return usagef("--listen (NANO_VM_MCP_UI_LISTEN) %q: ui serves this machine only (loopback); to show the viewer to others, serve HTTP with NANO_VM_MCP_API_KEY set and open /ui/ there", *listen)
	}
	// The viewer reads; it registers nothing at start-up.
	c.noBundled, c.toolsDir = true, ""

	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return fmt.Errorf("ui: token: %w", err)
	}
	token := hex.EncodeToString(raw)
	logger := c.logger()
	src := &uiSource{c: c}
	h := mcpserver.Guard(viewer.Handler(src, &viewer.Options{Logger: logger, Version: version, Where: c.db}),
		mcpserver.HTTPOptions{APIKey: token, Logger: logger})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("ui: listen %s: %w", *listen, err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: mcpserver.DefaultReadHeaderTimeout, IdleTimeout: mcpserver.DefaultIdleTimeout, MaxHeaderBytes: mcpserver.DefaultMaxHeaderBytes}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()

	how := "opened per request (no server holds it now)"
	if exists(primary.OperatorTokenPath(c.db)) {
		how = "read through the server holding it"
	}
	fmt.Fprintf(cio.stdout, "nano-vm-mcp ui: viewing %s, %s\n", c.db, how)
	// The token travels in the fragment, which the browser keeps to
	// itself: it reaches no server log, and the page removes it at once.
	fmt.Fprintf(cio.stdout, "open http://%s/ui/#token=%s\n", ln.Addr().String(), token)
	fmt.Fprintln(cio.stdout, "(Ctrl-C stops it)")
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// uiSource is viewer.Source over openAdmin, once per request: through
// the primary when one serves the database, else opened here and closed
// again, so that a server starting meanwhile waits at most one request
// for the file. Requests are served one at a time (two opens of one file
// in one process would conflict).
type uiSource struct {
	c  *common
	mu sync.Mutex
}

func (s *uiSource) with(ctx context.Context, fn func(a admin) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !exists(s.c.db) && !exists(primary.OperatorTokenPath(s.c.db)) {
		return &runtime.Error{Code: runtime.CodeNotFound, Message: fmt.Sprintf("no database at %s yet: it appears with the first run", s.c.db)}
	}
	a, err := s.c.openAdmin(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	return fn(a)
}

func (s *uiSource) Traces(ctx context.Context, f store.RunFilter) (out store.RunPage, err error) {
	err = s.with(ctx, func(a admin) (err error) { out, err = a.Traces(ctx, f); return err })
	return out, err
}

func (s *uiSource) Trace(ctx context.Context, id string, offset, limit int) (out *runtime.TraceView, err error) {
	err = s.with(ctx, func(a admin) (err error) { out, err = a.Trace(ctx, id, offset, limit); return err })
	return out, err
}

func (s *uiSource) VerifyAudit(ctx context.Context, id string) (out store.VerifyReport, err error) {
	err = s.with(ctx, func(a admin) (err error) { out, err = a.VerifyAudit(ctx, id); return err })
	return out, err
}

func (s *uiSource) Envelopes(ctx context.Context, id string) (out []store.Envelope, err error) {
	err = s.with(ctx, func(a admin) (err error) { out, err = a.Envelopes(ctx, id); return err })
	return out, err
}

// StepEnvelope is one step's envelope (viewer.StepEnvelopeSource), from
// the runtime or the primary's operator channel without the run's others.
func (s *uiSource) StepEnvelope(ctx context.Context, id string, index int) (out *store.Envelope, err error) {
	err = s.with(ctx, func(a admin) (err error) {
		out, err = a.StepEnvelope(ctx, id, index)
		return err
	})
	return out, err
}

func (s *uiSource) Tools(ctx context.Context) (out []store.ToolRecord, err error) {
	err = s.with(ctx, func(a admin) (err error) { out, err = a.Tools(ctx); return err })
	return out, err
}

func (s *uiSource) Policy(ctx context.Context) (out viewer.PolicyView, err error) {
	err = s.with(ctx, func(a admin) (err error) {
		switch a := a.(type) {
		case *runtime.Runtime:
			out, err = viewer.PolicyViewOf(a.Policy())
		case *remoteAdmin:
			err = a.call(ctx, "policy", nil, &out)
		default:
			err = fmt.Errorf("ui: policy: unsupported source %T", a)
		}
		return err
	})
	return out, err
}
