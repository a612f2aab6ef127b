package kernel_test

import (
	"reflect"
	"testing"
)

// TestRefWarningsShortcut holds RefWarnings, which only checks that the
// input defines the references the program leaves open, to the full
// computation, for every subset of the input keys the programs read (and
// an unrelated key): none, some, all.
func TestRefWarningsShortcut(t *testing.T) {
	progs := map[string]string{
		"refund": refundPipeline,
		"mixed": `{"name":"m","steps":[
 {"id":"a","type":"tool","tool":"t","args":{"x":"$in.k","y":["$a.output","costs $5 for $who"],"z":{"w":"$sub"}},"output_key":"ak"},
 {"id":"p","type":"parallel","parallel_steps":[{"id":"sub","type":"tool","tool":"t","output_key":"sk","args":{"q":"$ak"}},{"id":"s2","type":"llm","prompt":"hi $sk $nope","system":"be $tone"}]},
 {"id":"c","type":"condition","condition":"$who == 'x' and $__webhook__.k","then":"a"}],"max_steps":9}`,
	}
	keys := []string{"request", "order_id", "in", "who", "tone", "nope", "sub", "unrelated"}
	for name, src := range progs {
		p := mustLoad(t, src)
		for mask := range 1 << len(keys) {
			input := map[string]any{}
			for i, k := range keys {
				if mask&(1<<i) != 0 {
					input[k] = 1.0
				}
			}
			got, want := p.RefWarnings(input), p.RefWarningsInFull(input)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s, input %v: RefWarnings %v, in full %v", name, input, got, want)
			}
		}
	}
}
