package kernel_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/kernel"
)

// Ensure the original's example programs load without problems.
func TestLoadExamplePrograms(t *testing.T) {
	for _, name := range []string{"customer_refund", "momo_success"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile("testdata/programs/" + name + ".json")
			if err != nil {
				t.Fatal(err)
			}
			p, warns, err := kernel.LoadProgram(data)
			if err != nil {
				t.Fatal(err)
			}
			if p.Name != name || p.Version != "1.0" {
				t.Errorf("name %q version %q", p.Name, p.Version)
			}
			if len(warns) != 0 {
				t.Errorf("warnings: %v", warns)
			}
		})
	}
}

// Ensure each kind of invalid program is rejected before it runs, with an
// error naming the step and the field.
func TestLoadProgramErrors(t *testing.T) {
	tests := []struct {
		name      string
		src       string
		wantStep  string
		wantField string
		wantMsg   string
	}{
		{"not json", `{"steps":`, "", "", "unexpected EOF"},
		{"unknown top-level field", `{"steps":[{"id":"a","type":"tool","tool":"t"}],"stepz":1}`, "", "stepz", "unknown field"},
		{"unknown step field", `{"steps":[{"id":"a","type":"tool","tool":"t","toool":"x"}]}`, "a", "toool", "unknown field"},
		{"wrong field type", `{"steps":[{"id":"a","type":"tool","tool":7}]}`, "a", "tool", "must be a string"},
		{"no steps", `{"steps":[]}`, "", "steps", "at least one step"},
		{"missing id", `{"steps":[{"type":"tool","tool":"t"}]}`, "#0", "id", "needs an id"},
		{"duplicate id", `{"steps":[{"id":"a","type":"tool","tool":"t"},{"id":"a","type":"tool","tool":"t"}]}`, "a", "id", "duplicate step id"},
		{"unknown type", `{"steps":[{"id":"a","type":"shell"}]}`, "a", "type", "unknown step type"},
		{"missing type", `{"steps":[{"id":"a"}]}`, "a", "type", "missing"},
		{"tool without tool", `{"steps":[{"id":"a","type":"tool"}]}`, "a", "tool", "needs the name"},
		{"llm without prompt", `{"steps":[{"id":"a","type":"llm"}]}`, "a", "prompt", "needs a prompt"},
		{"condition without expression", `{"steps":[{"id":"a","type":"condition","then":"a"}],"max_steps":3}`, "a", "condition", "needs an expression"},
		{"condition without targets", `{"steps":[{"id":"a","type":"condition","condition":"True"}]}`, "a", "then", "then, otherwise or both"},
		{"dangling then", `{"steps":[{"id":"a","type":"condition","condition":"True","then":"nope"}]}`, "a", "then", `no step has id "nope"`},
		{"dangling otherwise", `{"steps":[{"id":"a","type":"condition","condition":"True","then":"b","otherwise":"zz"},{"id":"b","type":"tool","tool":"t"}]}`, "a", "otherwise", `no step has id "zz"`},
		{"dangling next_step", `{"steps":[{"id":"a","type":"tool","tool":"t","next_step":"gone"}]}`, "a", "next_step", `no step has id "gone"`},
		{"allowed_outputs on a tool", `{"steps":[{"id":"a","type":"tool","tool":"t","allowed_outputs":["x"]}]}`, "a", "allowed_outputs", "does not apply to a tool step"},
		{"empty allowed_outputs", `{"steps":[{"id":"a","type":"llm","prompt":"p","allowed_outputs":[]}]}`, "a", "allowed_outputs", "at least one"},
		{"condition sub-step", `{"steps":[{"id":"p","type":"parallel","parallel_steps":[{"id":"c","type":"condition","condition":"True","then":"p"}]}]}`, "p/c", "type", "only hold llm and tool"},
		{"parallel without sub-steps", `{"steps":[{"id":"p","type":"parallel"}]}`, "p", "parallel_steps", "at least one sub-step"},
		{"unparsable condition", `{"steps":[{"id":"a","type":"condition","condition":"$x == # 1","then":"a"}],"max_steps":2}`, "a", "condition", "column"},
		{"cycle without max_steps", `{"steps":[{"id":"a","type":"tool","tool":"t","next_step":"b"},{"id":"b","type":"tool","tool":"t","next_step":"a"}]}`, "b", "", "cycle a → b → a has no bound"},
		{"bad on_error", `{"steps":[{"id":"a","type":"tool","tool":"t","on_error":"ignore"}]}`, "a", "on_error", "unknown policy"},
		{"zero max_retries", `{"steps":[{"id":"a","type":"tool","tool":"t","on_error":"retry","max_retries":0}]}`, "a", "max_retries", "at least 1"},
		{"bad on_timeout", `{"steps":[{"id":"a","type":"tool","tool":"t","timeout_seconds":1,"on_timeout":"ignore"}]}`, "a", "on_timeout", "unknown value"},
		{"on_timeout without timeout", `{"steps":[{"id":"a","type":"tool","tool":"t","on_timeout":"fallback"}]}`, "a", "on_timeout", "needs timeout_seconds"},
		{"negative budget", `{"steps":[{"id":"a","type":"tool","tool":"t"}],"max_steps":-1}`, "", "max_steps", "negative"},
		{"reserved output_key", `{"steps":[{"id":"a","type":"tool","tool":"t","output_key":"__webhook__"}]}`, "a", "output_key", "reserved"},
		{"next_step in sub-step", `{"steps":[{"id":"p","type":"parallel","parallel_steps":[{"id":"s","type":"tool","tool":"t","next_step":"p"}]}]}`, "p/s", "next_step", "does not apply"},
		{"trailing data", `{"steps":[{"id":"a","type":"tool","tool":"t"}]} {}`, "", "", "unexpected data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := kernel.LoadProgram([]byte(tt.src))
			var ve *kernel.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v (%T), want *ValidationError", err, err)
			}
			for _, p := range ve.Problems {
				if p.Step == tt.wantStep && p.Field == tt.wantField && strings.Contains(p.Msg, tt.wantMsg) {
					return
				}
			}
			t.Fatalf("no problem with step %q field %q message ~%q in:\n%v", tt.wantStep, tt.wantField, tt.wantMsg, err)
		})
	}
}

