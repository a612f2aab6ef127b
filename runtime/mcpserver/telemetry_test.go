package mcpserver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/runtime/llm"
)

// The client's trace context, sent in params._meta.
const (
	clientTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpanID  = "00f067aa0ba902b7"
)

// fakeProvider is a real local HTTP server standing in for an
// OpenAI-compatible API: it answers every chat completion with the
// recorded answer "yes" and keeps the traceparent headers it received.
type fakeProvider struct {
	mu           sync.Mutex
	traceparents []string
}

func (f *fakeProvider) start(t *testing.T) *httptest.Server {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "llm", "testdata", "openai_chat_completion.json"))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.traceparents = append(f.traceparents, r.Header.Get("traceparent"))
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(hs.Close)
	return hs
}

// tracedServer is a Server whose runtime and MCP layer record spans in an
// in-memory exporter, with an llm model served by fake.
func tracedServer(t *testing.T, fake *fakeProvider) (*Server, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	hs := fake.start(t)
	model, err := llm.New("openai/gpt-4o-mini", &llm.Options{BaseURL: hs.URL, APIKey: "test", Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	opts := DefaultOptions()
	opts.TracerProvider = tp
	s := newServerConfig(t, runtime.Config{LLM: model, LLMModel: "openai/gpt-4o-mini", TracerProvider: tp}, opts)
	return s, exp
}

// spanAttrs returns a span's attributes by key.
func spanAttrs(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

// findSpan returns the one span named name, failing the test otherwise.
func findSpan(t *testing.T, spans tracetest.SpanStubs, name string) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		var names []string
		for _, s := range spans {
			names = append(names, s.Name)
		}
		t.Fatalf("want one span %q, found %d among %q", name, len(found), names)
	}
	return found[0]
}

func childOf(t *testing.T, child, parent tracetest.SpanStub) {
	t.Helper()
	if child.Parent.SpanID() != parent.SpanContext.SpanID() || child.SpanContext.TraceID() != parent.SpanContext.TraceID() {
		t.Fatalf("span %q: parent %s/%s, want %q (%s/%s)", child.Name, child.Parent.TraceID(), child.Parent.SpanID(),
			parent.Name, parent.SpanContext.TraceID(), parent.SpanContext.SpanID())
	}
}

// Ensure a tools/call of run_program over real pipes makes the request's
// server span with the MCP attributes, a child of the client's
// _meta.traceparent; under it the run's span, one span per step, the tool
// call's span (module hash, capabilities, memory) and the llm call's span
// (gen_ai attributes, tokens); and the provider's HTTP request carries a
// traceparent of the same trace, naming the llm span.
func TestTracingSpansOverPipes(t *testing.T) {
	fake := &fakeProvider{}
	s, exp := tracedServer(t, fake)
	c := pipeClient(t, s)
	exp.Reset() // the initialize request's span

	var req mcp.CallToolRequest
	req.Params.Name = "run_program"
	req.Params.Arguments = map[string]any{"program": string(readRefund(t)), "input": map[string]any{"user_input": "broken on arrival"}}
	req.Params.Meta = &mcp.Meta{AdditionalFields: map[string]any{
		"traceparent": "00-" + clientTraceID + "-" + clientSpanID + "-01",
		"tracestate":  "vendor=1",
	}}
	res, err := c.CallTool(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if out := ok(t, s, "run_program", res); out["status"] != "success" {
		t.Fatalf("run: %v", out)
	}
	spans := exp.GetSpans()

	request := findSpan(t, spans, "tools/call run_program")
	if request.SpanKind != trace.SpanKindServer {
		t.Errorf("request span kind %v", request.SpanKind)
	}
	if got := request.Parent; got.TraceID().String() != clientTraceID || got.SpanID().String() != clientSpanID || !got.IsRemote() {
		t.Fatalf("request span's parent %v, want the client's %s/%s", got, clientTraceID, clientSpanID)
	}
	if ts := request.SpanContext.TraceState().String(); ts != "vendor=1" {
		t.Errorf("tracestate %q, want vendor=1", ts)
	}
	a := spanAttrs(request)
	for key, want := range map[attribute.Key]string{
		"mcp.method.name": "tools/call", "gen_ai.tool.name": "run_program", "gen_ai.operation.name": "execute_tool",
		"network.transport": "pipe", "mcp.session.id": "stdio",
	} {
		if got := a[key].AsString(); got != want {
			t.Errorf("request span %s = %q, want %q", key, got, want)
		}
	}
	if a["jsonrpc.request.id"].AsString() == "" || a["mcp.protocol.version"].AsString() == "" {
		t.Errorf("request span lacks jsonrpc.request.id or mcp.protocol.version: %v", a)
	}
	if _, isErr := a["error.type"]; isErr {
		t.Errorf("a successful call has error.type %v", a["error.type"])
	}

	run := findSpan(t, spans, "invoke_workflow customer_refund")
	childOf(t, run, request)
	if ra := spanAttrs(run); ra["nanovm.run.status"].AsString() != "success" || ra["nanovm.trace_id"].AsString() == "" {
		t.Errorf("run span attributes %v", ra)
	}
	analyze := findSpan(t, spans, "step analyze")
	guard := findSpan(t, spans, "step guardrail")
	refund := findSpan(t, spans, "step process_refund")
	for _, st := range []tracetest.SpanStub{analyze, guard, refund} {
		childOf(t, st, run)
		if sa := spanAttrs(st); sa["nanovm.step.status"].AsString() != "success" {
			t.Errorf("%s: status %v", st.Name, sa["nanovm.step.status"])
		}
	}

	tool := findSpan(t, spans, "execute_tool issue_refund")
	childOf(t, tool, refund)
	ta := spanAttrs(tool)
	if h := ta["nanovm.tool.module_sha256"].AsString(); len(h) != 64 {
		t.Errorf("tool span module hash %q", h)
	}
	if caps := ta["nanovm.tool.capabilities"].AsStringSlice(); len(caps) == 0 {
		t.Errorf("tool span capabilities %v", caps)
	}
	if mem := ta["nanovm.tool.memory_bytes"].AsInt64(); mem <= 0 {
		t.Errorf("tool span memory %d", mem)
	}
	if ta["gen_ai.tool.name"].AsString() != "issue_refund" || ta["gen_ai.operation.name"].AsString() != "execute_tool" {
		t.Errorf("tool span gen_ai attributes %v", ta)
	}

	chat := findSpan(t, spans, "chat gpt-4o-mini")
	childOf(t, chat, analyze)
	if chat.SpanKind != trace.SpanKindClient {
		t.Errorf("llm span kind %v", chat.SpanKind)
	}
	ca := spanAttrs(chat)
	if ca["gen_ai.provider.name"].AsString() != "openai" || ca["gen_ai.system"].AsString() != "openai" || ca["gen_ai.request.model"].AsString() != "gpt-4o-mini" ||
		ca["gen_ai.operation.name"].AsString() != "chat" || ca["gen_ai.usage.input_tokens"].AsInt64() != 19 || ca["gen_ai.usage.output_tokens"].AsInt64() != 1 {
		t.Errorf("llm span attributes %v", ca)
	}

	fake.mu.Lock()
	tps := fake.traceparents
	fake.mu.Unlock()
	want := "00-" + clientTraceID + "-" + chat.SpanContext.SpanID().String() + "-01"
	if len(tps) != 1 || tps[0] != want {
		t.Fatalf("provider saw traceparent %q, want [%q]", tps, want)
	}
}

// Ensure a tools/call whose result has isError gets error.type tool_error,
// and a request without _meta.traceparent starts a trace of its own.
func TestTracingToolError(t *testing.T) {
	s, exp := tracedServer(t, &fakeProvider{})
	c := pipeClient(t, s)
	exp.Reset()
	toolErr(t, "run_program", call(t, c, "run_program", map[string]any{"program": `{"steps":[]}`}))
	request := findSpan(t, exp.GetSpans(), "tools/call run_program")
	if got := spanAttrs(request)["error.type"].AsString(); got != "tool_error" {
		t.Fatalf("error.type %q, want tool_error", got)
	}
	if request.Parent.IsValid() {
		t.Fatalf("a request without traceparent has parent %v", request.Parent)
	}
}

func readRefund(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "customer_refund", "program.json"))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// scrape GETs url with the bearer token key ("" for none) and returns the
// status and the parsed metric families.
func scrape(t *testing.T, url, key string) (int, map[string]*dto.MetricFamily) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return resp.StatusCode, mfs
}

