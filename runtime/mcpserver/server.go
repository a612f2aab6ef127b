package mcpserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"go.opentelemetry.io/otel/trace"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/runtime/telemetry"
	"github.com/nanovm/nano-vm-mcp/tools"
)

// tracerName is the instrumentation scope of the MCP request spans.
const tracerName = "github.com/nanovm/nano-vm-mcp/runtime/mcpserver"

// MaxResultBytes bounds the JSON of any tool result (40,000 bytes, about
// 10,000 tokens). The result is sent twice, as structured content and as
// text for older clients, so both together stay under Claude Code's default
// 25,000-token tool-output limit.
const MaxResultBytes = 40_000

// Options configures a Server. A nil *Options means DefaultOptions().
type Options struct {
	// Name is the server name announced at initialize; "" means
	// "nano-vm-mcp".
	Name string
	// Version is the server version announced at initialize; "" means
	// "dev".
	Version string
	// AllowToolUpload lists and serves register_tool. DefaultOptions sets
	// it; the zero value false hides register_tool entirely (the operator
	// switched uploads off), so a model is never offered a tool that can
	// only fail.
	AllowToolUpload bool
	// Logger receives the server's logs (never stdout); nil means
	// slog.Default().
	Logger *slog.Logger
	// ExposeTools says which registered tools tools/list offers as MCP
	// tools of their own (see tools_exposed.go); the zero value, ExposeAll,
	// offers every one the policy lets run.
	ExposeTools ExposeTools

	// UploadDir is where upload_module stages chunked uploads; "" means
	// runtime.UploadDir of the runtime's database ("<db>.uploads").
	UploadDir string
	// UploadTTL is how long an upload may go without a chunk before it is
	// discarded; zero means DefaultUploadTTL (10 minutes).
	UploadTTL time.Duration
	// MaxStagedUploadBytes bounds what all open uploads stage together;
	// zero means DefaultMaxStagedBytes (256 MiB). One upload is bounded by
	// the runtime's module ceiling (--max-module-bytes).
	MaxStagedUploadBytes int64
	// UploadsPerSession bounds the uploads one MCP session may have open;
	// zero means DefaultUploadsPerSession (2).
	UploadsPerSession int
	// Now is the uploads' clock; nil means time.Now. Tests move it to
	// expire an upload.
	Now func() time.Time
	// TracerProvider makes a server span per MCP request (telemetry.go),
	// the parent of the runtime's run spans. nil or the no-op provider
	// means no spans; the request durations are measured either way
	// (mcp_server_operation_duration_seconds in the runtime's Metrics).
	TracerProvider trace.TracerProvider
}

// DefaultOptions returns the options New uses for nil: name
// "nano-vm-mcp", version "dev", tool upload allowed, slog.Default().
func DefaultOptions() *Options {
	return &Options{Name: "nano-vm-mcp", Version: "dev", AllowToolUpload: true}
}

// Server is the MCP face of a runtime. It is safe for concurrent use; one
// Server may serve stdio and HTTP at the same time.
type Server struct {
	rt   *runtime.Runtime
	opts Options
	log  *slog.Logger
	mcp  *server.MCPServer
	// defs are the tools as registered, in registration order, for the
	// meta-tests and snapshots.
	defs []toolDef

	// stop cancels every run in flight at Shutdown: the legacy SSE
	// transport detaches request contexts from the connection, so the
	// server needs its own.
	stop     context.Context
	stopRuns context.CancelFunc
	// runs cancels each run in flight, keyed by a pointer unique to it.
	runs map[*context.CancelFunc]context.CancelFunc

	// afterProgress, when set, is called after each progress
	// notification, inside the run: tests use it to cancel at a known
	// step.
	afterProgress func(runtime.Progress)

	// mgmt are the management tools' names, reserved; exposed are the
	// registered tools listed now, by listed name (syncExposed, under
	// exposedMu).
	mgmt      map[string]bool
	exposedMu sync.Mutex
	exposed   map[string]exposedTool

	// uploads are the chunked module uploads in progress (uploads.go).
	uploads *uploads

	mu       sync.Mutex
	closers  []func(context.Context) error
	shutdown bool
}

