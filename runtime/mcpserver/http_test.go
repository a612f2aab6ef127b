package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/tools"
)

const testKey = "test-api-key-0123456789"

// httpServer serves s's HTTP transports with an API key.
func httpServer(t *testing.T, s *Server, opts HTTPOptions) *httptest.Server {
	t.Helper()
	hs := httptest.NewServer(s.HTTPHandler(opts))
	t.Cleanup(func() {
		_ = s.Shutdown(context.Background())
		hs.Close()
	})
	return hs
}

// httpTransports are the HTTP transports httpClient opens: Streamable
// HTTP in both protocol eras, and legacy SSE.
var httpTransports = []string{"streamable", "streamable 2025-11-25", "sse"}

// httpClient is a client of hs over the named one of httpTransports,
// with the test API key; not yet started.
func httpClient(t *testing.T, hs *httptest.Server, name string) *client.Client {
	t.Helper()
	auth := map[string]string{"Authorization": "Bearer " + testKey}
	var c *client.Client
	var err error
	switch name {
	case "streamable":
		c, err = client.NewStreamableHttpClient(hs.URL+"/mcp", transport.WithHTTPHeaders(auth))
	case "streamable 2025-11-25":
		var tr *transport.StreamableHTTP
		if tr, err = transport.NewStreamableHTTP(hs.URL+"/mcp", transport.WithHTTPHeaders(auth)); err == nil {
			c = client.NewClient(tr, client.WithLegacyProtocolOnly())
		}
	case "sse":
		c, err = client.NewSSEMCPClient(hs.URL+"/sse", transport.WithHeaders(auth))
	default:
		t.Fatalf("no HTTP transport %q", name)
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// paymentOverClient runs the payment pipeline through c and checks the
// structured result, then reads its trace.
func paymentOverClient(t *testing.T, s *Server, c *client.Client) {
	t.Helper()
	run := ok(t, s, "run_program", call(t, c, "run_program", map[string]any{
		"program": string(readExample(t, "program.json")), "input": paymentInput(),
	}))
	if run["status"] != "success" || run["steps"] != float64(4) {
		t.Fatalf("run_program: %v", run)
	}
	tr := ok(t, s, "get_trace", call(t, c, "get_trace", map[string]any{"trace_id": run["trace_id"]}))
	if tr["total_steps"] != float64(4) {
		t.Fatalf("get_trace: %v", tr)
	}
}

// Ensure the payment pipeline runs over Streamable HTTP (both protocol
// eras) and legacy SSE, with the bearer token, and progress reaches the
// Streamable HTTP client.
func TestHTTPTransports(t *testing.T) {
	s := newServer(t, nil)
	hs := httpServer(t, s, HTTPOptions{APIKey: testKey})
	for _, name := range httpTransports {
		t.Run(name, func(t *testing.T) {
			c := httpClient(t, hs, name)
			n := start(t, c)
			paymentOverClient(t, s, c)
			if name == "sse" {
				return
			}
			res := callCtx(t, context.Background(), c, "run_program", map[string]any{
				"program": string(readExample(t, "program.json")), "input": paymentInput(),
			}, "http-progress")
			ok(t, s, "run_program", res)
			// Notifications on a Streamable HTTP response stream arrive
			// before the response they belong to.
			if got := len(n.progress()); got != 4 {
				t.Fatalf("%d progress notifications, want 4", got)
			}
		})
	}
}

// Ensure the HTTP guards: /health needs nothing, a missing or wrong token
// is 401 with a JSON body, a foreign Origin or Host is 403, an oversized
// body is 413, malformed JSON-RPC is a parse error, and the server keeps
// serving after each.
func TestHTTPGuards(t *testing.T) {
	s := newServer(t, nil)
	hs := httpServer(t, s, HTTPOptions{APIKey: testKey, MaxBodyBytes: 1 << 20, AllowedHosts: []string{"mcp.example.com"}, AllowedOrigins: []string{"https://app.example.com"}})
	initBody := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		bodyBytes  int
		header     map[string]string
		host       string
		wantStatus int
		wantBody   string
	}{
		{name: "health without auth", method: "GET", path: "/health", wantStatus: 200, wantBody: `{"status":"ok"}`},
		{name: "health with a foreign host", method: "GET", path: "/health", host: "evil.example", wantStatus: 200, wantBody: `"ok"`},
		{name: "missing token", method: "POST", path: "/mcp", body: initBody, wantStatus: 401, wantBody: `{"error":"unauthorized"}`},
		{name: "wrong token", method: "POST", path: "/mcp", body: initBody, header: map[string]string{"Authorization": "Bearer nope"}, wantStatus: 401, wantBody: `{"error":"unauthorized"}`},
		{name: "wrong scheme", method: "POST", path: "/mcp", body: initBody, header: map[string]string{"Authorization": "Basic " + testKey}, wantStatus: 401, wantBody: "unauthorized"},
		{name: "sse without token", method: "GET", path: "/sse", wantStatus: 401, wantBody: "unauthorized"},
		{name: "messages without token", method: "POST", path: "/messages?sessionId=x", body: initBody, wantStatus: 401, wantBody: "unauthorized"},
		{name: "good token", method: "POST", path: "/mcp", body: initBody, header: map[string]string{"Authorization": "Bearer " + testKey}, wantStatus: 200, wantBody: `"protocolVersion"`},
		{name: "foreign origin", method: "POST", path: "/mcp", body: initBody, header: map[string]string{"Authorization": "Bearer " + testKey, "Origin": "https://evil.example"}, wantStatus: 403, wantBody: "forbidden_origin"},
		{name: "null origin", method: "POST", path: "/mcp", body: initBody, header: map[string]string{"Authorization": "Bearer " + testKey, "Origin": "null"}, wantStatus: 403, wantBody: "forbidden_origin"},
		{name: "allowed origin", method: "POST", path: "/mcp", body: initBody, header: map[string]string{"Authorization": "Bearer " + testKey, "Origin": "https://app.example.com"}, wantStatus: 200, wantBody: "protocolVersion"},
		{name: "loopback origin", method: "POST", path: "/mcp", body: initBody, header: map[string]string{"Authorization": "Bearer " + testKey, "Origin": "http://localhost:6274"}, wantStatus: 200, wantBody: "protocolVersion"},
		{name: "foreign host", method: "POST", path: "/mcp", body: initBody, host: "evil.example", header: map[string]string{"Authorization": "Bearer " + testKey}, wantStatus: 403, wantBody: "forbidden_host"},
		{name: "allowed host", method: "POST", path: "/mcp", body: initBody, host: "mcp.example.com:443", header: map[string]string{"Authorization": "Bearer " + testKey}, wantStatus: 200, wantBody: "protocolVersion"},
		{name: "10 MB body", method: "POST", path: "/mcp", bodyBytes: 10 << 20, header: map[string]string{"Authorization": "Bearer " + testKey}, wantStatus: 413, wantBody: "request_too_large"},
		{name: "malformed JSON-RPC", method: "POST", path: "/mcp", body: `{"jsonrpc":"2.0","id":1,"method":`, header: map[string]string{"Authorization": "Bearer " + testKey}, wantStatus: 400, wantBody: "-32700"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tt.body)
			if tt.bodyBytes > 0 {
				body = bytes.NewReader(bytes.Repeat([]byte("a"), tt.bodyBytes))
			}
			req, err := http.NewRequest(tt.method, hs.URL+tt.path, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			if tt.host != "" {
				req.Host = tt.host
			}
			resp, err := hs.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(got), tt.wantBody) {
				t.Fatalf("status %d body %s; want %d containing %s", resp.StatusCode, got, tt.wantStatus, tt.wantBody)
			}
			if resp.StatusCode == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
			if resp.StatusCode >= 400 && !json.Valid(bytes.TrimSpace(got)) {
				t.Fatalf("error body is not JSON: %s", got)
			}
		})
	}
	// Still serving after all of the above.
	c := httpClient(t, hs, "streamable")
	start(t, c)
	if _, err := c.ListTools(context.Background(), mcp.ListToolsRequest{}); err != nil {
		t.Fatalf("server stopped serving: %v", err)
	}
}