// Ensure a program reports every problem at once, not just the first.
func TestLoadProgramReportsAllProblems(t *testing.T) {
	_, _, err := kernel.LoadProgram([]byte(`{"steps":[{"id":"a","type":"tool"},{"id":"b","type":"llm"}]}`))
	var ve *kernel.ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 2 {
		t.Fatalf("got %v", err)
	}
}

// Ensure unreachable steps are warnings, not errors.
func TestUnreachableWarning(t *testing.T) {
	_, warns, err := kernel.LoadProgram([]byte(`{"steps":[
		{"id":"a","type":"tool","tool":"t","is_terminal":true},
		{"id":"orphan","type":"tool","tool":"t"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 1 || warns[0].Step != "orphan" || !strings.Contains(warns[0].Msg, "unreachable") {
		t.Fatalf("warnings %v", warns)
	}
}

// Ensure a bounded loop is accepted.
func TestCycleWithMaxSteps(t *testing.T) {
	_, _, err := kernel.LoadProgram([]byte(`{"max_steps":10,"steps":[{"id":"a","type":"tool","tool":"t","next_step":"a"}]}`))
	if err != nil {
		t.Fatal(err)
	}
}

// Ensure a program that was never validated cannot run.
func TestUnvalidatedProgramRefused(t *testing.T) {
	p := &kernel.Program{Steps: []kernel.Step{{ID: "a", Type: kernel.StepTool, Tool: "t"}}}
	_, err := kernel.NewMachine(nil).Start(t.Context(), p, nil, "")
	if !errors.Is(err, kernel.ErrNotValidated) {
		t.Fatalf("err %v", err)
	}
}
