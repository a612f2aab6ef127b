package mcpserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/runtime/runtimetest"
)

// Ensure the whole workflow works through a real MCP client: list tools,
// register a tool, run the payment pipeline with progress, page through
// the trace, verify the audit, read resources.
func TestWorkflowInProcess(t *testing.T) {
	opts := DefaultOptions()
	opts.ExposeTools = ExposeNone // the management tools alone
	s := newServer(t, opts)
	c, notes := inProcess(t, s)
	ctx := context.Background()

	list, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Tools) != len(s.defs) || len(list.Tools) != 15 {
		t.Fatalf("%d tools listed, %d defined", len(list.Tools), len(s.defs))
	}

	// An upload holds what the uploads default grants (nanovm:log) and
	// says so.
	echo := testTool(t, "log_levels")
	var manifest map[string]any
	if err := json.Unmarshal(echo.Manifest, &manifest); err != nil {
		t.Fatal(err)
	}
	reg := ok(t, s, "register_tool", call(t, c, "register_tool", map[string]any{
		"name": "log_levels", "wasm_base64": base64.StdEncoding.EncodeToString(echo.Wasm), "manifest": manifest,
	}))
	if reg["name"] != "log_levels" || len(reg["module_sha256"].(string)) != 64 || reg["source"] != "upload" ||
		fmt.Sprint(reg["grants"]) != "map[nanovm:log:upload-default]" {
		t.Fatalf("register_tool: %v", reg)
	}
	tools := ok(t, s, "list_tools", call(t, c, "list_tools", map[string]any{}))
	var names []string
	for _, x := range tools["tools"].([]any) {
		names = append(names, x.(map[string]any)["name"].(string))
	}
	if !strings.Contains(strings.Join(names, ","), "log_levels") || !strings.Contains(strings.Join(names, ","), "validate_amount") {
		t.Fatalf("list_tools: %v", names)
	}
	got := ok(t, s, "get_tool", call(t, c, "get_tool", map[string]any{"name": "log_levels"}))
	if got["manifest"].(map[string]any)["description"] == nil || got["source"] != "upload" {
		t.Fatalf("get_tool: %v", got)
	}

	var program map[string]any
	if err := json.Unmarshal(readExample(t, "program.json"), &program); err != nil {
		t.Fatal(err)
	}
	res := callCtx(t, ctx, c, "run_program", map[string]any{
		"program": program, "input": paymentInput(), "save_as": "pay", "idempotency_key": "order-abc-123",
	}, "tok-1")
	run := ok(t, s, "run_program", res)
	if run["status"] != "success" || run["steps"] != float64(4) || run["program_id"] != "pay" || run["trace_id"] == "" {
		t.Fatalf("run_program: %v", run)
	}
	trace := run["trace_id"].(string)
	prog := notes.progressN(4)
	if len(prog) != 4 {
		t.Fatalf("want 4 progress notifications, got %d: %v", len(prog), prog)
	}
	for i, p := range prog {
		if p["progressToken"] != "tok-1" || fmt.Sprint(p["progress"]) != fmt.Sprint(i+1) || !strings.HasPrefix(fmt.Sprint(p["message"]), "step ") {
			t.Fatalf("progress %d: %v", i, p)
		}
	}

	// Same key again: the stored outcome, nothing runs.
	again := ok(t, s, "run_program", call(t, c, "run_program", map[string]any{
		"program": program, "input": paymentInput(), "idempotency_key": "order-abc-123",
	}))
	if again["trace_id"] != trace || again["stored_outcome"] != true || again["idempotent_replay"] != true {
		t.Fatalf("stored outcome: %v", again)
	}

	page1 := ok(t, s, "get_trace", call(t, c, "get_trace", map[string]any{"trace_id": trace, "limit": 3}))
	if page1["total_steps"] != float64(4) || len(page1["steps"].([]any)) != 3 || page1["next_offset"] != float64(3) {
		t.Fatalf("page 1: %v", page1)
	}
	page2 := ok(t, s, "get_trace", call(t, c, "get_trace", map[string]any{"trace_id": trace, "offset": 3, "limit": 3}))
	steps := page2["steps"].([]any)
	if len(steps) != 1 || steps[0].(map[string]any)["step_id"] != "receipt" || page2["next_offset"] != nil {
		t.Fatalf("page 2: %v", page2)
	}

	audit := ok(t, s, "verify_audit", call(t, c, "verify_audit", map[string]any{"trace_id": trace}))
	if audit["ok"] != true || audit["checked"] != float64(4) {
		t.Fatalf("verify_audit: %v", audit)
	}
	whole := ok(t, s, "verify_audit", call(t, c, "verify_audit", map[string]any{}))
	if whole["ok"] != true || whole["scope"] != "chain" || whole["head_hash"] == "" {
		t.Fatalf("verify_audit chain: %v", whole)
	}

	traces := ok(t, s, "list_traces", call(t, c, "list_traces", map[string]any{"program_id": "pay"}))
	if tl := traces["traces"].([]any); len(tl) != 1 || tl[0].(map[string]any)["trace_id"] != trace {
		t.Fatalf("list_traces: %v", traces)
	}
	progs := ok(t, s, "list_programs", call(t, c, "list_programs", map[string]any{}))
	if pl := progs["programs"].([]any); len(pl) != 1 || pl[0].(map[string]any)["id"] != "pay" {
		t.Fatalf("list_programs: %v", progs)
	}
	gp := ok(t, s, "get_program", call(t, c, "get_program", map[string]any{"program_id": "pay"}))
	if gp["name"] != "payment_pipeline" || len(gp["program"].(map[string]any)["steps"].([]any)) != 4 {
		t.Fatalf("get_program: %v", gp)
	}
	// Run it again by id, with input given as a string.
	byID := ok(t, s, "run_program", call(t, c, "run_program", map[string]any{"program_id": "pay", "input": `{"amount":3,"order_id":"o-2"}`}))
	if byID["status"] != "success" {
		t.Fatalf("run by id: %v", byID)
	}

	// Resources.
	for _, uri := range []string{"nanovm://trace/" + trace, "nanovm://program/pay", "nanovm://tool/validate_amount", "nanovm://policy"} {
		rr, err := c.ReadResource(ctx, mcp.ReadResourceRequest{Params: mcp.ReadResourceParams{URI: uri}})
		if err != nil {
			t.Fatalf("read %s: %v", uri, err)
		}
		tc, isText := rr.Contents[0].(mcp.TextResourceContents)
		if !isText || !json.Valid([]byte(tc.Text)) {
			t.Fatalf("read %s: %+v", uri, rr.Contents)
		}
		if uri == "nanovm://policy" && !strings.Contains(tc.Text, s.rt.Policy().Hash()) {
			t.Fatalf("policy resource lacks its hash: %s", tc.Text)
		}
	}
	if _, err := c.ReadResource(ctx, mcp.ReadResourceRequest{Params: mcp.ReadResourceParams{URI: "nanovm://trace/nope"}}); err == nil || !strings.Contains(err.Error(), "no trace") {
		t.Fatalf("unknown trace resource: %v", err)
	}
	templates, err := c.ListResourceTemplates(ctx, mcp.ListResourceTemplatesRequest{})
	if err != nil || len(templates.ResourceTemplates) != 3 {
		t.Fatalf("templates: %+v %v", templates, err)
	}

	del := ok(t, s, "delete_program", call(t, c, "delete_program", map[string]any{"program_id": "pay"}))
	if del["deleted"] != true {
		t.Fatalf("delete_program: %v", del)
	}
	if e := toolErr(t, "get_program", call(t, c, "get_program", map[string]any{"program_id": "pay"})); e["error"] != "not_found" {
		t.Fatalf("get deleted program: %v", e)
	}
	rm := ok(t, s, "remove_tool", call(t, c, "remove_tool", map[string]any{"name": "log_levels"}))
	if rm["removed"] != true {
		t.Fatalf("remove_tool: %v", rm)
	}
}