// New builds the MCP server over rt: its tools, resources and
// instructions. It panics if a tool definition is malformed, a programming
// mistake caught at start-up.
func New(rt *runtime.Runtime, opts *Options) *Server {
	o := DefaultOptions()
	if opts != nil {
		o = opts
		if o.Name == "" {
			o.Name = "nano-vm-mcp"
		}
		if o.Version == "" {
			o.Version = "dev"
		}
	}
	s := &Server{rt: rt, opts: *o, log: o.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.stop, s.stopRuns = context.WithCancel(context.Background())
	mt := &mcpTelemetry{metrics: rt.Metrics()}
	if !telemetry.IsNoop(s.opts.TracerProvider) {
		mt.tracer = s.opts.TracerProvider.Tracer(tracerName)
	}
	s.mcp = server.NewMCPServer(s.opts.Name, s.opts.Version, append([]server.ServerOption{
		server.WithInstructions(instructions),
		// listChanged: registered tools come and go (tools_exposed.go).
		server.WithToolCapabilities(true),
		server.WithResourceCapabilities(false, false),
		server.WithResourceRecovery(),
		server.WithLogging(),
		server.WithToolHandlerMiddleware(s.recoverTool),
	}, mt.serverOptions()...)...)
	dir := s.opts.UploadDir
	if dir == "" {
		dir = runtime.UploadDir(rt.DBPath())
	}
	s.uploads = newUploads(dir, &s.opts, rt.ModuleBytesLimit())
	if s.opts.AllowToolUpload {
		s.uploads.removeLeftovers()
		go s.uploads.sweepLoop(s.stop)
		s.onShutdown(func(context.Context) error { s.uploads.closeAll(); return nil })
	}
	for _, d := range s.toolDefs() {
		if (d.name == "register_tool" || d.name == "upload_module") && !s.opts.AllowToolUpload {
			continue
		}
		d.mustValidate()
		s.defs = append(s.defs, d)
		s.mcp.AddTool(d.tool(), s.handle(d))
	}
	s.addResources()
	s.mgmt = managementNames()
	// The tools registered while the runtime opened are listed from the
	// start, before any session exists, so nothing is sent for them.
	s.syncExposed(context.Background())
	rt.OnToolsChanged(func() {
		if s.stop.Err() == nil {
			s.syncExposed(context.Background())
		}
	})
	return s
}

// MCP returns the mcp-go server, for in-process clients and custom
// transports.
func (s *Server) MCP() *server.MCPServer { return s.mcp }

// Shutdown cancels the runs in flight (each stops after its current step
// and is left resumable) and closes the HTTP transports' sessions. It does
// not close the runtime: the caller closes it after Shutdown returns.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	closers := s.closers
	s.closers = nil
	s.mu.Unlock()
	s.stopRuns()
	// Cancel the runs here, synchronously, rather than through an
	// AfterFunc goroutine: a run must not start another step after
	// Shutdown returned.
	s.mu.Lock()
	runs := s.runs
	s.runs = nil
	s.mu.Unlock()
	for _, cancel := range runs {
		cancel()
	}
	var first error
	for _, c := range closers {
		if err := c(ctx); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// onShutdown registers a transport's cleanup.
func (s *Server) onShutdown(f func(context.Context) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closers = append(s.closers, f)
}

// runContext is ctx, also cancelled by Shutdown. After Shutdown it
// refuses, so no new run starts only to be interrupted at once.
func (s *Server) runContext(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if s.stop.Err() != nil {
		return nil, nil, &runtime.Error{Code: codeShuttingDown, Message: "the server is shutting down; retry once it is back"}
	}
	ctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		cancel()
		return nil, nil, &runtime.Error{Code: codeShuttingDown, Message: "the server is shutting down; retry once it is back"}
	}
	if s.runs == nil {
		s.runs = map[*context.CancelFunc]context.CancelFunc{}
	}
	key := &cancel
	s.runs[key] = cancel
	s.mu.Unlock()
	return ctx, func() {
		s.mu.Lock()
		delete(s.runs, key)
		s.mu.Unlock()
		cancel()
	}, nil
}

// handle adapts a tool's handler to mcp-go: decoded output becomes
// structured content plus the same JSON as text; an error becomes an
// isError result (see errorResult).
func (s *Server) handle(d toolDef) server.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		// The tool calls a request makes count against its session's share
		// of the calls in flight (tools.Ceilings.CallsInFlightPerSession).
		ctx = tools.WithSession(ctx, issuedSession(ctx))
		out, err := d.handler.call(s, ctx, req)
		if err != nil {
			return s.errorResult(d.name, err), nil
		}
		var text []byte
		if b, ok := out.(encoded); ok {
			text = b
		} else if text, err = json.Marshal(out); err != nil {
			return s.errorResult(d.name, fmt.Errorf("encode result: %w", err)), nil
		}
		if len(text) > MaxResultBytes {
			// Every handler bounds its own output; this is the last guard
			// against a blob reaching the model.
			return s.errorResult(d.name, &runtime.Error{
				Code:    "result_too_large",
				Message: fmt.Sprintf("the result is %d bytes, over the %d-byte limit; ask for a smaller page (limit) or a narrower query", len(text), MaxResultBytes),
			}), nil
		}
		return mcp.NewToolResultStructured(json.RawMessage(text), string(text)), nil
	}
}

