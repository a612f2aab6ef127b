package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/runtime/runtimetest"
	"github.com/nanovm/nano-vm-mcp/tools"
)

// Ensure the server's step ceiling refuses a program asking for more, by
// name, and stops a program without max_steps at the ceiling.
func TestMaxStepsPerRun(t *testing.T) {
	rt := openRuntime(t, runtime.Config{MaxStepsPerRun: 2})
	ctx := context.Background()
	_, err := rt.RunProgram(ctx, runtime.RunRequest{Program: json.RawMessage(`{"max_steps":3,"steps":[{"id":"a","type":"tool","tool":"poll","args":{"status":"SUCCESS"},"next_step":"a"}]}`)})
	e, ok := runtime.AsError(err)
	if want := `invalid program: program field "max_steps": 3 is above the server's ceiling of 2 steps per run (NANO_VM_MCP_MAX_STEPS)`; !ok || e.Code != runtime.CodeInvalidProgram || e.Message != want {
		t.Fatalf("err = %v\nwant  %s", err, want)
	}
	res, err := rt.RunProgram(ctx, runtime.RunRequest{Program: json.RawMessage(`{"steps":[
		{"id":"a","type":"tool","tool":"poll","args":{"status":"SUCCESS"}},
		{"id":"b","type":"tool","tool":"poll","args":{"status":"SUCCESS"}},
		{"id":"c","type":"tool","tool":"poll","args":{"status":"SUCCESS"}}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != "budget_exceeded" || res.Steps != 2 || res.Error != "the server's ceiling of 2 steps per run exceeded" {
		t.Fatalf("result %+v", res)
	}
	rep, err := rt.Replay(ctx, res.TraceID)
	if err != nil || !rep.Equivalent {
		t.Fatalf("replay of the capped run: %v %+v", err, rep)
	}
}

// Ensure the configured tool ceilings reach the registry: an upload above
// one is refused naming the field and the ceiling.
func TestToolCeilingsConfigured(t *testing.T) {
	rt := openRuntime(t, runtime.Config{Ceilings: tools.Ceilings{CallMemoryMiB: 8}})
	m := runtimetest.TestTool(t, "memtouch")
	manifest := []byte(`{"name":"memtouch","limits":{"memory_mib":64}}`)
	_, err := rt.RegisterTool(context.Background(), manifest, m.Wasm)
	e, ok := runtime.AsError(err)
	want := `register tool "memtouch": manifest "memtouch": limits.memory_mib 64 is above the server's ceiling of 8`
	if !ok || e.Code != runtime.CodeToolRejected || e.Message != want || !errors.Is(err, tools.ErrAboveCeiling) {
		t.Fatalf("err = %v\nwant  %s", err, want)
	}
}

// Ensure the operator's module ceilings reach the registry: a module larger
// than the configured size is refused at registration, naming the ceiling,
// before anything of it is compiled.
func TestModuleLimitsConfigured(t *testing.T) {
	rt := openRuntime(t, runtime.Config{ModuleLimits: tools.ModuleLimits{ModuleBytes: 1024}})
	m := runtimetest.BundledTool(t, "validate_amount")
	_, err := rt.RegisterToolLocal(context.Background(), m.Manifest, m.Wasm)
	if e, ok := runtime.AsError(err); !ok || e.Code != runtime.CodeToolRejected || !errors.Is(err, tools.ErrModuleLimit) || !strings.Contains(e.Message, "1024") {
		t.Fatalf("err = %v, want a refusal naming the 1024-byte ceiling", err)
	}
}
