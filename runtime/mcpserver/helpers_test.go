package mcpserver

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/runtime/llm"
	"github.com/nanovm/nano-vm-mcp/runtime/runtimetest"
	wasmtools "github.com/nanovm/nano-vm-mcp/wasm-tools"
)

func TestMain(m *testing.M) { os.Exit(runtimetest.Main(m)) }

func quietLogger() *slog.Logger { return runtimetest.Logger() }

func openRuntime(tb testing.TB, cfg runtime.Config) *runtime.Runtime {
	tb.Helper()
	return runtimetest.Open(tb, cfg)
}

// writePolicy writes yaml as a policy file in a fresh temp dir and
// returns its path.
func writePolicy(tb testing.TB, yaml string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// newServerLLM is newServer with a mock model that answers "yes".
func newServerLLM(tb testing.TB) *Server {
	tb.Helper()
	model, err := llm.New("mock/yes", nil)
	if err != nil {
		tb.Fatal(err)
	}
	return newServerConfig(tb, runtime.Config{LLM: model, LLMModel: "mock/yes"}, nil)
}

// newServer opens a runtime and a Server over it.
func newServer(tb testing.TB, opts *Options) *Server {
	tb.Helper()
	return newServerConfig(tb, runtime.Config{}, opts)
}

func newServerConfig(tb testing.TB, cfg runtime.Config, opts *Options) *Server {
	tb.Helper()
	rt := openRuntime(tb, cfg)
	if opts == nil {
		opts = DefaultOptions()
	}
	opts.Logger = quietLogger()
	s := New(rt, opts)
	tb.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return s
}

// notes collects the notifications a client receives.
type notes struct {
	mu  sync.Mutex
	all []mcp.JSONRPCNotification
}

func (n *notes) add(x mcp.JSONRPCNotification) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.all = append(n.all, x)
}

func (n *notes) progress() []map[string]any {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []map[string]any
	for _, x := range n.all {
		if x.Method == string(mcp.MethodNotificationProgress) {
			out = append(out, x.Params.AdditionalFields)
		}
	}
	return out
}

