package kernel

import (
	"strings"
	"testing"
)

// Ensure RefWarnings flags exactly the $references whose head names no
// input key, step id, output_key or runtime key, in args (at any depth),
// prompts, system prompts and conditions, with the closest known names,
// and says nothing of references that resolve.
func TestRefWarnings(t *testing.T) {
	tests := []struct {
		name  string
		prog  string
		input map[string]any
		want  []string // each warning's String(), in order; nil: none
	}{
		{
			name:  "all known",
			prog:  `{"steps":[{"id":"v","type":"tool","tool":"t","args":{"a":"$amount","b":"id $order_id","c":"$v.output.x","d":"$res.k","e":"$__webhook__.s","f":"costs $5"},"output_key":"res"}]}`,
			input: map[string]any{"amount": 1, "order_id": "o"},
		},
		{
			name:  "typo in args",
			prog:  `{"steps":[{"id":"v","type":"tool","tool":"t","args":{"amount":"$amout"}}]}`,
			input: map[string]any{"amount": 1},
			want:  []string{`step "v": args.amount: $amout matches no input key, step id or output_key, so it is passed to the tool as the literal text; did you mean $amount?`},
		},
		{
			name:  "nested, interpolated, once per step",
			prog:  `{"steps":[{"id":"v","type":"tool","tool":"t","args":{"x":{"deep":["$nope.a", "and $nope.a again"]}}}]}`,
			input: map[string]any{},
			want:  []string{`step "v": args.x: $nope.a matches no input key, step id or output_key, so it is passed to the tool as the literal text`},
		},
		{
			name: "prompt, system, condition",
			prog: `{"steps":[{"id":"ask","type":"llm","prompt":"Is $custmer ok?","system":"You judge $policy_name"},
				{"id":"c","type":"condition","condition":"$ask == 'yes' and $scroe > 3","then":"ask"}],"max_steps":3}`,
			input: map[string]any{"customer": "c", "score": 1},
			want: []string{
				`step "ask": prompt: $custmer matches no input key, step id or output_key, so the model gets the literal text; did you mean $customer?`,
				`step "ask": system: $policy_name matches no input key, step id or output_key, so the model gets the literal text`,
				`step "c": condition: $scroe matches no input key, step id or output_key, so it reads as null; did you mean $score?`,
			},
		},
		{
			name: "a sub-step id is not a variable; its output_key is",
			prog: `{"steps":[{"id":"fan","type":"parallel","parallel_steps":[{"id":"a","type":"tool","tool":"t","output_key":"a_out"},{"id":"b","type":"tool","tool":"t"}]},
				{"id":"use","type":"tool","tool":"t","args":{"x":"$a_out","y":"$b.k"}}]}`,
			want: []string{`step "use": args.y: $b.k matches no input key, step id or output_key, so it is passed to the tool as the literal text; "b" is a sub-step of parallel step "fan", whose output holds it: write $fan.b.k`},
		},
		{
			name:  "a key known only from this run's input",
			prog:  `{"steps":[{"id":"v","type":"tool","tool":"t","args":{"x":"$extra"}}]}`,
			input: map[string]any{"extra": true},
		},
		{
			name: "a reserved key the runtime never writes",
			prog: `{"steps":[{"id":"v","type":"tool","tool":"t","args":{"x":"$__secret__"}}]}`,
			want: []string{`step "v": args.x: $__secret__ matches no input key, step id or output_key, so it is passed to the tool as the literal text`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _, err := LoadProgram([]byte(tt.prog))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range p.RefWarnings(tt.input) {
				got = append(got, w.String())
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// FuzzRefsIn holds refsIn to resolveString: the references RefWarnings
// checks in a string are exactly the paths resolving it looks up.
func FuzzRefsIn(f *testing.F) {
	for _, s := range []string{"", "$a", "x $a.b y", "$$a", "costs $5", "$a.", "$a..b", "$_x-y.z1", "é$b", "$a$b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var looked []string
		resolveString(s, func(path string) (any, bool) {
			looked = append(looked, path)
			return nil, false
		})
		got := refsIn(s, nil)
		if strings.Join(got, "\x00") != strings.Join(looked, "\x00") {
			t.Fatalf("refsIn(%q) = %q, resolveString looks up %q", s, got, looked)
		}
	})
}
