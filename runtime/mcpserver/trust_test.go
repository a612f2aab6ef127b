package mcpserver

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/runtime"
)

// scratchToolsDir writes a tools folder holding the operator's scratch: the
// fs_rw test module with a writable mount of mnt at /data.
func scratchToolsDir(tb testing.TB, mnt string) string {
	tb.Helper()
	mod := testTool(tb, "fs_rw")
	var m map[string]any
	if err := json.Unmarshal(mod.Manifest, &m); err != nil {
		tb.Fatal(err)
	}
	m["name"] = "scratch"
	m["mounts"] = []any{map[string]any{"host_path": mnt, "guest_path": "/data", "read_only": false}}
	dir := filepath.Join(tb.TempDir(), "tools")
	if err := os.MkdirAll(filepath.Join(dir, "scratch"), 0o755); err != nil {
		tb.Fatal(err)
	}
	mj, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(dir, "scratch", "manifest.json"), mj, 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "scratch", "scratch.wasm"), mod.Wasm, 0o644); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// uploadArgs are register_tool's arguments for a test module under name,
// its manifest edited by edit.
func uploadArgs(tb testing.TB, module, name string, edit func(m map[string]any)) map[string]any {
	tb.Helper()
	mod := testTool(tb, module)
	var m map[string]any
	if err := json.Unmarshal(mod.Manifest, &m); err != nil {
		tb.Fatal(err)
	}
	m["name"] = name
	if edit != nil {
		edit(m)
	}
	return map[string]any{"name": name, "wasm_base64": base64.StdEncoding.EncodeToString(mod.Wasm), "manifest": m}
}

func withMount(host string, ro bool) func(map[string]any) {
	return func(m map[string]any) {
		m["mounts"] = []any{map[string]any{"host_path": host, "guest_path": "/data", "read_only": ro}}
	}
}

// Ensure that with uploads on and no policy file a client, over MCP, can
// neither replace nor remove the operator's scratch (a tool with a
// writable mount) nor upload a tool of its own that asks for files, the
// network or secrets: each is refused naming why, and scratch is still the
// operator's afterwards.
func TestUploadCannotTakeOperatorTool(t *testing.T) {
	mnt := t.TempDir()
	s := newServerConfig(t, runtime.Config{ToolsDir: scratchToolsDir(t, mnt)}, nil)
	c, _ := inProcess(t, s)
	tests := []struct {
		name     string
		tool     string
		args     map[string]any
		wantErr  string
		wantCode string // default capability_denied
	}{
		{name: "scratch with a mount of /", tool: "register_tool", args: uploadArgs(t, "fs_rw", "scratch", withMount("/", false)),
			wantErr: `"scratch" is an operator tool: an upload may not replace it`},
		{name: "scratch unchanged", tool: "register_tool", args: uploadArgs(t, "fs_rw", "scratch", withMount(mnt, false)),
			wantErr: `"scratch" is an operator tool`},
		{name: "scratch asking for nothing", tool: "register_tool", args: uploadArgs(t, "log_levels", "scratch", nil),
			wantErr: `"scratch" is an operator tool`},
		{name: "new name with a mount of /", tool: "register_tool", args: uploadArgs(t, "fs_rw", "evil", withMount("/", false)),
			wantErr: `capabilities: \"wasi:fs\" is not granted to this upload`},
		{name: "new name with the operator's mount", tool: "register_tool", args: uploadArgs(t, "fs_rw", "evil", withMount(mnt, true)),
			wantErr: `capabilities: \"wasi:fs\" is not granted to this upload`},
		{name: "new name importing files without asking", tool: "register_tool", args: uploadArgs(t, "fs_rw", "evil", func(m map[string]any) { delete(m, "capabilities") }),
			wantErr: `needs capability wasi:fs, not granted`, wantCode: "tool_rejected"},
		{name: "new name with the network", tool: "register_tool", args: uploadArgs(t, "http_get", "evil", func(m map[string]any) { m["allowed_hosts"] = []any{"example.com"} }),
			wantErr: `capabilities: \"nanovm:http\" is not granted`},
		{name: "new name with secrets", tool: "register_tool", args: uploadArgs(t, "secret_echo", "evil", nil),
			wantErr: `capabilities: \"nanovm:secrets\" is not granted`},
		{name: "remove the operator's tool", tool: "remove_tool", args: map[string]any{"name": "scratch"},
			wantErr: `tool \"scratch\" is an operator tool: only the operator can remove it`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := toolErr(t, tt.tool, call(t, c, tt.tool, tt.args))
			code := tt.wantCode
			if code == "" {
				code = "capability_denied"
			}
			if e["error"] != code || !strings.Contains(fmt.Sprint(e["message"]), strings.ReplaceAll(tt.wantErr, `\"`, `"`)) {
				t.Fatalf("%s: %v\nwant %s", tt.tool, e, tt.wantErr)
			}
		})
	}
	got := ok(t, s, "get_tool", call(t, c, "get_tool", map[string]any{"name": "scratch"}))
	mounts := got["manifest"].(map[string]any)["mounts"].([]any)
	if got["source"] != "operator" || fmt.Sprint(got["grants"]) != "map[wasi:fs:manifest]" || len(mounts) != 1 || mounts[0].(map[string]any)["host_path"] != mnt {
		t.Fatalf("scratch after the attempts: %v", got)
	}
	list := ok(t, s, "list_tools", call(t, c, "list_tools", map[string]any{}))
	for _, x := range list["tools"].([]any) {
		if n := x.(map[string]any)["name"]; n == "evil" {
			t.Fatalf("a refused upload is listed: %v", x)
		}
	}
}

