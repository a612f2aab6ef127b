package canonical

import (
	"encoding/json"
	"fmt"
	"testing"
)

// nestedState is a typical kernel state: ten keys, some nested.
func nestedState() map[string]any {
	return map[string]any{
		"order_id":  "ord_12345",
		"amount":    129.99,
		"currency":  "EUR",
		"approved":  true,
		"attempts":  float64(2),
		"customer":  map[string]any{"name": "Ada Lovelace", "email": "ada@example.com", "tier": "gold"},
		"items":     []any{map[string]any{"sku": "A-1", "qty": float64(1)}, map[string]any{"sku": "B-2", "qty": float64(3)}},
		"notes":     "ship \"fast\" <express>\n",
		"tags":      []any{"priority", "eu", "gift"},
		"__retry__": map[string]any{"count": float64(0), "last": nil},
	}
}

func bigObject() map[string]any {
	m := make(map[string]any, 1000)
	for i := range 1000 {
		m[fmt.Sprintf("key-%04d", i)] = float64(i) * 1.5
	}
	return m
}

// benchState is a state the benchmarks measure, by name.
type benchState struct {
	name string
	v    map[string]any
}

// benchStates are a typical state and a large flat one.
func benchStates() []benchState {
	return []benchState{{name: "nested-10-keys", v: nestedState()}, {name: "flat-1000-keys", v: bigObject()}}
}

// BenchmarkAppend measures the hot path: canonical bytes of decoded state.
func BenchmarkAppend(b *testing.B) {
	for _, bc := range benchStates() {
		b.Run(bc.name, func(b *testing.B) {
			buf, _ := Append(nil, bc.v)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = Append(buf[:0], bc.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHash measures a state hash, as the kernel takes one per step.
func BenchmarkHash(b *testing.B) {
	for _, bc := range benchStates() {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Hash(bc.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRaw measures re-canonicalizing JSON text, against encoding/json's
// decode-then-encode as a yardstick.
func BenchmarkRaw(b *testing.B) {
	for _, bc := range benchStates() {
		raw, _ := json.Marshal(bc.v)
		b.Run(bc.name+"/canonical", func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			var buf []byte
			for b.Loop() {
				var err error
				if buf, err = Append(buf[:0], json.RawMessage(raw)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bc.name+"/encoding-json", func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				var v any
				if err := json.Unmarshal(raw, &v); err != nil {
					b.Fatal(err)
				}
				if _, err := json.Marshal(v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMerkleRoot measures committing to a run's step hashes.
func BenchmarkMerkleRoot(b *testing.B) {
	for _, n := range []int{16, 1000} {
		leaves := testLeaves(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := MerkleRoot(leaves); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppendRaw measures canonicalizing JSON text: an envelope
// payload already canonical (checked, then copied) and the same members
// out of order (parsed and rearranged).
func BenchmarkAppendRaw(b *testing.B) {
	for _, bc := range []struct{ name, raw string }{
		{"canonical", `{"output":{"amount":129.5,"currency":"EUR","items":[1,2,3],"order_id":"A-1042","status":"shipped"},"tool_grants":{},"tool_source":"operator"}`},
		{"unsorted", `{"tool_source":"operator","tool_grants":{},"output":{"status":"shipped","order_id":"A-1042","items":[1,2,3],"currency":"EUR","amount":129.5}}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var v any = json.RawMessage(bc.raw)
			buf := make([]byte, 0, 512)
			b.SetBytes(int64(len(bc.raw)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = Append(buf[:0], v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
