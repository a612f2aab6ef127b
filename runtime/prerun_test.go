package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/store"
)

// Ensure a tool step naming a tool nothing is registered under, at the top
// level or inside a parallel step, is refused before the run starts with
// code unknown_tool, the names, and the closest registered names; nothing
// is recorded.
func TestUnknownToolRefusedBeforeRun(t *testing.T) {
	ctx := context.Background()
	rt := openRuntime(t, runtime.Config{})
	tests := []struct {
		name        string
		steps       string
		unknown     string
		suggestions string
		message     []string
	}{
		{
			name:        "typo",
			steps:       `{"id":"v","type":"tool","tool":"valdate_amount","args":{"amount":1}}`,
			unknown:     "[valdate_amount]",
			suggestions: "map[valdate_amount:[validate_amount]]",
			message:     []string{`"valdate_amount"`, `closest registered: "validate_amount"`, "nothing ran", "tool add"},
		},
		{
			name: "in a parallel step, with one nothing is near",
			steps: `{"id":"v","type":"tool","tool":"validate_amount","args":{"amount":1}},
				{"id":"p","type":"parallel","parallel_steps":[{"id":"a","type":"tool","tool":"reserve_fund"},{"id":"b","type":"tool","tool":"zzzzzzzz"}]}`,
			unknown:     "[reserve_fund zzzzzzzz]",
			suggestions: "map[reserve_fund:[reserve_funds] zzzzzzzz:[]]",
			message:     []string{`"reserve_fund" (closest registered: "reserve_funds")`, `"zzzzzzzz"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, err := rt.Traces(ctx, store.RunFilter{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			res, err := rt.RunProgram(ctx, runtime.RunRequest{Program: json.RawMessage(`{"name":"typo","steps":[` + tt.steps + `]}`)})
			e, ok := runtime.AsError(err)
			if !ok || e.Code != runtime.CodeUnknownTool || res != nil {
				t.Fatalf("RunProgram = %+v, %v; want an unknown_tool error", res, err)
			}
			if got := fmt.Sprint(e.Details["unknown_tools"]); got != tt.unknown {
				t.Errorf("unknown_tools = %s, want %s", got, tt.unknown)
			}
			if got := fmt.Sprint(e.Details["suggestions"]); got != tt.suggestions {
				t.Errorf("suggestions = %s, want %s", got, tt.suggestions)
			}
			for _, w := range tt.message {
				if !strings.Contains(e.Message, w) {
					t.Errorf("message %q lacks %q", e.Message, w)
				}
			}
			after, err := rt.Traces(ctx, store.RunFilter{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			if len(after.Runs) != len(before.Runs) {
				t.Errorf("a refused program recorded a run")
			}
		})
	}
}
