package mcpserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/nanovm/nano-vm-mcp/runtime"
)

// listChanges returns a channel that receives every
// notifications/tools/list_changed c gets from now on.
func listChanges(c *client.Client) <-chan struct{} {
	ch := make(chan struct{}, 64)
	c.OnNotification(func(n mcp.JSONRPCNotification) {
		if n.Method == string(mcp.MethodNotificationToolsListChanged) {
			ch <- struct{}{}
		}
	})
	return ch
}

// awaitListChanged waits for one list_changed; it fails only when none
// comes at all (the bound is there so a broken server fails the test
// rather than hanging it).
func awaitListChanged(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("no notifications/tools/list_changed after %s", what)
	}
}

// toolsByName lists c's tools.
func toolsByName(t *testing.T, c *client.Client) map[string]mcp.Tool {
	t.Helper()
	res, err := c.ListTools(context.Background(), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]mcp.Tool{}
	for _, tl := range res.Tools {
		out[tl.Name] = tl
	}
	return out
}

// callMeta calls a tool with _meta fields.
func callMeta(t *testing.T, c *client.Client, name string, args any, meta map[string]any) *mcp.CallToolResult {
	t.Helper()
	var m *mcp.Meta
	if meta != nil {
		m = &mcp.Meta{AdditionalFields: meta}
	}
	return callWithMeta(t, context.Background(), c, name, args, m)
}

// direct checks a registered tool's successful result: structured
// content equal to its text, an object with trace_id, and the trace_id
// in _meta too.
func direct(t *testing.T, res *mcp.CallToolResult) map[string]any {
	t.Helper()
	body := text(t, res)
	if res.IsError {
		t.Fatalf("unexpected tool error: %s", body)
	}
	structured, isMap := res.StructuredContent.(map[string]any)
	if !isMap {
		t.Fatalf("structured content is %T", res.StructuredContent)
	}
	a, _ := json.Marshal(structured)
	var fromText map[string]any
	if err := json.Unmarshal([]byte(body), &fromText); err != nil {
		t.Fatalf("text is not JSON: %v", err)
	}
	b, _ := json.Marshal(fromText)
	if string(a) != string(b) {
		t.Fatalf("structured content and text differ:\n%s\n%s", a, b)
	}
	id, _ := structured["trace_id"].(string)
	if id == "" {
		t.Fatalf("no trace_id: %s", body)
	}
	if res.Meta == nil || res.Meta.AdditionalFields[MetaTraceID] != id {
		t.Fatalf("_meta lacks %s = %s: %+v", MetaTraceID, id, res.Meta)
	}
	return structured
}

func registerUpload(t *testing.T, s *Server, c *client.Client, name string, edit func(map[string]any)) {
	t.Helper()
	ok(t, s, "register_tool", call(t, c, "register_tool", uploadArgs(t, "raw_echo", name, edit)))
}

// Ensure a registered tool is listed under its own name beside the 15
// management tools, with its manifest's description and input schema and
// an object output schema wrapping its output_schema.
func TestExposedToolListed(t *testing.T) {
	s := newServer(t, nil)
	c, _ := inProcess(t, s)
	registerUpload(t, s, c, "echo_schema", func(m map[string]any) {
		m["description"] = strings.Repeat("d", 5000)
		m["output_schema"] = map[string]any{
			"$schema": "https://json-schema.org/draft/2020-12/schema",
			"type":    "array", "items": map[string]any{"$ref": "#/$defs/s"},
			"$defs": map[string]any{"s": map[string]any{"type": "string"}},
		}
	})
	tools := toolsByName(t, c)
	for _, d := range s.defs {
		if _, found := tools[d.name]; !found {
			t.Fatalf("management tool %s not listed", d.name)
		}
	}
	va, found := tools["validate_amount"]
	if !found {
		t.Fatalf("bundled validate_amount not listed: %v", keys(tools))
	}
	if !strings.Contains(va.Description, "positive number") {
		t.Fatalf("description %q", va.Description)
	}
	in := schemaOf(t, va, "inputSchema")
	if in["type"] != "object" || in["properties"].(map[string]any)["amount"] == nil {
		t.Fatalf("input schema %v", in)
	}
	if va.Annotations.ReadOnlyHint == nil || *va.Annotations.ReadOnlyHint || *va.Annotations.IdempotentHint || *va.Annotations.OpenWorldHint {
		t.Fatalf("annotations %+v", va.Annotations)
	}

	es := tools["echo_schema"]
	// The whole listing, as a client receives it, is a golden snapshot
	// (refresh with go test -run TestExposedToolListed -update).
	got, err := json.MarshalIndent(es, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "exposedsnaps", "echo_schema.json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	} else if want, err := os.ReadFile(path); err != nil || string(want) != string(got) {
		t.Fatalf("%s differs (%v); review and rerun with -update.\ngot:\n%s", path, err, got)
	}
	if len(es.Description) >= maxDescription || !strings.Contains(es.Description, "bytes in all") {
		t.Fatalf("description of %d bytes: %.100s…", len(es.Description), es.Description)
	}
	out := schemaOf(t, es, "outputSchema")
	props := out["properties"].(map[string]any)
	raw, _ := json.Marshal(out)
	if out["type"] != "object" || props["trace_id"] == nil || out["$defs"] == nil || props["output"].(map[string]any)["anyOf"] == nil {
		t.Fatalf("output schema %s", raw)
	}
	if strings.Contains(string(raw), "$schema") {
		t.Fatalf("nested $schema kept: %s", raw)
	}
	// The result validates against the listed output schema.
	res := direct(t, call(t, c, "echo_schema", map[string]any{"raw": `["a","b"]`}))
	validateAgainst(t, raw, res)
	if got, _ := json.Marshal(res["output"]); string(got) != `["a","b"]` || res["status"] != "success" {
		t.Fatalf("result %v", res)
	}
}

