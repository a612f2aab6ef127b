package mcpserver

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/internal/jsonlimit"
	"github.com/nanovm/nano-vm-mcp/runtime"
)

// Ensure every run_program answer carries its trace_id within
// MaxResultBytes whatever a guest or a client wrote: huge error text is
// an excerpt with its total length, a huge final output a preview with a
// pointer to get_trace, a huge number refused at acceptance.
func TestRunAnswersFit(t *testing.T) {
	s := newServer(t, nil)
	c, _ := inProcess(t, s)
	m := testTool(t, "raw_echo")
	wasm := base64.StdEncoding.EncodeToString(m.Wasm)
	ok(t, s, "register_tool", call(t, c, "register_tool", map[string]any{"name": "raw_echo", "wasm_base64": wasm, "manifest": string(m.Manifest)}))
	var man map[string]any
	if err := json.Unmarshal(m.Manifest, &man); err != nil {
		t.Fatal(err)
	}
	man["name"] = "raw_echo_schema"
	man["output_schema"] = map[string]any{"type": "object", "additionalProperties": false}
	manifest, _ := json.Marshal(man)
	ok(t, s, "register_tool", call(t, c, "register_tool", map[string]any{"name": "raw_echo_schema", "wasm_base64": wasm, "manifest": string(manifest)}))

	huge := strings.Repeat("x", 600_000)
	echo := func(tool string) string {
		return `{"steps":[{"id":"echo","type":"tool","tool":"` + tool + `","args":{"raw":"$payload"},"is_terminal":true}]}`
	}
	tests := []struct {
		name, program, payload string
		status, want           string
	}{
		{"guest error", echo("raw_echo"), `{"error":"` + huge + `"}`, "failed", "bytes in all)"},
		{"schema failure", echo("raw_echo_schema"), `{"` + huge + `":1}`, "failed", "bytes in all)"},
		{"stdout not JSON", echo("raw_echo"), huge, "failed", "bytes in all)"},
		{"900,000-digit number", echo("raw_echo"), strings.Repeat("9", 900_000), "failed", "a number of 900,000 characters exceeds the limit of 100"},
		{"control characters escape sixfold", echo("raw_echo"), `{"error":"` + strings.Repeat(`\u0001`, 100_000) + `"}`, "failed", "bytes in all)"},
		{"large final output", echo("raw_echo"), `["` + huge + `"]`, "success", ""},
		{"huge program name", `{"name":"` + strings.Repeat("n", 200_000) + `","steps":[{"id":"echo","type":"tool","tool":"raw_echo","args":{"raw":"$payload"},"is_terminal":true}]}`, `1`, "success", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := call(t, c, "run_program", map[string]any{"program": tt.program, "input": map[string]any{"payload": tt.payload}})
			if n := len(text(t, res)); n > MaxResultBytes {
				t.Fatalf("answer of %d bytes", n)
			}
			run := ok(t, s, "run_program", res)
			id, _ := run["trace_id"].(string)
			errText, _ := run["error"].(string)
			if id == "" || run["status"] != tt.status || !strings.Contains(errText, tt.want) {
				t.Fatalf("answer %.600v", run)
			}
			if run["final_output_truncated"] == true && !strings.Contains(run["next"].(string), "get_trace") {
				t.Fatalf("a preview without a pointer to get_trace: %v", run["next"])
			}
			page := ok(t, s, "get_trace", call(t, c, "get_trace", map[string]any{"trace_id": id}))
			if page["status"] != tt.status {
				t.Fatalf("get_trace: %v", page["status"])
			}
		})
	}
}

// Ensure a tool error whose message or details quote client data (an
// invalid program naming a huge field) fits in MaxResultBytes, keeping
// its code and an excerpt of its message.
func TestErrorAnswersFit(t *testing.T) {
	s := newServer(t, nil)
	c, _ := inProcess(t, s)
	field := strings.Repeat("f", 200_000)
	res := call(t, c, "run_program", map[string]any{"program": `{"steps":[{"id":"a","type":"tool","tool":"x","` + field + `":1}]}`})
	if n := len(text(t, res)); n > MaxResultBytes {
		t.Fatalf("error of %d bytes", n)
	}
	body := toolErr(t, "run_program", res)
	if body["error"] != runtime.CodeInvalidProgram || !strings.Contains(body["message"].(string), "bytes in all)") {
		t.Fatalf("%.500v", body)
	}
	for _, input := range []any{`{"n":` + strings.Repeat("9", 900_000) + `}`, `{"n":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`} {
		body = toolErr(t, "run_program", call(t, c, "run_program", map[string]any{"program": `{"steps":[]}`, "input": input}))
		if body["error"] != runtime.CodeInvalidArgument || !strings.Contains(body["message"].(string), "exceeds the limit of") || len(body["message"].(string)) > 300 {
			t.Fatalf("%.500v", body)
		}
	}
	deep := strings.Repeat("[", jsonlimit.MaxDepth+1) + strings.Repeat("]", jsonlimit.MaxDepth+1)
	body = toolErr(t, "run_program", call(t, c, "run_program", map[string]any{"program": `{"steps":[{"id":"a","type":"tool","tool":"audit_log","args":{"d":` + deep + `}}]}`}))
	if body["error"] != runtime.CodeInvalidProgram || !strings.Contains(body["message"].(string), "nesting depth 129 exceeds the limit of 128") {
		t.Fatalf("%.500v", body)
	}
}
