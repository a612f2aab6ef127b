package mcpserver

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/runtime"
)

// Ensure register_tool of an Extism plugin describing several tools names
// every tool it registered: the first as the record, the others in
// also_registered, each callable by its ref.
func TestRegisterPluginNamesEveryTool(t *testing.T) {
	s := newServerConfig(t, runtime.Config{PolicyPath: writePolicy(t, "policy_id: plugins\ntool_capabilities: {}\nuploads:\n  default: {capabilities: [\"nanovm:http\"]}\n")}, nil)
	c, _ := inProcess(t, s)
	m := testTool(t, "extism_v2")
	out := ok(t, s, "register_tool", call(t, c, "register_tool", map[string]any{
		"name": "extism_v2", "wasm_base64": base64.StdEncoding.EncodeToString(m.Wasm), "manifest": string(m.Manifest),
	}))
	also, _ := out["also_registered"].([]any)
	names := []string{out["name"].(string)}
	for _, r := range also {
		name, _, _ := strings.Cut(r.(string), "@")
		names = append(names, name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"echo_v2", "fetch_v2"}) {
		t.Fatalf("register_tool answered %v; want echo_v2 and fetch_v2 named", out)
	}
}

// Ensure the bundled jq answers a direct MCP call (it is listed as a tool
// of its own) with its results and the run's trace_id.
func TestJQDirectOverMCP(t *testing.T) {
	s := newServer(t, nil)
	c, _ := inProcess(t, s)
	r := call(t, c, "jq", map[string]any{"filter": ".a", "input": `{"a":1}`})
	out, _ := r.StructuredContent.(map[string]any)
	if r.IsError || out == nil {
		t.Fatalf("jq: isError=%v %v", r.IsError, r.Content)
	}
	res, _ := out["output"].(map[string]any)
	if results, _ := res["results"].([]any); len(results) != 1 || results[0] != float64(1) || out["trace_id"] == nil {
		t.Fatalf("jq answered %v", out)
	}
}
