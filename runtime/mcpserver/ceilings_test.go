package mcpserver

import (
	"encoding/base64"
	"fmt"
	"testing"
)

// Ensure an upload over MCP asking for more than a server ceiling is
// refused as tool_rejected, naming the field, its value and the ceiling
// (issue 12, finding 6), and that nothing was registered.
func TestRegisterToolAboveCeiling(t *testing.T) {
	s := newServer(t, nil)
	c, _ := inProcess(t, s)
	mod := testTool(t, "memtouch")
	wasm := base64.StdEncoding.EncodeToString(mod.Wasm)
	tests := []struct {
		name     string
		manifest map[string]any
		want     string
	}{
		{name: "memory", manifest: map[string]any{"limits": map[string]any{"memory_mib": 4096}},
			want: `register tool "memtouch": manifest "memtouch": limits.memory_mib 4096 is above the server's ceiling of 512`},
		{name: "timeout", manifest: map[string]any{"limits": map[string]any{"timeout_ms": 3_600_000}},
			want: `register tool "memtouch": manifest "memtouch": limits.timeout_ms 3600000 is above the server's ceiling of 300000`},
		{name: "stdout", manifest: map[string]any{"limits": map[string]any{"stdout_bytes": 1 << 30}},
			want: `register tool "memtouch": manifest "memtouch": limits.stdout_bytes 1073741824 is above the server's ceiling of 16777216`},
		{name: "stderr", manifest: map[string]any{"limits": map[string]any{"stderr_bytes": 1 << 30}},
			want: `register tool "memtouch": manifest "memtouch": limits.stderr_bytes 1073741824 is above the server's ceiling of 1048576`},
		{name: "pool size", manifest: map[string]any{"isolation": "pool", "pool_size": 256},
			want: `register tool "memtouch": manifest "memtouch": pool_size 256 is above the server's ceiling of 16`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := toolErr(t, "register_tool", call(t, c, "register_tool", map[string]any{"name": "memtouch", "wasm_base64": wasm, "manifest": tt.manifest}))
			if e["error"] != "tool_rejected" || fmt.Sprint(e["message"]) != tt.want {
				t.Fatalf("got %v\nwant tool_rejected: %s", e, tt.want)
			}
		})
	}
	if e := toolErr(t, "get_tool", call(t, c, "get_tool", map[string]any{"name": "memtouch"})); e["error"] != "not_found" {
		t.Fatalf("a refused upload was registered: %v", e)
	}
}