// Ensure a suspended run (poll answers PENDING) is reported with what to
// do next and is resumed through resume_program in the same trace; a
// second resume is a tool error.
func TestSuspendResume(t *testing.T) {
	s := newServer(t, nil)
	c, _ := inProcess(t, s)
	run := ok(t, s, "run_program", call(t, c, "run_program", map[string]any{
		"program": suspendingProgram, "input": map[string]any{"order_id": "o1"},
	}))
	if run["status"] != "suspended" || run["suspended_step_id"] != "poll" || !strings.Contains(run["next"].(string), "resume_program") {
		t.Fatalf("run: %v", run)
	}
	trace := run["trace_id"].(string)
	suspended := ok(t, s, "list_traces", call(t, c, "list_traces", map[string]any{"status": "suspended"}))
	if len(suspended["traces"].([]any)) != 1 {
		t.Fatalf("list suspended: %v", suspended)
	}
	done := ok(t, s, "resume_program", call(t, c, "resume_program", map[string]any{
		"trace_id": trace, "payload": map[string]any{"payment_status": "SUCCESS"}, "source": "WEBHOOK",
	}))
	if done["status"] != "success" || done["trace_id"] != trace {
		t.Fatalf("resume: %v", done)
	}
	tr := ok(t, s, "get_trace", call(t, c, "get_trace", map[string]any{"trace_id": trace}))
	steps := tr["steps"].([]any)
	if last := steps[len(steps)-1].(map[string]any); last["step_id"] != "ok" {
		t.Fatalf("last step %v", last)
	}
	if e := toolErr(t, "resume_program", call(t, c, "resume_program", map[string]any{"trace_id": trace, "payload": map[string]any{}})); e["error"] != "not_suspended" {
		t.Fatalf("second resume: %v", e)
	}
}