// errorResult turns err into a tool error. A *runtime.Error carries its
// code, message and details to the model; anything else is logged with an
// incident id and reported generically, so no internal detail leaks.
func (s *Server) errorResult(tool string, err error) *mcp.CallToolResult {
	body := map[string]any{}
	// A full disk is said as such, whatever code the failure was given on
	// the way (register_tool's tool_rejected, say), unless it already is.
	if e, ok := runtime.AsError(err); !ok || e.Code != codeDiskFull {
		if d := diskFullError(nil, err); d != nil {
			s.log.Error("mcp tool failed: disk full", "tool", tool, "err", err)
			err = d
		}
	}
	if e, ok := runtime.AsError(err); ok {
		for k, v := range e.Details {
			body[k] = v
		}
		body["error"] = e.Code
		body["message"] = e.Message
	} else {
		id := incidentID()
		s.log.Error("mcp tool failed", "tool", tool, "incident", id, "err", err)
		body["error"] = "internal_error"
		body["message"] = "the server failed to complete the call (incident " + id + "); nothing you sent was wrong — retrying may help, and the operator's log has the details"
		body["incident"] = id
	}
	text, mErr := json.Marshal(body)
	if mErr == nil && len(text) > MaxResultBytes/2 {
		// A message or detail quoting client or guest data: keep the
		// code, the trace_id and an excerpt of the message.
		small := map[string]any{"error": body["error"], "message": clipText(fmt.Sprint(body["message"]), maxErrorBytes)}
		for _, k := range []string{"trace_id", "steps", "incident"} {
			if v, ok := body[k]; ok {
				small[k] = v
			}
		}
		text, mErr = json.Marshal(small)
	}
	if mErr != nil || len(text) > MaxResultBytes {
		text = []byte(`{"error":"internal_error","message":"the error could not be encoded"}`)
	}
	return mcp.NewToolResultError(string(text))
}

// recoverTool turns a panic in a tool handler into a generic tool error
// and logs the stack: a panic must never take the server down or reach
// the client.
func (s *Server) recoverTool(next server.ToolHandlerFunc) server.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (res *mcp.CallToolResult, err error) {
		defer func() {
			if r := recover(); r != nil {
				res = s.errorResult(req.Params.Name, fmt.Errorf("panic: %v\n%s", r, debug.Stack()))
				err = nil
			}
		}()
		return next(ctx, req)
	}
}

// incidentID is a short random id tying a generic error to its log line.
func incidentID() string {
	var b [6]byte
	_, _ = io.ReadFull(rand.Reader, b[:])
	return hex.EncodeToString(b[:])
}

// argError is an invalid_argument tool error.
func argError(format string, args ...any) error {
	return &runtime.Error{Code: runtime.CodeInvalidArgument, Message: fmt.Sprintf(format, args...)}
}