// Ensure a chunked body without Content-Length over the cap is a 413 too.
func TestHTTPChunkedBodyCap(t *testing.T) {
	s := newServer(t, nil)
	hs := httpServer(t, s, HTTPOptions{MaxBodyBytes: 1024})
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write(bytes.Repeat([]byte(" "), 4096))
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", hs.URL+"/mcp", pr)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

// Ensure IsLoopback tells loopback binds from the ones every interface
// sees.
func TestIsLoopback(t *testing.T) {
	tests := []struct {
		name string
		addr string
		want bool
	}{
		{name: "localhost with port", addr: "localhost:8000", want: true},
		{name: "ipv4 loopback", addr: "127.0.0.1:8000", want: true},
		{name: "other ipv4 loopback", addr: "127.0.0.2", want: true},
		{name: "ipv6 loopback", addr: "[::1]:8000", want: true},
		{name: "bare ipv6 loopback", addr: "::1", want: true},
		{name: "all interfaces", addr: "0.0.0.0:8000", want: false},
		{name: "empty host", addr: ":8000", want: false},
		{name: "ipv6 any", addr: "[::]:8000", want: false},
		{name: "a name", addr: "example.com:8000", want: false},
		{name: "lan address", addr: "192.168.1.5:8000", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsLoopback(tt.addr); got != tt.want {
				t.Fatalf("IsLoopback(%q) = %v", tt.addr, got)
			}
		})
	}
}

