package canonical

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzCanonical ensures that for any JSON text encoding/json accepts, Marshal
// never panics, its output is a fixed point, and it agrees with encoding a
// value decoded by encoding/json whenever both succeed.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{
		`{"b":1,"a":[true,false,null]}`, `"\u20ac\ud83d\ude00"`, `1e21`, `-0.0`,
		`{"\ue000":1,"\ud83d\ude00":2}`, `[1E400]`, `{"a":1,"a":2}`, `"\udc00"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		out, err := Marshal(json.RawMessage(data))
		if err != nil {
			return // duplicate names, invalid UTF-8, lone surrogates, overflow
		}
		again, err := Marshal(json.RawMessage(out))
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %s -> %s, %v", out, again, err)
		}
		if !json.Valid(out) {
			t.Fatalf("output is not JSON: %s", out)
		}
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			return
		}
		viaValue, err := Marshal(v)
		if err != nil {
			t.Fatalf("decoded value failed where raw succeeded: %v", err)
		}
		if !bytes.Equal(viaValue, out) {
			t.Fatalf("raw and decoded disagree:\n%s\n%s", out, viaValue)
		}
	})
}