// Ensure put_secret returns a ref, the ref travels through a run hashed,
// and erase_secret tombstones it while the chain still verifies.
func TestSecrets(t *testing.T) {
	s := newServer(t, nil)
	c, _ := inProcess(t, s)
	const plaintext = "sk_live_4242424242424242_supersecret"
	put := ok(t, s, "put_secret", call(t, c, "put_secret", map[string]any{"id": "card-4242", "value": plaintext}))
	ref := put["ref"].(string)
	if ref != "vault://secret/card-4242" {
		t.Fatalf("put_secret: %v", put)
	}
	run := ok(t, s, "run_program", call(t, c, "run_program", map[string]any{
		"program": `{"steps":[{"id":"carry","type":"tool","tool":"poll","args":{"status":"$card"}}]}`,
		"input":   map[string]any{"card": ref},
	}))
	trace := run["trace_id"].(string)
	er := ok(t, s, "erase_secret", call(t, c, "erase_secret", map[string]any{"id": "card-4242"}))
	if er["erased"] != true || er["envelope_hash"] == "" {
		t.Fatalf("erase_secret: %v", er)
	}
	// A repeat is refused: the secret is gone, and the audit keeps one
	// erasure envelope for it.
	if again := toolErr(t, "erase_secret", call(t, c, "erase_secret", map[string]any{"id": "card-4242"})); again["error"] != "tombstoned" {
		t.Fatalf("second erase: %v", again)
	}
	tr := text(t, call(t, c, "get_trace", map[string]any{"trace_id": trace}))
	if !strings.Contains(tr, "[REDACTED_TOMBSTONE]") || strings.Contains(tr, plaintext) || strings.Contains(tr, "card-4242") {
		t.Fatalf("trace after erasure: %s", tr)
	}
	if v := ok(t, s, "verify_audit", call(t, c, "verify_audit", map[string]any{})); v["ok"] != true {
		t.Fatalf("verify after erase: %v", v)
	}
	if e := toolErr(t, "put_secret", call(t, c, "put_secret", map[string]any{"id": "card-4242", "value": "again"})); e["error"] != "tombstoned" {
		t.Fatalf("reuse erased id: %v", e)
	}
}

