package tools

import (
	"encoding/json"
	"reflect"
	"testing"
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
}

// Ensure decodeFlat decodes exactly what encoding/json does, and takes
// only flat objects.
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
// takes too and decodes to the same value.
func FuzzDecodeFlat(f *testing.F) {
	for _, tc := range flatCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, ok := decodeFlat(in)
		if !ok {
			return
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
