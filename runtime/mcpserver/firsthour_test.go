package mcpserver

import (
	"fmt"
	"strings"
	"testing"
)

// Ensure over a real stdio pipe that run_program lists a $reference that
// matches nothing as a warning in its answer (naming the step, the field
// and the closest name), that strict refuses the same program before
// anything runs, and that a tool step naming an unregistered tool is
// refused with unknown_tool and the closest registered names.
func TestRunExplainsMistakes(t *testing.T) {
	s := newServer(t, nil)
	c := pipeClient(t, s)
	typo := `{"name":"typo","steps":[{"id":"validate","type":"tool","tool":"validate_amount","args":{"amount":"$amout"}}]}`
	input := map[string]any{"amount": 5}
	traces := func() int {
		page := ok(t, s, "list_traces", call(t, c, "list_traces", map[string]any{"limit": 100}))
		return len(page["traces"].([]any))
	}

	run := ok(t, s, "run_program", call(t, c, "run_program", map[string]any{"program": typo, "input": input}))
	warnings := fmt.Sprint(run["warnings"])
	for _, w := range []string{`step "validate": args.amount: $amout matches no input key`, "literal text", "did you mean $amount?"} {
		if !strings.Contains(warnings, w) {
			t.Errorf("warnings %s lack %q", warnings, w)
		}
	}
	if fixed := ok(t, s, "run_program", call(t, c, "run_program", map[string]any{"program": strings.Replace(typo, "$amout", "$amount", 1), "input": input})); fixed["warnings"] != nil {
		t.Errorf("a program whose references resolve got warnings %v", fixed["warnings"])
	}

	before := traces()
	e := toolErr(t, "run_program", call(t, c, "run_program", map[string]any{"program": typo, "input": input, "strict": true, "save_as": "typo"}))
	if e["error"] != "invalid_program" || !strings.Contains(fmt.Sprint(e["message"]), "strict") || !strings.Contains(fmt.Sprint(e["warnings"]), "$amout") {
		t.Errorf("strict: %v", e)
	}
	if n := traces(); n != before {
		t.Errorf("strict refusal recorded a run: %d traces, had %d", n, before)
	}
	if g := toolErr(t, "get_program", call(t, c, "get_program", map[string]any{"program_id": "typo"})); g["error"] != "not_found" {
		t.Errorf("strict refusal saved the program: %v", g)
	}

	e = toolErr(t, "run_program", call(t, c, "run_program", map[string]any{
		"program": `{"name":"t","steps":[{"id":"v","type":"tool","tool":"validate_amout","args":{"amount":1}}]}`,
	}))
	if e["error"] != "unknown_tool" || !strings.Contains(fmt.Sprint(e["message"]), `"validate_amout" (closest registered: "validate_amount")`) ||
		fmt.Sprint(e["unknown_tools"]) != "[validate_amout]" {
		t.Errorf("unknown tool: %v", e)
	}
	if n := traces(); n != before {
		t.Errorf("unknown tool recorded a run: %d traces, had %d", n, before)
	}
}
