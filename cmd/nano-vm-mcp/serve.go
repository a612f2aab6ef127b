package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nanovm/nano-vm-mcp/internal/primary"
	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/runtime/mcpserver"
	"github.com/nanovm/nano-vm-mcp/runtime/telemetry"
	"github.com/nanovm/nano-vm-mcp/store/postgres"
)

// cmdServe serves MCP over stdio (the default, for Claude Code and Claude
// Desktop) or HTTP (Streamable HTTP at /mcp, legacy SSE at /sse +
// /messages, /health).
func cmdServe(cmd *command, args []string, cio *cliIO) error {
	fs, c := newFlags(cmd, cio)
	transport := fs.String("transport", "", "stdio, http, or sse (the original's name for http) (NANO_VM_MCP_TRANSPORT; default stdio)")
	host := fs.String("host", "", "HTTP bind host (NANO_VM_MCP_HOST; default 0.0.0.0 as the original)")
	port := fs.String("port", "", "HTTP bind port (NANO_VM_MCP_PORT; default 8080)")
	allowedHosts := fs.String("allowed-hosts", "", "extra Host names accepted over HTTP, comma-separated (NANO_VM_MCP_ALLOWED_HOSTS)")
	allowedOrigins := fs.String("allowed-origins", "", "browser origins accepted over HTTP, comma-separated (NANO_VM_MCP_ALLOWED_ORIGINS)")
	expose := fs.String("expose-tools", "", "registered tools listed as MCP tools of their own: all, none, or names separated by commas (NANO_VM_MCP_EXPOSE_TOOLS; default all)")
	metricsListen := fs.String("metrics-listen", "", "also serve GET /metrics, without auth, on this address, e.g. 127.0.0.1:9464 (NANO_VM_MCP_METRICS_LISTEN; default none: /metrics only on the HTTP transport, behind its API key)")
	c.cp = &checkpointFlags{sign: true}
	c.cp.register(fs, true)
	var hl httpLimits
	hl.register(fs)
	pos, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("serve takes no arguments, got %q", pos[0])
	}
	if err := c.cp.resolve(true); err != nil {
		return err
	}
	fill := func(p *string, name, def string) {
		if *p == "" {
			*p = envOr(name, def)
		}
	}
	fill(transport, "TRANSPORT", "stdio")
	fill(host, "HOST", "0.0.0.0")
	fill(port, "PORT", "8080")
	fill(allowedHosts, "ALLOWED_HOSTS", "")
	fill(allowedOrigins, "ALLOWED_ORIGINS", "")
	fill(expose, "EXPOSE_TOOLS", "all")
	fill(metricsListen, "METRICS_LISTEN", "")
	c.metricsListen = *metricsListen
	if c.expose, err = mcpserver.ParseExposeTools(*expose); err != nil {
		return usagef("--expose-tools (NANO_VM_MCP_EXPOSE_TOOLS): %v", err)
	}
	httpOpts, err := hl.options()
	if err != nil {
		return err
	}
	switch *transport {
	case "stdio", "http", "sse", "streamable-http":
	default:
		return usagef("--transport must be stdio, http or sse, not %q", *transport)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Logs go to stderr only: in stdio mode stdout carries MCP messages.
	logger := c.logger()
	// Tracing only as the standard OTEL_* variables say; off by default.
	if c.tracing, err = telemetry.FromEnv(ctx, telemetry.Options{ServiceVersion: version}); err != nil {
		return err
	}
	defer func() {
		flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.tracing.Shutdown(flushCtx); err != nil {
			logger.Warn("tracing: spans not flushed", "err", err)
		}
	}()
	if c.tracing.Enabled() {
		logger.Info("tracing on", "exporters", strings.Join(c.tracing.Exporters, ", "))
	}
	// The database's folder must exist before the election, whose lock
	// lives beside the database.
	if err := c.prepareDB(); err != nil {
		return err
	}
	// A server is a serving replica of a PostgreSQL database: it takes
	// over the runs of replicas that died.
	c.serving = true
	pg := postgres.IsDSN(c.db)
	if *transport == "stdio" && !pg {
		// Every stdio client gets its own process; they share the database
		// through the first one (see internal/primary). On PostgreSQL each
		// opens the database itself, as a replica.
		err := primary.Serve(ctx, cio.stdin, cio.stdout, primary.Options{
			DBPath: c.db,
			Open:   func(ctx context.Context) (*primary.Backend, error) { return c.openBackend(ctx, logger) },
			Logger: logger,
		})
		if !errors.Is(err, primary.ErrUnsupported) {
			if errors.Is(err, context.Canceled) {
				err = nil
			}
			return err
		}
	}
	rt, err := c.open(ctx)
	if err != nil {
		return err
	}
	stopCheckpoints, err := startCheckpointWriter(rt, c.cp, logger)
	if err != nil {
		rt.Close()
		return err
	}
	srv := c.newServer(rt, logger)
	stopMetrics, err := c.serveMetrics(srv, logger)
	if err != nil {
		stopCheckpoints()
		rt.Close()
		return err
	}
	defer stopMetrics()
	stopPurge := purgeLoop(rt, logger)

	var serveErr error
	if *transport == "stdio" {
		// The shared transport's line reader, alone: the same message
		// limits and errors as where the database is shared.
		serveErr = primary.ServeLines(ctx, srv.MCP(), cio.stdin, cio.stdout, logger)
		if errors.Is(serveErr, context.Canceled) {
			serveErr = nil
		}
	} else {
		httpOpts.AllowedHosts, httpOpts.AllowedOrigins, httpOpts.Logger = splitList(*allowedHosts), splitList(*allowedOrigins), logger
		// Replicas behind a load balancer: any of them answers any request.
		httpOpts.Stateless = pg
		// The database's socket too: stdio servers on the same database
		// forward to this one, and CLI commands work beside it. (A
		// PostgreSQL database has no socket: every process opens it.)
		stopSocket, err := func() (func(), error) { return func() {}, nil }()
		if !pg {
			stopSocket, err = primary.ServeSocket(c.db, &primary.Backend{MCP: srv.MCP(), Operator: operatorHandler(rt)}, logger)
		}
		if err != nil {
			logger.Warn("shared: not serving the database's socket: stdio servers and CLI commands cannot share this database while it runs", "err", err)
			stopSocket = func() {}
		}
		serveErr = serveHTTP(ctx, srv, net.JoinHostPort(*host, *port), *host, httpOpts, logger)
		stopSocket()
	}
	stopPurge()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.Warn("shutdown", "err", err)
	}
	stopCheckpoints()
	if err := rt.Close(); err != nil {
		return errors.Join(serveErr, err)
	}
	return serveErr
}

