package tools

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/internal/jsonlimit"
)

var flatCases = []struct {
	in   string
	flat bool // decodeFlat takes it
}{
	{`{"order_id":"o-1","amount":12345}`, true},
	{` { "a" : 1 , "b" : "x" } `, true},
	{`{}`, true},
	{`{"a":true,"b":false,"c":null}`, true},
	{`{"a":1,"a":2}`, true}, // the last wins, as json.Unmarshal into a map
	{`{"k\u00e9y":"v\n\"q\"","\ud83d\ude00":-0}`, true},
	{`{"a":1e400}`, false}, // out of float64's range: encoding/json refuses
	{`{"a":-0.5e-3,"b":123456789012345678901}`, true},
	{`{"a":{"b":1}}`, false},
	{`{"a":[1]}`, false},
	{`{"a":nul}`, false},
	{`{"a":1,}`, false},
	{`{"a":1} x`, false},
	{`{"a" 1}`, false},
	{`["a"]`, false},
	{`"s"`, false},
	{`{"a":"\x"}`, false},
	{"{\"a\":\"\xff\"}", true}, // invalid UTF-8 becomes U+FFFD
	{`{"a":01}`, false},
	// Longer than jsonlimit.MaxNumberLen: encoding/json takes it, the
	// output check refuses it, which decodeFlat must leave to it.
	{`{"a":1` + strings.Repeat("0", jsonlimit.MaxNumberLen) + `}`, false},
	{`{"a":1` + strings.Repeat("0", jsonlimit.MaxNumberLen-1) + `}`, true},
	{`{"a":1e-400}`, true}, // underflows to 0, in range for both
}

// Ensure decodeFlat decodes exactly what encoding/json does, takes only
// flat objects, and nothing jsonlimit.Check refuses (decodeOutput does not
// check what it takes).
func TestDecodeFlat(t *testing.T) {
	for _, tc := range flatCases {
		got, ok := decodeFlat([]byte(tc.in))
		if ok != tc.flat {
			t.Errorf("%s: taken = %v, want %v", tc.in, ok, tc.flat)
			continue
		}
		if !ok {
			continue
		}
		if err := jsonlimit.Check([]byte(tc.in)); err != nil {
			t.Errorf("%s: decodeFlat took what the output check refuses: %v", tc.in, err)
		}
		var want any
		if err := json.Unmarshal([]byte(tc.in), &want); err != nil {
			t.Errorf("%s: decodeFlat took what encoding/json refuses: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(any(got), want) {
			t.Errorf("%s: got %#v, want %#v", tc.in, got, want)
		}
	}
}

// FuzzDecodeFlat checks that whatever decodeFlat takes, encoding/json
// takes too and decodes to the same value, and jsonlimit.Check accepts.
func FuzzDecodeFlat(f *testing.F) {
	for _, tc := range flatCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, ok := decodeFlat(in)
		if !ok {
			return
		}
		if err := jsonlimit.Check(in); err != nil {
			t.Fatalf("%q: decodeFlat took what the output check refuses: %v", in, err)
		}
		var want any
		if err := json.Unmarshal(in, &want); err != nil {
			t.Fatalf("%q: decodeFlat took what encoding/json refuses: %v", in, err)
		}
		if !reflect.DeepEqual(any(got), want) {
			t.Fatalf("%q: got %#v, want %#v", in, got, want)
		}
	})
}

// BenchmarkDecodeOutput measures the decoding of get_order_amount's
// output, the flat object nearly every tool prints.
func BenchmarkDecodeOutput(b *testing.B) {
	out := []byte(`{"order_id":"o-12345","amount":12345}` + "\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeOutput(out); err != nil {
			b.Fatal(err)
		}
	}
}
