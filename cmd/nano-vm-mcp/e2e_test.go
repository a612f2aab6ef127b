package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	wasmtools "github.com/nanovm/nano-vm-mcp/wasm-tools"
)

// The end-to-end tests start the built binary and speak MCP to it with
// mcp-go's client: over a real pipe (stdio) and a real socket (Streamable
// HTTP and the legacy SSE pair).

func e2eEnv() []string {
	return append(os.Environ(),
		"NANO_VM_MCP_VAULT_KEY="+hex.EncodeToString(testVaultKey),
		"NANO_VM_MCP_CACHE_DIR="+sharedCache,
		"NANO_VM_MCP_TOOLS_DIR="+e2eToolsDir(),
		"NANO_VM_MCP_LOG_LEVEL=warn")
}

var (
	toolsDirOnce sync.Once
	toolsDir     string
)

// e2eToolsDir is a tools folder holding secret_echo: a tool that resolves
// secrets is the operator's to install; an upload may not.
func e2eToolsDir() string {
	toolsDirOnce.Do(func() {
		toolsDir = filepath.Join(filepath.Dir(sharedCache), "e2e-tools")
		m, err := findModule(wasmtools.TestTools, "test module", "secret_echo")
		if err == nil {
			err = writeToolDir(filepath.Join(toolsDir, m.Name), m.Manifest, m.Wasm, m.Name+".wasm")
		}
		if err != nil {
			panic(err)
		}
	})
	return toolsDir
}

func initialize(t *testing.T, c *client.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := mcp.InitializeRequest{}
	req.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
	req.Params.ClientInfo = mcp.Implementation{Name: "e2e", Version: "1"}
	if _, err := c.Initialize(ctx, req); err != nil {
		t.Fatalf("initialize: %v", err)
	}
}

// stdioClient starts the binary as a stdio MCP server on db with the
// tests' environment and returns an initialized client.
func stdioClient(t *testing.T, db string) *client.Client {
	t.Helper()
	return stdioClientWith(t, e2eEnv(), "--transport", "stdio", "--db", db)
}

// stdioClientWith starts the binary with env and args and returns an
// initialized client over its stdin and stdout.
func stdioClientWith(t *testing.T, env []string, args ...string) *client.Client {
	t.Helper()
	c, err := client.NewStdioMCPClient(binary, env, args...)
	if err != nil {
		t.Fatal(err)
	}
	initialize(t, c)
	return c
}

// rawCall calls a tool within timeout and returns whether it answered
// with a tool error and the text of its answer; err is a transport
// failure.
func rawCall(c *client.Client, name string, args map[string]any, timeout time.Duration) (isError bool, text string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = args
	res, err := c.CallTool(ctx, req)
	if err != nil {
		return false, "", err
	}
	for _, ct := range res.Content {
		if tc, ok := ct.(mcp.TextContent); ok {
			text += tc.Text
		}
	}
	return res.IsError, text, nil
}

// answer is a tool's answer: whether it was a tool error, its text, and
// the text decoded as a JSON object (obj nil and decodeErr set when it is
// not one).
type answer struct {
	isError   bool
	text      string
	obj       map[string]any
	decodeErr error
}

// callObject calls a tool within timeout and decodes its answer; err is a
// transport failure.
func callObject(c *client.Client, name string, args map[string]any, timeout time.Duration) (answer, error) {
	isError, text, err := rawCall(c, name, args, timeout)
	if err != nil {
		return answer{}, err
	}
	a := answer{isError: isError, text: text}
	if err := json.Unmarshal([]byte(text), &a.obj); err != nil {
		a.obj, a.decodeErr = nil, fmt.Errorf("%s: %w: %.300s", name, err, text)
	}
	return a, nil
}

// callTool calls a tool and decodes its structured result; isError fails
// the test unless wantErr.
func callTool(t *testing.T, c *client.Client, name string, args map[string]any, wantErr bool) map[string]any {
	t.Helper()
	a, err := callObject(c, name, args, time.Minute)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if a.isError != wantErr {
		t.Fatalf("%s: isError=%v: %s", name, a.isError, a.text)
	}
	if a.decodeErr != nil {
		t.Fatal(a.decodeErr)
	}
	return a.obj
}

// getWithKey GETs url with the bearer token key ("" for none) and
// returns the status and the body.
func getWithKey(t *testing.T, url, key string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, b
}