func (c *common) newServer(rt *runtime.Runtime, logger *slog.Logger) *mcpserver.Server {
	return mcpserver.New(rt, &mcpserver.Options{Name: "nano-vm-mcp", Version: version, AllowToolUpload: !c.noUpload, Logger: logger, ExposeTools: c.expose,
		TracerProvider: c.tracerProvider()})
}

// serveMetrics serves GET /metrics without auth on --metrics-listen, when
// it is set, until stop is called. The address is the operator's choice:
// a loopback port for a local Prometheus, say.
func (c *common) serveMetrics(srv *mcpserver.Server, logger *slog.Logger) (stop func(), err error) {
	if c.metricsListen == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", c.metricsListen)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen (NANO_VM_MCP_METRICS_LISTEN) %s: %w", c.metricsListen, err)
	}
	hs := &http.Server{Handler: srv.MetricsHandler(), ReadHeaderTimeout: mcpserver.DefaultReadHeaderTimeout,
		WriteTimeout: mcpserver.DefaultWriteTimeout, IdleTimeout: mcpserver.DefaultIdleTimeout, MaxHeaderBytes: mcpserver.DefaultMaxHeaderBytes}
	go func() { _ = hs.Serve(ln) }()
	if !mcpserver.IsLoopback(c.metricsListen) {
		logger.Warn("metrics are served without auth beyond loopback: anyone who can reach " + ln.Addr().String() + " can read them")
	}
	logger.Info("serving metrics", "addr", ln.Addr().String(), "path", "/metrics")
	return func() { _ = hs.Close() }, nil
}

// openBackend opens the runtime and its MCP server for the process that
// becomes the database's primary.
func (c *common) openBackend(ctx context.Context, logger *slog.Logger) (*primary.Backend, error) {
	rt, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	stopCheckpoints, err := startCheckpointWriter(rt, c.cp, logger)
	if err != nil {
		rt.Close()
		return nil, err
	}
	srv := c.newServer(rt, logger)
	stopMetrics, err := c.serveMetrics(srv, logger)
	if err != nil {
		stopCheckpoints()
		rt.Close()
		return nil, err
	}
	stopPurge := purgeLoop(rt, logger)
	return &primary.Backend{MCP: srv.MCP(), Operator: operatorHandler(rt), Close: func(ctx context.Context) error {
		stopMetrics()
		stopPurge()
		if err := srv.Shutdown(ctx); err != nil {
			logger.Warn("shutdown", "err", err)
		}
		stopCheckpoints()
		return rt.Close()
	}}, nil
}

