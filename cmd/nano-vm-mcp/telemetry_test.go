package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// collector is a real local HTTP server standing in for an OpenTelemetry
// collector's OTLP/HTTP receiver: it keeps the spans POSTed to /v1/traces
// and the service.name they came with.
type collector struct {
	mu       sync.Mutex
	spans    []*tracepb.Span
	services []string
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want OTLP/HTTP protobuf at /v1/traces", http.StatusNotFound)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				c.services = append(c.services, kv.GetValue().GetStringValue())
			}
		}
		for _, ss := range rs.ScopeSpans {
			c.spans = append(c.spans, ss.Spans...)
		}
	}
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(nil)
}

// byName returns the spans received by name, once one named want arrived
// or 30 s passed.
func (c *collector) waitFor(want string) map[string]*tracepb.Span {
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.mu.Lock()
		m := map[string]*tracepb.Span{}
		for _, s := range c.spans {
			m[s.Name] = s
		}
		c.mu.Unlock()
		if m[want] != nil || time.Now().After(deadline) {
			return m
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Ensure the binary, configured only by OTEL_EXPORTER_OTLP_ENDPOINT and
// OTEL_SERVICE_NAME, exports over OTLP/HTTP the spans of a run_program
// called over stdio: the request's span in the client's trace (from
// _meta.traceparent), the run's, its steps' and its tool calls'.
func TestE2EOTLPExport(t *testing.T) {
	col := &collector{}
	hs := httptest.NewServer(col)
	defer hs.Close()
	env := append(e2eEnv(), "OTEL_EXPORTER_OTLP_ENDPOINT="+hs.URL, "OTEL_SERVICE_NAME=e2e-nano", "OTEL_BSP_SCHEDULE_DELAY=100")
	db := filepath.Join(t.TempDir(), "otel.db")
	c := stdioClientWith(t, env, "--transport", "stdio", "--db", db)
	const traceID, parentID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	req := mcp.CallToolRequest{}
	req.Params.Name = "run_program"
	req.Params.Arguments = map[string]any{
		"program": readFile(t, filepath.Join("..", "..", "examples", "payment_pipeline", "program.json")),
		"input":   map[string]any{"amount": 10, "order_id": "o-1"},
	}
	req.Params.Meta = &mcp.Meta{AdditionalFields: map[string]any{"traceparent": "00-" + traceID + "-" + parentID + "-01"}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := c.CallTool(ctx, req)
	if err != nil || res.IsError {
		t.Fatalf("run_program: %v %v", err, res)
	}
	c.Close() // the server ends and flushes its spans

	spans := col.waitFor("tools/call run_program")
	request := spans["tools/call run_program"]
	if request == nil {
		t.Fatalf("no request span among %d spans", len(spans))
	}
	if hex.EncodeToString(request.TraceId) != traceID || hex.EncodeToString(request.ParentSpanId) != parentID {
		t.Fatalf("request span in trace %x under %x, want %s under %s", request.TraceId, request.ParentSpanId, traceID, parentID)
	}
	for _, name := range []string{"invoke_workflow payment_pipeline", "step validate", "step receipt", "execute_tool reserve_funds"} {
		s := spans[name]
		if s == nil {
			t.Errorf("no span %q", name)
			continue
		}
		if hex.EncodeToString(s.TraceId) != traceID {
			t.Errorf("span %q in trace %x, want %s", name, s.TraceId, traceID)
		}
	}
	col.mu.Lock()
	services := col.services
	col.mu.Unlock()
	if len(services) == 0 || services[0] != "e2e-nano" {
		t.Errorf("service.name %q, want e2e-nano", services)
	}
}

// Ensure --metrics-listen serves /metrics without auth on its own
// address while the HTTP transport's /metrics still needs the API key.
func TestE2EMetricsListen(t *testing.T) {
	// Port 0: the server picks the metrics port and logs it.
	srv := launchHTTP(t, append(e2eEnv(), "NANO_VM_MCP_API_KEY=metrics-key"), "--db", filepath.Join(t.TempDir(), "m.db"), "--metrics-listen", "127.0.0.1:0")
	defer srv.stop()
	base := srv.base
	addr, err := srv.logged(`msg="serving metrics"`)
	if err != nil {
		t.Fatal(err)
	}
	get := func(url, key string) (int, string) {
		code, b := getWithKey(t, url, key)
		return code, string(b)
	}
	if code, _ := get(base+"/metrics", ""); code != http.StatusUnauthorized {
		t.Fatalf("transport /metrics without key: %d, want 401", code)
	}
	if code, body := get(base+"/metrics", "metrics-key"); code != http.StatusOK || !strings.Contains(body, "nanovm_audit_chain_length") {
		t.Fatalf("transport /metrics with key: %d", code)
	}
	code, body := get(fmt.Sprintf("http://%s/metrics", addr), "")
	if code != http.StatusOK || !strings.Contains(body, "# TYPE nanovm_sandbox_instantiations_total counter") {
		t.Fatalf("--metrics-listen /metrics: %d\n%.500s", code, body)
	}
}
