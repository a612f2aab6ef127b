package runtime_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/runtime"
)

// Ensure the bundled jq tool, a WASI command program called through its
// manifest's command section, runs inside a program: its results are the
// step's output in the trace and the run's final output, a filter that
// does not parse fails the step with jq's own message, and both runs leave
// envelopes that verify.
func TestJQInProgram(t *testing.T) {
	rt := openRuntime(t, runtime.Config{})
	ctx := context.Background()
	tests := []struct {
		name       string
		args       string
		input      map[string]any
		wantStatus kernel.Status
		wantOutput any
		wantError  string
	}{
		{name: "literal arguments", args: `{"filter": ".a", "input": "{\"a\":1}"}`, wantStatus: "success",
			wantOutput: map[string]any{"results": []any{1.0}}},
		{name: "input from the run", args: `{"filter": ".items[] | .id", "input": "$doc"}`, input: map[string]any{"doc": `{"items": [{"id": "x"}, {"id": "y"}]}`},
			wantStatus: "success", wantOutput: map[string]any{"results": []any{"x", "y"}}},
		{name: "a value from the run", args: `{"filter": "[.items[] | .n] | add", "input": "$order"}`, input: map[string]any{"order": map[string]any{"items": []any{map[string]any{"n": 2}, map[string]any{"n": 3}}}},
			wantStatus: "success", wantOutput: map[string]any{"results": []any{5.0}}},
		{name: "bad filter", args: `{"filter": ".a |", "input": "{}"}`, wantStatus: "failed",
			wantError: "jq: error: the filter does not parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prog := `{"name": "jq", "steps": [{"id": "q", "type": "tool", "tool": "jq", "args": ` + tt.args + `, "output_key": "q"}]}`
			res, err := rt.RunProgram(ctx, runtime.RunRequest{Program: json.RawMessage(prog), Input: tt.input})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tt.wantStatus {
				t.Fatalf("status %q (%s), want %q", res.Status, res.Error, tt.wantStatus)
			}
			tv, err := rt.Trace(ctx, res.TraceID, 0, 0)
			if err != nil || len(tv.Steps) != 1 {
				t.Fatalf("trace %+v %v", tv, err)
			}
			step := tv.Steps[0]
			if tt.wantOutput != nil && !reflect.DeepEqual(step.Output, tt.wantOutput) {
				t.Fatalf("step output %#v, want %#v", step.Output, tt.wantOutput)
			}
			if tt.wantError != "" && !strings.Contains(step.Error, tt.wantError) {
				t.Fatalf("step error %q, want %q", step.Error, tt.wantError)
			}
			if step.Tool == nil || len(step.Tool.ModuleSHA256) != 64 {
				t.Fatalf("step provenance %+v", step.Tool)
			}
			envs, err := rt.Envelopes(ctx, res.TraceID)
			if err != nil || len(envs) != 1 {
				t.Fatalf("envelopes %d %v, want one", len(envs), err)
			}
			rep, err := rt.VerifyAudit(ctx, res.TraceID)
			if err != nil || !rep.OK {
				t.Fatalf("verify %+v %v", rep, err)
			}
		})
	}
}