// every calls fn each period until ctx is done.
func every(ctx context.Context, period time.Duration, fn func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// purgeLoop purges expired idempotency keys hourly until stopped. Keys
// expire on their own at claim time; purging keeps the file small.
func purgeLoop(rt *runtime.Runtime, logger *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	go every(ctx, time.Hour, func() {
		if _, err := rt.PurgeExpired(ctx); err != nil {
			logger.Warn("purge idempotency keys", "err", err)
		}
	})
	return cancel
}

func serveHTTP(ctx context.Context, srv *mcpserver.Server, addr, host string, opts mcpserver.HTTPOptions, logger *slog.Logger) error {
	apiKey := env("API_KEY")
	if apiKey == "" && !mcpserver.IsLoopback(host) {
		logger.Warn("NANO_VM_MCP_API_KEY is not set and the server listens beyond loopback: anyone who can reach " + addr + " can run programs. Set NANO_VM_MCP_API_KEY, or bind --host 127.0.0.1.")
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		opts.AllowedHosts = append(opts.AllowedHosts, host)
	}
	opts.APIKey = apiKey
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	hs, ln := srv.HTTPServer(ln, opts)
	logger.Info("serving MCP over HTTP", "addr", ln.Addr().String(), "streamable_http", "/mcp", "sse", "/sse", "health", "/health", "auth", apiKey != "")
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down: in-flight runs stop after their current step and stay resumable")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(shutdownCtx)
	if err := hs.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// httpLimits are the HTTP server's limit flags; an unset one comes from
// NANO_VM_MCP_HTTP_<NAME>, else mcpserver's default.
type httpLimits struct {
	readHeader, read, bodyGrace, write, idle  string
	minBodyRate, maxHeader, maxConns, maxBody string
}

func (h *httpLimits) register(fs *flag.FlagSet) {
	d := func(p *string, name, env string, def any, what string) {
		fs.StringVar(p, name, "", fmt.Sprintf("%s (NANO_VM_MCP_%s; default %v)", what, env, def))
	}
	d(&h.readHeader, "http-read-header-timeout", "HTTP_READ_HEADER_TIMEOUT", mcpserver.DefaultReadHeaderTimeout, "HTTP: time to read a request's headers, and to wait for a new connection's first request")
	d(&h.read, "http-read-timeout", "HTTP_READ_TIMEOUT", mcpserver.DefaultReadTimeout, "HTTP: time to read a whole request body")
	d(&h.minBodyRate, "http-min-body-rate", "HTTP_MIN_BODY_RATE", mcpserver.DefaultMinBodyRate, "HTTP: slowest request body, bytes per second after --http-body-grace; slower is cut with 408")
	d(&h.bodyGrace, "http-body-grace", "HTTP_BODY_GRACE", mcpserver.DefaultBodyGrace, "HTTP: time a request body may take before --http-min-body-rate applies")
	d(&h.write, "http-write-timeout", "HTTP_WRITE_TIMEOUT", mcpserver.DefaultWriteTimeout, "HTTP: time for each write of a response; a client that stops reading is cut (streams live on while they flow)")
	d(&h.idle, "http-idle-timeout", "HTTP_IDLE_TIMEOUT", mcpserver.DefaultIdleTimeout, "HTTP: a keep-alive connection with no request is closed after this")
	d(&h.maxHeader, "http-max-header-bytes", "HTTP_MAX_HEADER_BYTES", mcpserver.DefaultMaxHeaderBytes, "HTTP: request header cap, bytes")
	d(&h.maxConns, "http-max-conns", "HTTP_MAX_CONNS", mcpserver.DefaultMaxConns, "HTTP: connections open at once; at the cap the longest-idle one is closed for a newcomer, and with all busy a newcomer gets 503")
	d(&h.maxBody, "http-max-body-bytes", "HTTP_MAX_BODY_BYTES", mcpserver.DefaultMaxBodyBytes, "HTTP: request body cap, bytes; larger is refused with 413")
}

// options parses the limits; zero fields mean mcpserver's defaults.
func (h *httpLimits) options() (mcpserver.HTTPOptions, error) {
	var o mcpserver.HTTPOptions
	dur := func(p *time.Duration, flagName, envName, v string) error {
		if v == "" {
			v = env(envName)
		}
		if v == "" {
			return nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return usagef("--%s (NANO_VM_MCP_%s): want a positive duration such as 30s or 2m, not %q", flagName, envName, v)
		}
		*p = d
		return nil
	}
	num := func(p *int64, flagName, envName, v string) error {
		if v == "" {
			v = env(envName)
		}
		if v == "" {
			return nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return usagef("--%s (NANO_VM_MCP_%s): want a positive integer, not %q", flagName, envName, v)
		}
		*p = n
		return nil
	}
	var maxHeader, maxConns int64
	for _, err := range []error{
		dur(&o.ReadHeaderTimeout, "http-read-header-timeout", "HTTP_READ_HEADER_TIMEOUT", h.readHeader),
		dur(&o.ReadTimeout, "http-read-timeout", "HTTP_READ_TIMEOUT", h.read),
		dur(&o.BodyGrace, "http-body-grace", "HTTP_BODY_GRACE", h.bodyGrace),
		dur(&o.WriteTimeout, "http-write-timeout", "HTTP_WRITE_TIMEOUT", h.write),
		dur(&o.IdleTimeout, "http-idle-timeout", "HTTP_IDLE_TIMEOUT", h.idle),
		num(&o.MinBodyRate, "http-min-body-rate", "HTTP_MIN_BODY_RATE", h.minBodyRate),
		num(&maxHeader, "http-max-header-bytes", "HTTP_MAX_HEADER_BYTES", h.maxHeader),
		num(&maxConns, "http-max-conns", "HTTP_MAX_CONNS", h.maxConns),
		num(&o.MaxBodyBytes, "http-max-body-bytes", "HTTP_MAX_BODY_BYTES", h.maxBody),
	} {
		if err != nil {
			return o, err
		}
	}
	o.MaxHeaderBytes, o.MaxConns = int(min(maxHeader, 1<<30)), int(min(maxConns, 1<<30))
	return o, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