// progressN waits until n progress notifications arrived, or 10 s passed,
// and returns those there are. mcp-go's in-process client delivers
// notifications on a goroutine of its own, unordered with the answer (the
// transports that matter are ordered: TestProgressArrivesOnEveryTransport),
// so an in-process test waits for them rather than racing them.
func (ns *notes) progressN(n int) []map[string]any {
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := ns.progress()
		if len(p) >= n || time.Now().After(deadline) {
			return p
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// start initializes c, recording its notifications.
func start(tb testing.TB, c *client.Client) *notes {
	tb.Helper()
	n := &notes{}
	c.OnNotification(n.add)
	tb.Cleanup(func() { _ = c.Close() })
	initialize(tb, context.Background(), c)
	return n
}

// initialize starts c and sends initialize, failing tb if either fails.
func initialize(tb testing.TB, ctx context.Context, c *client.Client) {
	tb.Helper()
	if err := c.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	var init mcp.InitializeRequest
	init.Params.ClientInfo = mcp.Implementation{Name: "mcpserver-test", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		tb.Fatal(err)
	}
}

// inProcess returns an initialized in-process client of s.
func inProcess(tb testing.TB, s *Server, opts ...client.ClientOption) (*client.Client, *notes) {
	tb.Helper()
	c, err := client.NewInProcessClientWithOptions(s.MCP(), opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return c, start(tb, c)
}

// call calls a tool and returns the result; a protocol error fails the
// test.
func call(tb testing.TB, c *client.Client, name string, args any) *mcp.CallToolResult {
	tb.Helper()
	return callCtx(tb, context.Background(), c, name, args, nil)
}

// callCtx is call within ctx, asking for progress under progressToken
// unless it is nil.
func callCtx(tb testing.TB, ctx context.Context, c *client.Client, name string, args any, progressToken mcp.ProgressToken) *mcp.CallToolResult {
	tb.Helper()
	var meta *mcp.Meta
	if progressToken != nil {
		meta = &mcp.Meta{ProgressToken: progressToken}
	}
	return callWithMeta(tb, ctx, c, name, args, meta)
}

// callWithMeta calls a tool with the request's _meta (none when nil); a
// protocol error fails the test.
func callWithMeta(tb testing.TB, ctx context.Context, c *client.Client, name string, args any, meta *mcp.Meta) *mcp.CallToolResult {
	tb.Helper()
	var req mcp.CallToolRequest
	req.Params.Name = name
	req.Params.Arguments = args
	req.Params.Meta = meta
	res, err := c.CallTool(ctx, req)
	if err != nil {
		tb.Fatalf("call %s: %v", name, err)
	}
	return res
}

// unknownToolRefused checks that a call of the tool name, which does not
// exist, is a protocol error saying so, and that c's server goes on
// serving after it.
func unknownToolRefused(tb testing.TB, c *client.Client, name string) {
	tb.Helper()
	var req mcp.CallToolRequest
	req.Params.Name = name
	if _, err := c.CallTool(context.Background(), req); err == nil || !strings.Contains(err.Error(), "not found") {
		tb.Fatalf("unknown tool: %v", err)
	}
	if _, err := c.ListTools(context.Background(), mcp.ListToolsRequest{}); err != nil {
		tb.Fatalf("the server stopped serving: %v", err)
	}
}

// text is a result's text content.
func text(tb testing.TB, res *mcp.CallToolResult) string {
	tb.Helper()
	if len(res.Content) != 1 {
		tb.Fatalf("want one content item, got %d", len(res.Content))
	}
	tc, ok := res.Content[0].(mcp.TextContent)
	if !ok {
		tb.Fatalf("content is %T, not text", res.Content[0])
	}
	return tc.Text
}

// ok checks a successful result: structured content equal to the text
// JSON and valid against the tool's output schema. It returns the
// structured content.
func ok(tb testing.TB, s *Server, name string, res *mcp.CallToolResult) map[string]any {
	tb.Helper()
	body := text(tb, res)
	if res.IsError {
		tb.Fatalf("%s: unexpected tool error: %s", name, body)
	}
	var fromText map[string]any
	if err := json.Unmarshal([]byte(body), &fromText); err != nil {
		tb.Fatalf("%s: text is not a JSON object: %v\n%s", name, err, body)
	}
	structured, isMap := res.StructuredContent.(map[string]any)
	if !isMap {
		tb.Fatalf("%s: structured content is %T", name, res.StructuredContent)
	}
	a, _ := json.Marshal(structured)
	b, _ := json.Marshal(fromText)
	if string(a) != string(b) {
		tb.Fatalf("%s: structured content and text differ:\n%s\n%s", name, a, b)
	}
	validateOutput(tb, s, name, structured)
	return structured
}

// toolErr checks a tool error and returns its JSON body.
func toolErr(tb testing.TB, name string, res *mcp.CallToolResult) map[string]any {
	tb.Helper()
	body := text(tb, res)
	if !res.IsError {
		tb.Fatalf("%s: want a tool error, got %s", name, body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		tb.Fatalf("%s: error text is not JSON: %v\n%s", name, err, body)
	}
	if m["error"] == nil || m["message"] == nil {
		tb.Fatalf("%s: error body lacks error or message: %s", name, body)
	}
	return m
}

var (
	schemaMu    sync.Mutex
	schemaCache = map[string]*jsonschema.Schema{}
)

// validateOutput checks v against the output schema tool name declares.
func validateOutput(tb testing.TB, s *Server, name string, v any) {
	tb.Helper()
	schemaMu.Lock()
	sch, found := schemaCache[name]
	if !found {
		for _, d := range s.defs {
			if d.name != name {
				continue
			}
			raw, _ := json.Marshal(d.output)
			doc, err := jsonschema.UnmarshalJSON(strings.NewReader(string(raw)))
			if err != nil {
				schemaMu.Unlock()
				tb.Fatal(err)
			}
			c := jsonschema.NewCompiler()
			url := "mem://" + name + ".json"
			if err := c.AddResource(url, doc); err != nil {
				schemaMu.Unlock()
				tb.Fatal(err)
			}
			if sch, err = c.Compile(url); err != nil {
				schemaMu.Unlock()
				tb.Fatalf("%s: output schema: %v", name, err)
			}
			schemaCache[name] = sch
		}
	}
	schemaMu.Unlock()
	if sch == nil {
		tb.Fatalf("no tool %s", name)
	}
	// Round-trip so numbers are what the validator expects.
	raw, _ := json.Marshal(v)
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(string(raw)))
	if err != nil {
		tb.Fatal(err)
	}
	if err := sch.Validate(inst); err != nil {
		tb.Fatalf("%s: result does not match its output schema: %v\n%s", name, err, raw)
	}
}

// testTool returns a module from wasmtools.TestTools.
func testTool(tb testing.TB, name string) wasmtools.Module {
	tb.Helper()
	return runtimetest.TestTool(tb, name)
}

func readExample(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "payment_pipeline", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func paymentInput() map[string]any {
	return map[string]any{"amount": 125.5, "order_id": "order-abc-123"}
}

// suspendingProgram waits in poll until resumed with a payment status.
const suspendingProgram = `{"name":"momo","steps":[
	{"id":"create","type":"tool","tool":"reserve_funds","args":{"order_id":"$order_id","amount":1},"output_key":"create_result"},
	{"id":"poll","type":"tool","tool":"poll","output_key":"poll_result"},
	{"id":"check","type":"condition","condition":"$__webhook__.payment_status == 'SUCCESS'","then":"ok","otherwise":"pending"},
	{"id":"ok","type":"tool","tool":"send_receipt","args":{"order_id":"$order_id"},"is_terminal":true},
	{"id":"pending","type":"tool","tool":"audit_log","is_terminal":true}]}`