// runPaymentMCP calls run_program with the payment_pipeline example and
// an input it accepts, and returns the tool's answer.
func runPaymentMCP(t *testing.T, c *client.Client) map[string]any {
	t.Helper()
	return callTool(t, c, "run_program", map[string]any{
		"program": readFile(t, example("payment_pipeline", "program.json")),
		"input":   map[string]any{"amount": 125.5, "order_id": "order-abc-123"},
	}, false)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// workflow is the acceptance path over any transport: register a tool, run
// the payment pipeline, read its trace, verify the audit, put and erase a
// secret, and leave a run suspended; it returns the suspended trace id.
func workflow(t *testing.T, c *client.Client) string {
	t.Helper()
	mods, err := wasmtools.TestTools()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mods {
		switch m.Name {
		case "secret_echo":
			// The operator's secret_echo (the tools folder): an upload may
			// not replace it.
			reg := callTool(t, c, "register_tool", uploadOf("secret_echo", m.Wasm, string(m.Manifest)), true)
			if reg["error"] != "capability_denied" || !strings.Contains(fmt.Sprint(reg), "operator tool") {
				t.Fatalf("register_tool over an operator tool: %v", reg)
			}
		case "log_levels":
			reg := callTool(t, c, "register_tool", uploadOf("log_levels", m.Wasm, string(m.Manifest)), false)
			if reg["source"] != "upload" || !strings.Contains(fmt.Sprint(reg), "log_levels") {
				t.Fatalf("register_tool: %v", reg)
			}
		}
	}
	run := runPaymentMCP(t, c)
	if run["status"] != "success" || run["steps"] != float64(4) {
		t.Fatalf("run_program: %v", run)
	}
	tr := callTool(t, c, "get_trace", map[string]any{"trace_id": run["trace_id"], "limit": 2}, false)
	if steps, _ := tr["steps"].([]any); len(steps) != 2 {
		t.Fatalf("get_trace: %v", tr)
	}
	if v := callTool(t, c, "verify_audit", map[string]any{}, false); v["ok"] != true {
		t.Fatalf("verify_audit: %v", v)
	}
	ref := callTool(t, c, "put_secret", map[string]any{"id": "card-4242", "value": "4242424242424242"}, false)
	echo := callTool(t, c, "run_program", map[string]any{
		"program": `{"steps":[{"id":"use","type":"tool","tool":"secret_echo","args":{"ref":"$card"}}]}`,
		"input":   map[string]any{"card": ref["ref"]},
	}, false)
	if echo["status"] != "success" || strings.Contains(fmt.Sprint(echo), "4242424242424242") {
		t.Fatalf("secret run: %v", echo)
	}
	callTool(t, c, "erase_secret", map[string]any{"id": "card-4242"}, false)
	if v := callTool(t, c, "verify_audit", map[string]any{}, false); v["ok"] != true {
		t.Fatalf("verify_audit after erase: %v", v)
	}
	bad := callTool(t, c, "run_program", map[string]any{"program": `{"steps":[{"id":"a","type":"teleport"}]}`}, true)
	if bad["error"] != "invalid_program" {
		t.Fatalf("invalid program: %v", bad)
	}
	susp := callTool(t, c, "run_program", map[string]any{
		"program": readFile(t, example("momo_suspend", "program.json")),
		"input":   map[string]any{"amount": 50000, "order_id": "momo-1"},
	}, false)
	if susp["status"] != "suspended" {
		t.Fatalf("momo: %v", susp)
	}
	return susp["trace_id"].(string)
}

func resumeAfterRestart(t *testing.T, c *client.Client, trace string) {
	t.Helper()
	done := callTool(t, c, "resume_program", map[string]any{"trace_id": trace, "payload": map[string]any{"payment_status": "SUCCESS"}, "source": "WEBHOOK"}, false)
	if done["status"] != "success" || done["trace_id"] != trace {
		t.Fatalf("resume after restart: %v", done)
	}
	if v := callTool(t, c, "verify_audit", map[string]any{}, false); v["ok"] != true {
		t.Fatalf("verify_audit: %v", v)
	}
}

// Ensure the binary serves the whole workflow over stdio, and a run
// suspended before a restart resumes after it.
func TestE2EStdio(t *testing.T) {
	db := filepath.Join(t.TempDir(), "e2e.db")
	c := stdioClient(t, db)
	trace := workflow(t, c)
	c.Close()
	c = stdioClient(t, db)
	defer c.Close()
	resumeAfterRestart(t, c, trace)
}

// startHTTP starts the binary serving HTTP on a free loopback port and
// returns its base URL and a stop function.
func startHTTP(t *testing.T, db, apiKey string, extra ...string) (string, func()) {
	t.Helper()
	base, _, stop := startHTTPCmd(t, db, apiKey, extra...)
	return base, stop
}

// waitHealthy polls base/health until it answers 200, or fails with the
// last error after within.
func waitHealthy(base string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("/health answered %s", resp.Status)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startHTTPCmd is startHTTP also returning the server's process.
func startHTTPCmd(t *testing.T, db, apiKey string, extra ...string) (string, *exec.Cmd, func()) {
	t.Helper()
	srv := launchHTTP(t, append(e2eEnv(), "NANO_VM_MCP_API_KEY="+apiKey), append([]string{"--db", db}, extra...)...)
	return srv.base, srv.cmd, func() {
		if err := srv.stop(); err != nil {
			t.Errorf("server exit after SIGINT: %v", err)
		}
	}
}

// httpServer is a started `nano-vm-mcp --transport http` process.
type httpServer struct {
	base string // http://127.0.0.1:PORT
	cmd  *exec.Cmd
	log  *syncBuffer // its stderr
}

// launchHTTP starts the binary serving HTTP on loopback, with env and
// args (its database among them), and waits for /health. The server
// picks its port (--port 0) and the test reads it from the log, so no
// other process can take the port between the two. It logs at info
// unless args say otherwise.
func launchHTTP(t *testing.T, env []string, args ...string) *httpServer {
	t.Helper()
	args = append([]string{"--transport", "http", "--host", "127.0.0.1", "--port", "0", "--log-level", "info"}, args...)
	srv := &httpServer{cmd: exec.Command(binary, args...), log: &syncBuffer{}}
	srv.cmd.Env, srv.cmd.Stderr = env, srv.log
	if err := srv.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr, err := srv.logged(`msg="serving MCP over HTTP"`)
	if err == nil {
		srv.base = "http://" + addr
		err = waitHealthy(srv.base, 30*time.Second)
	}
	if err != nil {
		srv.cmd.Process.Kill()
		srv.cmd.Wait()
		t.Fatalf("server did not come up: %v\nstderr:\n%s", err, srv.log)
	}
	return srv
}

// logged waits for the log line holding msg and returns its addr=.
func (s *httpServer) logged(msg string) (string, error) {
	if !s.log.waitFor(msg) {
		return "", fmt.Errorf("no %s in the log", msg)
	}
	for line := range strings.Lines(s.log.String()) {
		if !strings.Contains(line, msg) {
			continue
		}
		if _, rest, ok := strings.Cut(line, " addr="); ok {
			return strings.Fields(rest)[0], nil
		}
	}
	return "", fmt.Errorf("%s without addr= in the log", msg)
}

// stop interrupts the server and waits for it (20 s, then it is killed);
// it returns how the process ended.
func (s *httpServer) stop() error {
	s.cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-done
		return errors.New("the server did not stop on SIGINT")
	}
}

// Ensure the binary serves the workflow over Streamable HTTP and SSE with a
// bearer token, refuses a wrong one, and resumes across a restart.
func TestE2EHTTP(t *testing.T) {
	const key = "e2e-token"
	db := filepath.Join(t.TempDir(), "http.db")
	base, stop := startHTTP(t, db, key)

	resp, err := http.Post(base+"/mcp", "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %d", resp.StatusCode)
	}

	auth := map[string]string{"Authorization": "Bearer " + key}
	c := authedClient(t, base, key)
	trace := workflow(t, c)
	c.Close()

	sse, err := client.NewSSEMCPClient(base+"/sse", transport.WithHeaders(auth))
	if err != nil {
		t.Fatal(err)
	}
	if err := sse.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	initialize(t, sse)
	if l := callTool(t, sse, "list_traces", map[string]any{"limit": 10}, false); fmt.Sprint(l) == "" {
		t.Fatal("list_traces over SSE")
	}
	sse.Close()
	stop()

	base, stop = startHTTP(t, db, key)
	defer stop()
	c = authedClient(t, base, key)
	resumeAfterRestart(t, c, trace)
}

// Ensure the original's refund example runs end to end over MCP with the
// mock provider configured the way a user configures a real one.
func TestE2ERefundOverMCP(t *testing.T) {
	env := append(e2eEnv(), "NANO_VM_MCP_LLM_MODEL=mock/map:broken=yes;default=no")
	c := stdioClientWith(t, env, "--db", filepath.Join(t.TempDir(), "refund.db"))
	defer c.Close()
	prog := readFile(t, example("customer_refund", "program.json"))
	for input, last := range map[string]string{"my toaster arrived broken": "process_refund", "where is my parcel?": "reject"} {
		run := callTool(t, c, "run_program", map[string]any{"program": prog, "input": map[string]any{"user_input": input}}, false)
		if run["status"] != "success" {
			t.Fatalf("%q: %v", input, run)
		}
		tr := callTool(t, c, "get_trace", map[string]any{"trace_id": run["trace_id"]}, false)
		steps := tr["steps"].([]any)
		if got := steps[len(steps)-1].(map[string]any)["step_id"]; got != last {
			t.Fatalf("%q ended at %v, want %s", input, got, last)
		}
	}
}
