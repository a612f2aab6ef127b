package projection

import "testing"

// cleanState is a typical state with nothing to redact.
func cleanState() map[string]any {
	return map[string]any{
		"order_id":  "ord-abc",
		"amount":    129.99,
		"currency":  "EUR",
		"approved":  true,
		"customer":  map[string]any{"name": "Ada Lovelace", "tier": "gold", "since": "2019-04-01"},
		"items":     []any{map[string]any{"sku": "A-1", "qty": 1.0}, map[string]any{"sku": "B-2", "qty": 3.0}},
		"notes":     "ship fast, gift wrap",
		"tags":      []any{"priority", "eu", "gift"},
		"__retry__": map[string]any{"count": 0.0},
	}
}

// BenchmarkProjectState measures each target on a clean state and on the
// test state, which exercises every rule.
func BenchmarkProjectState(b *testing.B) {
	for _, sc := range []struct {
		name  string
		state map[string]any
	}{
		{name: "clean", state: cleanState()},
		{name: "redacting", state: testState()},
	} {
		for _, target := range []Target{LLM, Trace, Tool} {
			opts := Options{Refs: testVault, ToolKeys: []string{"customer", "notes", "note", "items"}}
			b.Run(sc.name+"/"+target.String(), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					ProjectState(sc.state, target, opts)
				}
			})
		}
	}
}

// BenchmarkLLMString measures the per-string cost of the LLM rules.
func BenchmarkLLMString(b *testing.B) {
	p := projector{target: LLM, refs: testVault}
	for _, bc := range []struct{ name, s string }{
		{name: "clean", s: "Please ship the order by Friday 2024-05-03, gift wrapped."},
		{name: "pii", s: "Contact ada@example.com or +44 20 7946 0958; card 4111 1111 1111 1111."},
		{name: "ref", s: "use vault://secret/stripe-key for the charge"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = p.str(bc.s)
			}
		})
	}
}
