package mcpserver

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/mark3labs/mcp-go/tracing"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/nanovm/nano-vm-mcp/runtime/telemetry"
)

// The MCP request spans and the mcp.server.operation.duration histogram
// are made through mcp-go's own tracing seam (server.WithTracer), which
// every transport's requests pass: mcp-go opens a "server" span around
// each request it dispatches and tells it the tool name and an isError
// result; the hooks add the JSON-RPC id, the target and the error code.
// See RATIONALE.md, "Why are MCP spans made through mcp-go's
// tracing seam?".

// knownMethods are the MCP methods a span or a metric names as they are;
// any other method a client sends is "_OTHER", so that no client can
// grow the label set.
var knownMethods = map[string]bool{}

func init() {
	for _, m := range []mcp.MCPMethod{
		mcp.MethodInitialize, mcp.MethodPing, mcp.MethodResourcesList, mcp.MethodResourcesTemplatesList,
		mcp.MethodResourcesRead, mcp.MethodResourcesSubscribe, mcp.MethodResourcesUnsubscribe,
		mcp.MethodPromptsList, mcp.MethodPromptsGet, mcp.MethodToolsList, mcp.MethodToolsCall,
		mcp.MethodSetLogLevel, mcp.MethodTasksGet, mcp.MethodTasksList, mcp.MethodTasksResult,
		mcp.MethodTasksCancel, mcp.MethodCompletionComplete, mcp.MethodServerDiscover, mcp.MethodSubscriptionsListen,
	} {
		knownMethods[string(m)] = true
	}
}

const otherValue = "_OTHER"

// maxTargetBytes bounds the client-chosen target (a tool name, a URI)
// a span's name and attributes quote.
const maxTargetBytes = 256

// transportKey marks a request's context with its network.transport; a
// request without one came over a pipe (stdio, or the shared socket a
// stdio server forwards to).
type transportKey struct{}

func withTransport(ctx context.Context, transport string) context.Context {
	return context.WithValue(ctx, transportKey{}, transport)
}

func transportOf(ctx context.Context) string {
	if t, ok := ctx.Value(transportKey{}).(string); ok {
		return t
	}
	return telemetry.TransportPipe
}

// mcpTelemetry implements mcp-go's tracing.Tracer: one operation per MCP
// request, timed for the metrics and, when tracing is on, an OpenTelemetry
// server span.
type mcpTelemetry struct {
	tracer  trace.Tracer // nil: no spans
	metrics *telemetry.Metrics
}

// serverOptions are the mcp-go options that install the telemetry.
func (mt *mcpTelemetry) serverOptions() []server.ServerOption {
	hooks := &server.Hooks{}
	hooks.AddBeforeAny(mt.beforeAny)
	hooks.AddOnError(mt.onError)
	opts := []server.ServerOption{server.WithTracer(mt), server.WithHooks(hooks)}
	if mt.tracer != nil {
		opts = append(opts, server.WithMetaPropagator(metaPropagator{}))
	}
	return opts
}

// Start implements tracing.Tracer. mcp-go's per-tool "internal" span is
// not made: the request's span already names the tool.
func (mt *mcpTelemetry) Start(ctx context.Context, name string, kind tracing.SpanKind, attrs ...tracing.Attribute) (context.Context, tracing.Span) {
	if kind != tracing.SpanKindServer {
		return ctx, noSpan{}
	}
	method := name
	if len(method) > 4 && method[:4] == "mcp." {
		method = method[4:]
	}
	if !knownMethods[method] {
		method = otherValue
	}
	op := &operation{mt: mt, start: time.Now(), method: method, transport: transportOf(ctx), protocol: server.RequestProtocolVersion(ctx)}
	var session string
	for _, a := range attrs {
		switch a.Key {
		case "mcp.session.id":
			session = a.Value
		case "mcp.protocol.version":
			if op.protocol == "" {
				op.protocol = clipBytes(a.Value, 32)
			}
		}
	}
	if mt.tracer != nil {
		opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
			telemetry.KeyMCPMethodName.String(method),
			telemetry.KeyNetworkTransport.String(op.transport),
		)}
		if session != "" {
			opts = append(opts, trace.WithAttributes(telemetry.KeyMCPSessionID.String(clipBytes(session, 128))))
		}
		if op.protocol != "" {
			opts = append(opts, trace.WithAttributes(telemetry.KeyMCPProtocolVersion.String(op.protocol)))
		}
		ctx, op.span = mt.tracer.Start(ctx, method, opts...)
	}
	return tracing.ContextWithSpan(ctx, op), op
}

// operation is one MCP request in flight. mcp-go calls its methods from
// the request's goroutine; the hooks run there too.
type operation struct {
	mt        *mcpTelemetry
	span      trace.Span // nil: tracing off
	start     time.Time
	method    string
	transport string
	protocol  string

	mu sync.Mutex
	// tool is the called tool, set once mcp-go reached its handler (so
	// it is a registered tool, a bounded label).
	tool    string
	errType string
}

func operationFrom(ctx context.Context) *operation {
	op, _ := tracing.SpanFromContext(ctx).(*operation)
	return op
}