// Ensure a policy's uploads entry lets an upload have what it grants and no
// more, and that tool_capabilities, which grants the operator's tools,
// never grants an upload of the same name.
func TestUploadPolicyEntry(t *testing.T) {
	mnt := t.TempDir()
	if err := os.WriteFile(filepath.Join(mnt, "hello.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	policy := writePolicy(t, fmt.Sprintf(`policy_id: uploads-test
version: "1"
tool_capabilities:
  fs_rw: ["wasi:fs"]
uploads:
  tools:
    reader:
      capabilities: ["wasi:fs"]
      mounts: [{host_path: %q, guest_path: /data, read_only: true}]
`, mnt))
	s := newServerConfig(t, runtime.Config{PolicyPath: policy, NoBundledTools: true}, nil)
	c, _ := inProcess(t, s)

	e := toolErr(t, "register_tool", call(t, c, "register_tool", uploadArgs(t, "fs_rw", "reader", withMount(mnt, false))))
	if e["error"] != "capability_denied" || !strings.Contains(fmt.Sprint(e["message"]), "is granted read-only") {
		t.Fatalf("writable mount of a read-only grant: %v", e)
	}
	e = toolErr(t, "register_tool", call(t, c, "register_tool", uploadArgs(t, "fs_rw", "reader", withMount("/", true))))
	if e["error"] != "capability_denied" || !strings.Contains(fmt.Sprint(e["message"]), `mounts[0]: host_path "/" is not under a granted mount`) {
		t.Fatalf("mount outside the grant: %v", e)
	}
	e = toolErr(t, "register_tool", call(t, c, "register_tool", uploadArgs(t, "fs_rw", "fs_rw", withMount(mnt, true))))
	if e["error"] != "capability_denied" || !strings.Contains(fmt.Sprint(e["message"]), `capabilities: "wasi:fs" is not granted to this upload`) {
		t.Fatalf("an upload named like an operator entry: %v", e)
	}
	reg := ok(t, s, "register_tool", call(t, c, "register_tool", uploadArgs(t, "fs_rw", "reader", withMount(mnt, true))))
	if reg["source"] != "upload" || fmt.Sprint(reg["grants"]) != "map[wasi:fs:upload-policy]" {
		t.Fatalf("register within the grant: %v", reg)
	}
	run := ok(t, s, "run_program", call(t, c, "run_program", map[string]any{
		"program": `{"steps":[{"id":"read","type":"tool","tool":"reader","args":{"path":"/data/hello.txt"},"output_key":"r"}]}`,
	}))
	if run["status"] != "success" || !strings.Contains(fmt.Sprint(run), "hello") {
		t.Fatalf("run the upload: %v", run)
	}
	tr := ok(t, s, "get_trace", call(t, c, "get_trace", map[string]any{"trace_id": run["trace_id"]}))
	step := tr["steps"].([]any)[0].(map[string]any)
	prov := step["tool"].(map[string]any)
	if prov["source"] != "upload" || fmt.Sprint(prov["grants"]) != "map[wasi:fs:upload-policy]" {
		t.Fatalf("step provenance: %v", prov)
	}
}
