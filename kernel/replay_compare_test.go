package kernel_test

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nanovm/nano-vm-mcp/kernel"
)

// Ensure replay's output comparison says "same" exactly when the outputs'
// canonical texts are equal, which is what it compared before it learned
// to skip the encoding.
func TestSameOutputIsCanonicalTextEquality(t *testing.T) {
	values := []any{
		nil, true, false, "", "a", "1", 0.0, math.Copysign(0, -1), 1.0, 1.5, math.NaN(), math.Inf(1),
		1, int64(1), float32(1), json.Number("1"), json.Number("1.0"), json.RawMessage(`1`), json.RawMessage(`{"b":1,"a":2}`),
		map[string]any(nil), map[string]any{}, map[string]any{"a": 1.0}, map[string]any{"a": 1}, map[string]any{"a": 1.0, "b": nil},
		map[string]any{"a": 2.0, "b": 1.0}, map[string]string{"a": "x"}, map[string]any{"a": "x"},
		[]any(nil), []any{}, []any{1.0}, []any{1}, []any{1.0, "x"}, []string{"x"}, []any{"x"},
		struct{ A int }{1}, map[string]any{"A": 1.0}, []any{map[string]any{"n": []any{nil, math.NaN()}}},
		"\xff", "\ufffd",
	}
	check := func(a, b any) {
		t.Helper()
		if got, want := kernel.SameOutput(a, b), kernel.OutputText(a) == kernel.OutputText(b); got != want {
			t.Fatalf("SameOutput(%#v, %#v) = %v; texts %s and %s", a, b, got, kernel.OutputText(a), kernel.OutputText(b))
		}
	}
	for _, a := range values {
		for _, b := range values {
			check(a, b)
		}
	}
	// Random JSON trees, compared with themselves, with a copy, and with a
	// copy changed in one leaf.
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		v := randomJSON(r, 4)
		var cp any
		b, _ := json.Marshal(v)
		_ = json.Unmarshal(b, &cp)
		check(v, v)
		check(v, cp)
		check(v, mutateLeaf(r, cp))
	}
}

func randomJSON(r *rand.Rand, depth int) any {
	k := r.IntN(8)
	if depth == 0 {
		k = r.IntN(4)
	}
	switch k {
	case 0:
		return nil
	case 1:
		return r.IntN(2) == 0
	case 2:
		return []string{"", "a", "b", "é"}[r.IntN(4)]
	case 3:
		return []float64{0, 1, -1, 0.5, 1e21, math.Copysign(0, -1)}[r.IntN(6)]
	case 4, 5:
		m := map[string]any{}
		for range r.IntN(4) {
			m[string(rune('a'+r.IntN(4)))] = randomJSON(r, depth-1)
		}
		return m
	default:
		s := make([]any, r.IntN(4))
		for i := range s {
			s[i] = randomJSON(r, depth-1)
		}
		return s
	}
}

// mutateLeaf changes v in place somewhere (or replaces it) and returns it.
func mutateLeaf(r *rand.Rand, v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = mutateLeaf(r, e)
			return x
		}
		x["new"] = 1.0
		return x
	case []any:
		if len(x) == 0 {
			return append(x, nil)
		}
		i := r.IntN(len(x))
		x[i] = mutateLeaf(r, x[i])
		return x
	}
	return randomJSON(r, 0)
}