// Ensure every kind of bad call is a tool error (isError) whose message
// lets a model fix it, never a protocol error; an unknown tool is a
// protocol error and the server keeps serving.
func TestBadCalls(t *testing.T) {
	s := newServer(t, nil)
	c, _ := inProcess(t, s)
	tests := []struct {
		name, tool string
		args       any
		code, want string
	}{
		{name: "invalid program", tool: "run_program", args: map[string]any{"program": map[string]any{"steps": []any{map[string]any{"id": "a", "type": "tool", "tool": "x", "bogus": 1}}}}, code: "invalid_program", want: "bogus"},
		{name: "program string not JSON", tool: "run_program", args: map[string]any{"program": "{not json"}, code: "invalid_argument", want: "not valid JSON"},
		{name: "program is an array", tool: "run_program", args: map[string]any{"program": []any{1}}, code: "invalid_argument", want: "got an array"},
		{name: "neither program nor id", tool: "run_program", args: map[string]any{}, code: "invalid_argument", want: "program_id"},
		{name: "unknown argument", tool: "run_program", args: map[string]any{"programme": "{}"}, code: "invalid_argument", want: `"programme"`},
		{name: "wrong type", tool: "get_trace", args: map[string]any{"trace_id": 42}, code: "invalid_argument", want: `"trace_id": expected a string`},
		{name: "limit out of range", tool: "get_trace", args: map[string]any{"trace_id": "x", "limit": 1000}, code: "invalid_argument", want: "out of range"},
		{name: "fractional limit", tool: "list_traces", args: map[string]any{"limit": 1.5}, code: "invalid_argument", want: `"limit"`},
		{name: "missing required", tool: "get_trace", args: map[string]any{}, code: "invalid_argument", want: `"trace_id" is required`},
		{name: "unknown trace", tool: "get_trace", args: map[string]any{"trace_id": "nope"}, code: "not_found", want: "nope"},
		{name: "unknown run", tool: "verify_audit", args: map[string]any{"execution_id": "nope"}, code: "not_found", want: "nope"},
		{name: "bad status", tool: "list_traces", args: map[string]any{"status": "done"}, code: "invalid_argument", want: "done"},
		{name: "bad cursor", tool: "list_traces", args: map[string]any{"cursor": "!!"}, code: "invalid_argument", want: "cursor"},
		{name: "bad source", tool: "resume_program", args: map[string]any{"trace_id": "x", "source": "EMAIL"}, code: "invalid_argument", want: "EMAIL"},
		{name: "resume unknown", tool: "resume_program", args: map[string]any{"trace_id": "nope"}, code: "not_found", want: "nope"},
		{name: "llm without model", tool: "run_program", args: map[string]any{"program": `{"steps":[{"id":"a","type":"llm","prompt":"hi"}]}`}, code: "llm_not_configured", want: "NANO_VM_MCP_LLM_MODEL"},
		{name: "bad base64", tool: "register_tool", args: map[string]any{"name": "x", "wasm_base64": "***", "manifest": map[string]any{}}, code: "invalid_argument", want: "wasm_base64"},
		{name: "name mismatch", tool: "register_tool", args: map[string]any{"name": "x", "wasm_base64": "AA==", "manifest": map[string]any{"name": "y"}}, code: "invalid_argument", want: "must match"},
		{name: "not wasm", tool: "register_tool", args: map[string]any{"name": "x", "wasm_base64": "AAAA", "manifest": map[string]any{}}, code: "tool_rejected", want: ""},
		{name: "unknown tool record", tool: "get_tool", args: map[string]any{"name": "nope"}, code: "not_found", want: "nope"},
		{name: "erase unknown", tool: "erase_secret", args: map[string]any{"id": "nope"}, code: "not_found", want: "nope"},
		{name: "arguments not an object", tool: "list_tools", args: []any{1, 2}, code: "invalid_argument", want: "JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := toolErr(t, tt.tool, call(t, c, tt.tool, tt.args))
			if e["error"] != tt.code || !strings.Contains(fmt.Sprint(e["message"]), tt.want) {
				t.Fatalf("got %v, want code %s and %q in the message", e, tt.code, tt.want)
			}
		})
	}
	unknownToolRefused(t, c, "no_such_tool")
}