// SetAttributes implements tracing.Span: mcp-go names the tool called.
func (op *operation) SetAttributes(attrs ...tracing.Attribute) {
	for _, a := range attrs {
		if a.Key != "mcp.tool.name" {
			continue
		}
		op.mu.Lock()
		op.tool = clipBytes(a.Value, maxTargetBytes)
		op.mu.Unlock()
		op.target(a.Value)
	}
}

// target names the request's target in the span: "{method} {target}".
func (op *operation) target(t string) {
	if op.span == nil || t == "" {
		return
	}
	t = clipBytes(t, maxTargetBytes)
	op.span.SetName(op.method + " " + t)
	if op.method == string(mcp.MethodToolsCall) {
		op.span.SetAttributes(telemetry.KeyGenAIToolName.String(t), telemetry.KeyGenAIOperationName.String(telemetry.OperationExecuteTool))
	}
}

// RecordError implements tracing.Span.
func (op *operation) RecordError(err error) {
	if op.span != nil {
		op.span.RecordError(err)
	}
}

// toolErrorStatus is the status mcp-go sets on the request's span for a
// tool result with isError.
const toolErrorStatus = "tool returned error result"

// SetStatus implements tracing.Span: an isError result, or a JSON-RPC
// error response.
func (op *operation) SetStatus(code tracing.StatusCode, description string) {
	if code != tracing.StatusError {
		return
	}
	op.mu.Lock()
	switch {
	case description == toolErrorStatus:
		op.errType = telemetry.ErrorTypeTool
	case op.errType == "":
		op.errType = otherValue
	}
	op.mu.Unlock()
	if op.span != nil {
		op.span.SetStatus(codes.Error, description)
	}
}

// End implements tracing.Span.
func (op *operation) End() {
	d := time.Since(op.start)
	op.mu.Lock()
	tool, errType := op.tool, op.errType
	op.mu.Unlock()
	op.mt.metrics.MCPOperation(op.method, tool, errType, op.transport, op.protocol, d)
	if op.span != nil {
		if errType != "" {
			op.span.SetAttributes(telemetry.KeyErrorType.String(errType))
		}
		op.span.End()
	}
}

// beforeAny adds what only the request tells: its JSON-RPC id and target.
func (mt *mcpTelemetry) beforeAny(ctx context.Context, id any, method mcp.MCPMethod, message any) {
	op := operationFrom(ctx)
	if op == nil || op.span == nil {
		return
	}
	if id != nil {
		op.span.SetAttributes(telemetry.KeyJSONRPCRequestID.String(clipBytes(requestID(id), 128)))
	}
	switch m := message.(type) {
	case *mcp.CallToolRequest:
		op.target(m.Params.Name)
	case *mcp.GetPromptRequest:
		op.target(m.Params.Name)
	case *mcp.ReadResourceRequest:
		op.target(m.Params.URI)
	case *mcp.InitializeRequest:
		if v := m.Params.ProtocolVersion; v != "" {
			op.span.SetAttributes(telemetry.KeyMCPProtocolVersion.String(clipBytes(v, 32)))
		}
	}
}

// onError records a JSON-RPC error's code as error.type.
func (mt *mcpTelemetry) onError(ctx context.Context, id any, method mcp.MCPMethod, message any, err error) {
	op := operationFrom(ctx)
	if op == nil {
		return
	}
	if e, ok := err.(interface{ ToJSONRPCError() mcp.JSONRPCError }); ok {
		op.mu.Lock()
		op.errType = strconv.Itoa(e.ToJSONRPCError().Error.Code)
		op.mu.Unlock()
	}
}

// requestID renders a JSON-RPC id: a string as it is, a number without
// an exponent.
func requestID(id any) string {
	switch v := id.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case mcp.RequestId:
		return fmt.Sprint(v.Value())
	default:
		return fmt.Sprint(v)
	}
}

// clipBytes cuts s to at most n bytes.
func clipBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// noSpan is the span of what is not traced.
type noSpan struct{}

func (noSpan) SetAttributes(...tracing.Attribute)   {}
func (noSpan) RecordError(error)                    {}
func (noSpan) SetStatus(tracing.StatusCode, string) {}
func (noSpan) End()                                 {}

// metaPropagator reads the W3C trace context a client put in a request's
// params._meta (traceparent, tracestate), so the request's span joins
// the client's trace on every transport, stdio included.
type metaPropagator struct{}

func (metaPropagator) InjectMeta(_ context.Context, meta *mcp.Meta) *mcp.Meta { return meta }

func (metaPropagator) ExtractMeta(ctx context.Context, meta *mcp.Meta) context.Context {
	if meta == nil || meta.AdditionalFields == nil {
		return ctx
	}
	carrier := propagation.MapCarrier{}
	for _, k := range []string{"traceparent", "tracestate"} {
		if v, ok := meta.AdditionalFields[k].(string); ok && len(v) <= 512 {
			carrier[k] = v
		}
	}
	if len(carrier) == 0 {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, carrier)
}

// MetricsHandler serves the runtime's metrics at GET /metrics and nothing
// else, without auth: for a listener of its own on an address the
// operator chose (the CLI's --metrics-listen), such as a loopback port a
// local Prometheus scrapes.
func (s *Server) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.rt.Metrics().Handler())
	return mux
}