// sample returns the metric of family name whose labels include want.
func sample(t *testing.T, mfs map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	mf, ok := mfs[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		return m
	}
	t.Fatalf("no %s sample with labels %v", name, want)
	return nil
}

// Ensure /metrics on a real HTTP server requires the API key and, after
// two runs and a refused registration, reports them: runs by status,
// step, tool-call and MCP-operation histograms, group commits, sandbox
// instantiations, refused registrations and the audit chain's length;
// and MetricsHandler serves the same without auth, and nothing else.
func TestMetricsScrape(t *testing.T) {
	s := newServer(t, nil)
	hs := httpServer(t, s, HTTPOptions{APIKey: testKey})
	c := httpClient(t, hs, "streamable")
	start(t, c)
	for range 2 {
		paymentOverClient(t, s, c)
	}
	toolErr(t, "register_tool", call(t, c, "register_tool", map[string]any{"name": "bad", "manifest": map[string]any{"name": "bad", "description": "no entry point"}, "wasm_base64": "AGFzbQEAAAA="}))

	if code, _ := scrape(t, hs.URL+"/metrics", ""); code != http.StatusUnauthorized {
		t.Fatalf("/metrics without the API key: %d, want 401", code)
	}
	if code, _ := scrape(t, hs.URL+"/metrics", "wrong-key"); code != http.StatusUnauthorized {
		t.Fatalf("/metrics with a wrong key: %d, want 401", code)
	}
	code, mfs := scrape(t, hs.URL+"/metrics", testKey)
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	if n := sample(t, mfs, "nanovm_runs_total", map[string]string{"status": "success"}).GetCounter().GetValue(); n != 2 {
		t.Errorf("runs success = %v, want 2", n)
	}
	if n := sample(t, mfs, "nanovm_step_duration_seconds", map[string]string{"type": "tool", "status": "success"}).GetHistogram().GetSampleCount(); n != 8 {
		t.Errorf("tool steps observed = %d, want 8", n)
	}
	if n := sample(t, mfs, "nanovm_tool_call_duration_seconds", map[string]string{"tool": "reserve_funds", "outcome": "ok"}).GetHistogram().GetSampleCount(); n != 2 {
		t.Errorf("reserve_funds calls observed = %d, want 2", n)
	}
	op := sample(t, mfs, "mcp_server_operation_duration_seconds", map[string]string{
		"mcp_method_name": "tools/call", "gen_ai_tool_name": "run_program", "network_transport": "tcp", "error_type": "",
	})
	if n := op.GetHistogram().GetSampleCount(); n != 2 {
		t.Errorf("tools/call run_program observed = %d, want 2", n)
	}
	if n := sample(t, mfs, "mcp_server_operation_duration_seconds", map[string]string{"gen_ai_tool_name": "register_tool", "error_type": "tool_error"}).GetHistogram().GetSampleCount(); n != 1 {
		t.Errorf("register_tool tool errors observed = %d, want 1", n)
	}
	if n := sample(t, mfs, "nanovm_store_commit_batch_size", nil).GetHistogram().GetSampleCount(); n == 0 {
		t.Error("no group commit observed")
	}
	if n := sample(t, mfs, "nanovm_store_commit_duration_seconds", nil).GetHistogram().GetSampleCount(); n == 0 {
		t.Error("no commit latency observed")
	}
	// A fresh call of a resettable tool resets a kept instance instead.
	inst := sample(t, mfs, "nanovm_sandbox_instantiations_total", nil).GetCounter().GetValue()
	resets := sample(t, mfs, "nanovm_sandbox_resets_total", nil).GetCounter().GetValue()
	if inst+resets < 8 || inst == 0 || resets == 0 {
		t.Errorf("instantiations = %v, resets = %v, want at least 8 in all, some of each", inst, resets)
	}
	if n := sample(t, mfs, "nanovm_tool_registrations_refused_total", map[string]string{"source": "upload"}).GetCounter().GetValue(); n != 1 {
		t.Errorf("refused registrations = %v, want 1", n)
	}
	if n := sample(t, mfs, "nanovm_audit_chain_length", nil).GetGauge().GetValue(); n < 8 {
		t.Errorf("audit chain length = %v, want at least 8", n)
	}
	for _, name := range []string{"nanovm_sandbox_pool_hits_total", "nanovm_sandbox_admission_waits_total", "nanovm_sandbox_admission_refusals_total", "nanovm_sandbox_call_waits_total", "nanovm_sandbox_memory_bytes", "go_goroutines"} {
		sample(t, mfs, name, nil)
	}

	open := httptest.NewServer(s.MetricsHandler())
	defer open.Close()
	if code, mfs := scrape(t, open.URL+"/metrics", ""); code != http.StatusOK || mfs["nanovm_runs_total"] == nil {
		t.Fatalf("MetricsHandler /metrics: %d", code)
	}
	resp, err := http.Post(open.URL+"/mcp", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("MetricsHandler /mcp: %d, want 404", resp.StatusCode)
	}
}