// Ensure a panic in a handler becomes a generic tool error with an
// incident id and never reaches the client as a stack or a crash.
func TestPanicIsToolError(t *testing.T) {
	s := newServer(t, nil)
	d := toolDef{
		name: "boom", title: "Boom", description: "panics",
		input: closed(map[string]any{}), output: object(map[string]any{}),
		handler: toolHandler{args: &struct{}{}, call: func(*Server, context.Context, mcp.CallToolRequest) (any, error) { panic("secret internals") }},
	}
	s.mcp.AddTool(d.tool(), s.handle(d))
	c, _ := inProcess(t, s)
	e := toolErr(t, "boom", call(t, c, "boom", map[string]any{}))
	if e["error"] != "internal_error" || e["incident"] == nil || strings.Contains(fmt.Sprint(e), "secret internals") {
		t.Fatalf("panic result: %v", e)
	}
}

// Ensure a cancelled request stops the run after its current step, leaves
// it resumable, tells the client how to continue, and resume_program
// without payload finishes it.
func TestCancelLeavesResumable(t *testing.T) {
	s := newServerLLM(t)
	c, _ := inProcess(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Cancel once the second step is durable, inside the run, so the
	// cancellation lands mid-run at a known place (before the llm step).
	s.afterProgress = func(p runtime.Progress) {
		if p.Done == 2 {
			cancel()
		}
	}
	var req mcp.CallToolRequest
	req.Params.Name = "run_program"
	req.Params.Arguments = map[string]any{"program": json.RawMessage(runtimetest.BarrierProgram), "input": paymentInput()}
	req.Params.Meta = &mcp.Meta{ProgressToken: "cancel-me"}
	res, err := c.CallTool(ctx, req)
	// A transport that forwards notifications/cancelled drops the
	// response; the in-process one hands the handler's answer back.
	if err == nil {
		e := toolErr(t, "run_program", res)
		if e["error"] != "interrupted" || !strings.Contains(e["message"].(string), "resume_program") {
			t.Fatalf("cancelled run: %v", e)
		}
	}
	s.afterProgress = nil
	page := ok(t, s, "list_traces", call(t, c, "list_traces", map[string]any{"status": "running"}))
	tl := page["traces"].([]any)
	if len(tl) != 1 {
		t.Fatalf("want one interrupted run, got %v", page)
	}
	trace := tl[0].(map[string]any)["trace_id"].(string)
	tr := ok(t, s, "get_trace", call(t, c, "get_trace", map[string]any{"trace_id": trace}))
	if tr["total_steps"] != float64(2) {
		t.Fatalf("interrupted after %v steps, want 2", tr["total_steps"])
	}
	if e := toolErr(t, "resume_program", call(t, c, "resume_program", map[string]any{"trace_id": trace, "payload": 1})); e["error"] != "invalid_argument" {
		t.Fatalf("resume interrupted with payload: %v", e)
	}
	done := ok(t, s, "resume_program", call(t, c, "resume_program", map[string]any{"trace_id": trace}))
	if done["status"] != "success" || done["steps"] != float64(5) {
		t.Fatalf("continue: %v", done)
	}
}

// Ensure register_tool is not even listed when the operator switched
// uploads off.
func TestUploadDisabled(t *testing.T) {
	s := newServer(t, &Options{AllowToolUpload: false, ExposeTools: ExposeNone})
	c, _ := inProcess(t, s)
	list, err := c.ListTools(context.Background(), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range list.Tools {
		if tool.Name == "register_tool" {
			t.Fatal("register_tool listed with uploads off")
		}
	}
	if len(list.Tools) != 13 {
		t.Fatalf("%d tools", len(list.Tools))
	}
}

// Ensure large step outputs never produce an unbounded result: run_program
// clips the final output, get_trace clips each step and pages so the
// whole result fits in MaxResultBytes.
func TestResultsStayBounded(t *testing.T) {
	s := newServer(t, nil)
	c, _ := inProcess(t, s)
	// The C tools read at most 16 KiB of arguments: 12 KB strings, and a
	// parallel step to make a final output over the run_program budget.
	big := strings.Repeat("x", 12_000)
	steps := []string{}
	for i := range 12 {
		steps = append(steps, fmt.Sprintf(`{"id":"s%d","type":"tool","tool":"poll","args":{"status":"$big"}}`, i))
	}
	steps = append(steps, `{"id":"fan","type":"parallel","parallel_steps":[
		{"id":"a","type":"tool","tool":"poll","args":{"status":"$big"}},
		{"id":"b","type":"tool","tool":"poll","args":{"status":"$big"}},
		{"id":"c","type":"tool","tool":"poll","args":{"status":"$big"}}]}`)
	prog := `{"name":"big","steps":[` + strings.Join(steps, ",") + `]}`
	res := call(t, c, "run_program", map[string]any{"program": prog, "input": map[string]any{"big": big}})
	run := ok(t, s, "run_program", res)
	if len(text(t, res)) > MaxResultBytes || run["final_output_truncated"] != true {
		t.Fatalf("run_program result is %d bytes, truncated=%v: %s", len(text(t, res)), run["final_output_truncated"], text(t, res))
	}
	trace := run["trace_id"].(string)
	offset, seen := 0, 0
	for {
		res := call(t, c, "get_trace", map[string]any{"trace_id": trace, "offset": offset, "limit": 100})
		page := ok(t, s, "get_trace", res)
		if n := len(text(t, res)); n > MaxResultBytes {
			t.Fatalf("get_trace page is %d bytes", n)
		}
		got := page["steps"].([]any)
		seen += len(got)
		if out := got[0].(map[string]any)["output"].(map[string]any); out["truncated"] != true {
			t.Fatalf("big output not clipped: %v", out)
		}
		next, more := page["next_offset"].(float64)
		if !more {
			break
		}
		offset = int(next)
	}
	if seen != 13 {
		t.Fatalf("paged through %d of 13 steps", seen)
	}
}

// Ensure Shutdown stops a run in flight after its current step, leaves it
// resumable and says so, and refuses new runs afterwards.
func TestShutdownInterruptsRuns(t *testing.T) {
	s := newServerLLM(t)
	c, _ := inProcess(t, s)
	s.afterProgress = func(p runtime.Progress) {
		if p.Done == 2 {
			_ = s.Shutdown(context.Background())
		}
	}
	res := callCtx(t, context.Background(), c, "run_program", map[string]any{
		"program": runtimetest.BarrierProgram, "input": paymentInput(),
	}, "shutdown")
	e := toolErr(t, "run_program", res)
	if e["error"] != "interrupted" || e["steps"] != float64(2) || !strings.Contains(e["message"].(string), "resume_program") {
		t.Fatalf("interrupted run: %v", e)
	}
	if again := toolErr(t, "run_program", call(t, c, "run_program", map[string]any{"program_id": "x"})); again["error"] != "shutting_down" {
		t.Fatalf("run after shutdown: %v", again)
	}
	un, err := s.rt.Unfinished(context.Background())
	if err != nil || len(un) != 1 || un[0].ID != e["trace_id"] || un[0].Status != "running" {
		t.Fatalf("unfinished after shutdown: %+v %v", un, err)
	}
}