// Ensure one HTTP session cannot hold every call in flight from another:
// with two in flight and one a session, session A keeps one endless loop
// running and a second queued behind it, and session B's run still gets
// the other call at once (without the share B's call waited for A's and
// failed at its 2 s timeout). A stateless server gets no shares: its
// requests name their sessions themselves.
func TestHTTPSessionShareOfCalls(t *testing.T) {
	ctx := context.Background()
	s := newServerConfig(t, runtime.Config{Ceilings: tools.Ceilings{CallsInFlight: 2, CallsInFlightPerSession: 1}}, nil)
	loop := testTool(t, "loop")
	man := bytes.Replace(loop.Manifest, []byte(`"isolation"`), []byte(`"limits": {"timeout_ms": 15000}, "isolation"`), 1)
	if _, err := s.rt.RegisterToolLocal(ctx, man, loop.Wasm); err != nil {
		t.Fatal(err)
	}
	hs := httpServer(t, s, HTTPOptions{APIKey: testKey})
	a, b := httpClient(t, hs, "streamable 2025-11-25"), httpClient(t, hs, "sse")
	start(t, a)
	start(t, b)
	hogCtx, stopHog := context.WithCancel(ctx)
	defer stopHog()
	hogs := make(chan any, 2)
	for range 2 {
		go func() {
			res, err := a.CallTool(hogCtx, mcp.CallToolRequest{Params: mcp.CallToolParams{Name: "run_program",
				Arguments: map[string]any{"program": `{"steps":[{"id":"spin","type":"tool","tool":"loop"}]}`}}})
			if err != nil {
				hogs <- err
				return
			}
			hogs <- res.Content
		}()
	}
	waits := func(name string) float64 {
		_, mfs := scrape(t, hs.URL+"/metrics", testKey)
		return sample(t, mfs, name, nil).GetCounter().GetValue()
	}
	for waits("nanovm_sandbox_session_call_waits_total") == 0 {
		select {
		case err := <-hogs:
			t.Fatalf("a run of session A ended before the second queued: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	run := ok(t, s, "run_program", call(t, b, "run_program", map[string]any{
		"program": `{"steps":[{"id":"p","type":"tool","tool":"poll","timeout_seconds":2,"args":{"status":"SUCCESS"}}]}`,
	}))
	if run["status"] != "success" {
		t.Fatalf("session B's run while session A holds its share: %v", run)
	}
	if w := waits("nanovm_sandbox_call_waits_total"); w != 0 {
		t.Errorf("%v calls waited for the server's calls in flight", w)
	}
	stopHog()
	a.Close() // ends the session, and with it its runs
	for range 2 {
		<-hogs
	}
}

// Ensure a stateless server gives no session shares: there a request's
// Mcp-Session-Id is whatever the client sent, so two requests naming the
// same id (or another client's) must not queue behind each other.
func TestHTTPStatelessNoSessionShare(t *testing.T) {
	ctx := context.Background()
	s := newServerConfig(t, runtime.Config{Ceilings: tools.Ceilings{CallsInFlight: 2, CallsInFlightPerSession: 1}}, nil)
	loop := testTool(t, "loop")
	man := bytes.Replace(loop.Manifest, []byte(`"isolation"`), []byte(`"limits": {"timeout_ms": 1500}, "isolation"`), 1)
	if _, err := s.rt.RegisterToolLocal(ctx, man, loop.Wasm); err != nil {
		t.Fatal(err)
	}
	hs := httpServer(t, s, HTTPOptions{APIKey: testKey, Stateless: true})
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run_program","arguments":{"program":"{\"steps\":[{\"id\":\"spin\",\"type\":\"tool\",\"tool\":\"loop\"}]}"}}}`
	done := make(chan string, 2)
	for range 2 {
		go func() {
			req, _ := http.NewRequest(http.MethodPost, hs.URL+"/mcp", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+testKey)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			req.Header.Set("Mcp-Session-Id", "mcp-session-chosen-by-the-client")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			done <- string(b)
		}()
	}
	for range 2 {
		if out := <-done; !strings.Contains(out, "timed out after 1.5s") {
			t.Fatalf("a stateless run of an endless loop: %s", out)
		}
	}
	_, mfs := scrape(t, hs.URL+"/metrics", testKey)
	if w := sample(t, mfs, "nanovm_sandbox_session_call_waits_total", nil).GetCounter().GetValue(); w != 0 {
		t.Fatalf("%v calls waited for a session share on a stateless server", w)
	}
}
