package runtime

import (
	"encoding/json"
	"testing"
)

// Ensure a direct call's program carries every argument as a $reference
// to the run's input, whatever its name or value, so no value is read as
// a reference of its own and every name reaches the tool as it is.
func TestDirectProgram(t *testing.T) {
	tests := []struct {
		name      string
		args      map[string]any
		wantArgs  string
		wantInput string
	}{
		{"no arguments", nil, `null`, `{}`},
		{"plain names", map[string]any{"amount": 1, "note": "$amount"}, `{"amount":"$amount","note":"$note"}`, `{"amount":1,"note":"$amount"}`},
		{"names a reference cannot spell", map[string]any{"a.b": 1, "2x": 2, "ok": 3}, `{"2x":"$arg_0","a.b":"$arg_1","ok":"$ok"}`, `{"arg_0":2,"arg_1":1,"ok":3}`},
		{"generated key taken", map[string]any{"arg_0": "mine", "a b": "odd"}, `{"a b":"$arg_1","arg_0":"$arg_0"}`, `{"arg_0":"mine","arg_1":"odd"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, input, err := directProgram("echo", tt.args)
			if err != nil {
				t.Fatal(err)
			}
			var prog struct {
				Name  string `json:"name"`
				Steps []struct {
					ID, Type, Tool string
					Args           map[string]any `json:"args"`
					Terminal       bool           `json:"is_terminal"`
				} `json:"steps"`
			}
			if err := json.Unmarshal(raw, &prog); err != nil {
				t.Fatal(err)
			}
			if prog.Name != "tool:echo" || len(prog.Steps) != 1 || prog.Steps[0].ID != "call" || prog.Steps[0].Tool != "echo" || !prog.Steps[0].Terminal {
				t.Fatalf("program %s", raw)
			}
			a, _ := json.Marshal(prog.Steps[0].Args)
			in, _ := json.Marshal(input)
			if string(a) != tt.wantArgs || string(in) != tt.wantInput {
				t.Fatalf("args %s input %s, want %s %s", a, in, tt.wantArgs, tt.wantInput)
			}
		})
	}
	if _, _, err := directProgram("", nil); err == nil {
		t.Fatal("no tool name accepted")
	}
}