// schemaOf is a listed tool's schema as the client received it.
func schemaOf(t *testing.T, tl mcp.Tool, field string) map[string]any {
	t.Helper()
	b, err := json.Marshal(tl)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	sch, _ := m[field].(map[string]any)
	if sch == nil {
		t.Fatalf("no %s in %s", field, b)
	}
	return sch
}

func keys(m map[string]mcp.Tool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func validateAgainst(t *testing.T, schema json.RawMessage, v any) {
	t.Helper()
	sum := sha256.Sum256(schema)
	name := "exposed-" + hex.EncodeToString(sum[:8])
	schemaMu.Lock()
	delete(schemaCache, name)
	schemaMu.Unlock()
	var doc map[string]any
	_ = json.Unmarshal(schema, &doc)
	s := &Server{defs: []toolDef{{name: name, output: doc}}}
	validateOutput(t, s, name, v)
}

// Ensure list_changed reaches another client when one registers,
// replaces and removes a tool, and its tools/list follows each change.
func TestExposedListChanged(t *testing.T) {
	s := newServer(t, nil)
	a, _ := inProcess(t, s)
	b, _ := inProcess(t, s)
	changes := listChanges(b)

	registerUpload(t, s, a, "echo_one", nil)
	awaitListChanged(t, changes, "a registration")
	if _, found := toolsByName(t, b)["echo_one"]; !found {
		t.Fatal("echo_one not listed after list_changed")
	}
	registerUpload(t, s, a, "echo_one", func(m map[string]any) { m["description"] = "replaced" })
	awaitListChanged(t, changes, "a replacement")
	if d := toolsByName(t, b)["echo_one"].Description; d != "replaced" {
		t.Fatalf("description after replacement %q", d)
	}
	ok(t, s, "remove_tool", call(t, a, "remove_tool", map[string]any{"name": "echo_one"}))
	awaitListChanged(t, changes, "a removal")
	if _, found := toolsByName(t, b)["echo_one"]; found {
		t.Fatal("echo_one still listed after removal")
	}
}

// Ensure a direct call and the same tool inside a program each leave a
// trace whose envelopes verify_audit accepts, the direct one under the
// program "tool:<name>"; a tool error is an isError result with the
// message and trace_id.
func TestExposedCallAudited(t *testing.T) {
	s := newServer(t, nil)
	c, _ := inProcess(t, s)
	res := direct(t, call(t, c, "validate_amount", map[string]any{"amount": 125.5}))
	id := res["trace_id"].(string)
	if res["status"] != "success" || res["output"] == nil {
		t.Fatalf("direct call %v", res)
	}
	if v := ok(t, s, "verify_audit", call(t, c, "verify_audit", map[string]any{"trace_id": id})); v["ok"] != true {
		t.Fatalf("verify_audit of the direct call: %v", v)
	}
	tr := ok(t, s, "get_trace", call(t, c, "get_trace", map[string]any{"trace_id": id}))
	if tr["program_name"] != "tool:validate_amount" || tr["total_steps"] != float64(1) {
		t.Fatalf("trace %v", tr)
	}
	run := ok(t, s, "run_program", call(t, c, "run_program", map[string]any{
		"program": `{"name":"p","steps":[{"id":"v","type":"tool","tool":"validate_amount","args":{"amount":"$amount"},"is_terminal":true}]}`,
		"input":   map[string]any{"amount": 125.5},
	}))
	if v := ok(t, s, "verify_audit", call(t, c, "verify_audit", map[string]any{"trace_id": run["trace_id"]})); v["ok"] != true {
		t.Fatalf("verify_audit of the program: %v", v)
	}
	a, _ := json.Marshal(run["final_output"])
	b, _ := json.Marshal(res["output"])
	if string(a) != string(b) {
		t.Fatalf("program output %s, direct output %s", a, b)
	}

	bad := toolErr(t, "validate_amount", call(t, c, "validate_amount", map[string]any{"amount": -1}))
	if bad["error"] != "tool_failed" || bad["trace_id"] == nil || bad["status"] != "failed" {
		t.Fatalf("tool error %v", bad)
	}
	if v := ok(t, s, "verify_audit", call(t, c, "verify_audit", map[string]any{"trace_id": bad["trace_id"]})); v["ok"] != true {
		t.Fatalf("verify_audit of the failed call: %v", v)
	}
	// An argument whose value looks like a $reference reaches the tool
	// as it is, and one whose name a reference cannot spell too
	// (audit_log writes its arguments to its log).
	lit := direct(t, call(t, c, "audit_log", map[string]any{"note": "$amount and $a", "amount": 5, "a.b c": "$note"}))
	tr = ok(t, s, "get_trace", call(t, c, "get_trace", map[string]any{"trace_id": lit["trace_id"]}))
	log := tr["steps"].([]any)[0].(map[string]any)["log"].(string)
	for _, want := range []string{`"note":"$amount and $a"`, `"a.b c":"$note"`, `"amount":5`} {
		if !strings.Contains(log, want) {
			t.Fatalf("tool log lacks %s: %s", want, log)
		}
	}
}

// Ensure the idempotency key in _meta makes a direct call run once: a
// repeat returns the stored outcome, the same key with other arguments is
// refused.
func TestExposedIdempotency(t *testing.T) {
	s := newServer(t, nil)
	c, _ := inProcess(t, s)
	meta := map[string]any{MetaIdempotencyKey: "order-42"}
	first := direct(t, callMeta(t, c, "validate_amount", map[string]any{"amount": 3}, meta))
	again := direct(t, callMeta(t, c, "validate_amount", map[string]any{"amount": 3}, meta))
	if again["trace_id"] != first["trace_id"] || again["stored_outcome"] != true || again["idempotent_replay"] != true || first["stored_outcome"] != nil || first["idempotent_replay"] != nil {
		t.Fatalf("first %v, again %v", first, again)
	}
	other := toolErr(t, "validate_amount", callMeta(t, c, "validate_amount", map[string]any{"amount": 4}, meta))
	if !strings.Contains(other["message"].(string), "order-42") {
		t.Fatalf("reused key: %v", other)
	}
	bad := toolErr(t, "validate_amount", callMeta(t, c, "validate_amount", map[string]any{"amount": 4}, map[string]any{MetaIdempotencyKey: 7}))
	if bad["error"] != runtime.CodeInvalidArgument {
		t.Fatalf("non-string key: %v", bad)
	}
}

// Ensure a tool the policy does not let run is not listed, and that the
// operator's ExposeTools lists none or only the named ones.
func TestExposedFilters(t *testing.T) {
	s := newServerConfig(t, runtime.Config{PolicyPath: writePolicy(t, "policy_id: p\nversion: \"1\"\ntool_capabilities:\n  validate_amount: []\n  poll: []\n")}, nil)
	c, _ := inProcess(t, s)
	tools := toolsByName(t, c)
	if _, found := tools["validate_amount"]; !found {
		t.Fatal("allowed validate_amount not listed")
	}
	if _, found := tools["send_receipt"]; found {
		t.Fatal("send_receipt, which the policy does not allow, is listed")
	}

	for _, tt := range []struct {
		expose     string
		want, not  []string
		management int
	}{
		{"none", nil, []string{"validate_amount", "poll"}, 15},
		{"poll,audit_log", []string{"poll", "audit_log"}, []string{"validate_amount"}, 15},
		{"all", []string{"poll", "validate_amount", "send_receipt"}, nil, 15},
	} {
		t.Run(tt.expose, func(t *testing.T) {
			e, err := ParseExposeTools(tt.expose)
			if err != nil {
				t.Fatal(err)
			}
			opts := DefaultOptions()
			opts.ExposeTools = e
			s := newServer(t, opts)
			c, _ := inProcess(t, s)
			tools := toolsByName(t, c)
			for _, n := range tt.want {
				if _, found := tools[n]; !found {
					t.Fatalf("%s not listed", n)
				}
			}
			for _, n := range tt.not {
				if _, found := tools[n]; found {
					t.Fatalf("%s listed", n)
				}
			}
			if len(tools) != tt.management+len(tt.want) && tt.expose != "all" {
				t.Fatalf("%d tools: %v", len(tools), keys(tools))
			}
		})
	}
}

// Ensure --expose-tools values parse, and nonsense is refused naming it.
func TestParseExposeTools(t *testing.T) {
	for _, tt := range []struct {
		in, want, err string
	}{
		{"", "all", ""},
		{"all", "all", ""},
		{" none ", "none", ""},
		{"b, a,", "a,b", ""},
		{",", "", "names no tool"},
		{"a b", "", `"a b" is not a tool name`},
		{"a,none", "", `"none" is not a tool name`},
	} {
		e, err := ParseExposeTools(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || e.String() != tt.want {
			t.Errorf("%q: %v %v, want %s", tt.in, e, err, tt.want)
		}
	}
}

// Ensure the collision rule: a registered tool named as a management
// tool is listed as tool.<name> unless that name is registered too, and
// the management tool keeps its name.
func TestExposedNames(t *testing.T) {
	mgmt := managementNames()
	if len(mgmt) != 15 {
		t.Fatalf("%d management names", len(mgmt))
	}
	got := exposedNames([]string{"get_trace", "run_program", "tool.run_program", "jq"}, mgmt)
	want := map[string]string{"get_trace": "tool.get_trace", "run_program": "", "tool.run_program": "tool.run_program", "jq": "jq"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s listed as %q, want %q", k, got[k], v)
		}
	}

	s := newServer(t, nil)
	c, _ := inProcess(t, s)
	registerUpload(t, s, c, "get_trace", nil)
	tools := toolsByName(t, c)
	if _, found := tools["tool.get_trace"]; !found {
		t.Fatalf("tool.get_trace not listed: %v", keys(tools))
	}
	res := direct(t, call(t, c, "tool.get_trace", map[string]any{"raw": `{"x":1}`}))
	if got, _ := json.Marshal(res["output"]); string(got) != `{"x":1}` {
		t.Fatalf("tool.get_trace answered %v", res)
	}
	// get_trace is still the management tool.
	tr := ok(t, s, "get_trace", call(t, c, "get_trace", map[string]any{"trace_id": res["trace_id"]}))
	if tr["program_name"] != "tool:get_trace" {
		t.Fatalf("get_trace %v", tr)
	}
}

// Ensure a large output is clipped to a preview that fits, with a
// pointer to the whole, and the trace_id kept.
func TestExposedResultClipped(t *testing.T) {
	s := newServer(t, nil)
	c, _ := inProcess(t, s)
	registerUpload(t, s, c, "echo_big", nil)
	res := call(t, c, "echo_big", map[string]any{"raw": `["` + strings.Repeat("x", 600_000) + `"]`})
	if n := len(text(t, res)); n > MaxResultBytes {
		t.Fatalf("answer of %d bytes", n)
	}
	body := direct(t, res)
	if body["output_truncated"] != true || !strings.Contains(body["next"].(string), "trace show") {
		t.Fatalf("answer %.300v", body)
	}
}

// Ensure list_changed reaches clients on both HTTP transports (Streamable
// HTTP listening on its GET stream, and legacy SSE) when another client
// registers a tool.
func TestExposedListChangedHTTP(t *testing.T) {
	s := newServer(t, nil)
	hs := httpServer(t, s, HTTPOptions{})
	streamable, err := client.NewStreamableHttpClient(hs.URL+"/mcp", transport.WithContinuousListening())
	if err != nil {
		t.Fatal(err)
	}
	sse, err := client.NewSSEMCPClient(hs.URL + "/sse")
	if err != nil {
		t.Fatal(err)
	}
	start(t, streamable)
	start(t, sse)
	chStreamable, chSSE := listChanges(streamable), listChanges(sse)
	a, _ := inProcess(t, s)
	registerUpload(t, s, a, "echo_http", nil)
	awaitListChanged(t, chStreamable, "a registration (Streamable HTTP)")
	awaitListChanged(t, chSSE, "a registration (SSE)")
	for _, c := range []*client.Client{streamable, sse} {
		if _, found := toolsByName(t, c)["echo_http"]; !found {
			t.Fatal("echo_http not listed over HTTP")
		}
	}
}

// Ensure a tool that answers PENDING leaves a suspended call whose
// result says so, fits the listed output schema, and that resume_program
// continues it in the same trace.
func TestExposedSuspends(t *testing.T) {
	s := newServer(t, nil)
	c, _ := inProcess(t, s)
	out := schemaOf(t, toolsByName(t, c)["poll"], "outputSchema")
	raw, _ := json.Marshal(out)
	res := direct(t, call(t, c, "poll", map[string]any{"status": "PENDING"}))
	validateAgainst(t, raw, res)
	if res["status"] != "suspended" || res["suspended_step_id"] != "call" || !strings.Contains(res["next"].(string), "resume_program") {
		t.Fatalf("suspended call %v", res)
	}
	resumed := ok(t, s, "resume_program", call(t, c, "resume_program", map[string]any{"trace_id": res["trace_id"], "payload": map[string]any{"payment_status": "SUCCESS"}}))
	if resumed["trace_id"] != res["trace_id"] || resumed["status"] != "success" {
		t.Fatalf("resumed %v", resumed)
	}
}
