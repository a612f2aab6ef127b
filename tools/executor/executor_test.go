package executor

import (
	"context"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/tools"
	wasmtools "github.com/nanovm/nano-vm-mcp/wasm-tools"
)

// Ensure the adapter passes PENDING through, returns provenance, and turns
// a tool error into a Go error.
func TestExecute(t *testing.T) {
	ctx := context.Background()
	h, err := tools.NewHost(ctx, tools.HostOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	reg := tools.NewRegistry(h, tools.NewMemoryStore(), tools.RegistryOptions{})
	mods, err := wasmtools.Bundled()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mods {
		man, err := tools.ParseManifest(m.Manifest)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Register(ctx, man, m.Wasm); err != nil {
			t.Fatal(err)
		}
	}
	ex := New(reg)
	tests := []struct {
		name    string
		call    kernel.ToolCall
		want    any
		wantErr string
	}{
		{name: "pending", call: kernel.ToolCall{Tool: "poll"}, want: "PENDING"},
		{name: "success", call: kernel.ToolCall{Tool: "poll", Args: map[string]any{"status": "SUCCESS"}}, want: "SUCCESS"},
		{name: "tool error", call: kernel.ToolCall{Tool: "validate_amount", Args: map[string]any{"amount": -1}}, wantErr: "amount must be positive"},
		{name: "unknown tool", call: kernel.ToolCall{Tool: "nope"}, wantErr: "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := ex.Execute(ctx, tt.call)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := res.Output
			if m, ok := got.(map[string]any); ok {
				got = m["payment_status"]
			}
			if got != tt.want || res.Provenance == nil || len(res.Provenance.ModuleSHA256) != 64 {
				t.Fatalf("result = %+v", res)
			}
		})
	}
}
