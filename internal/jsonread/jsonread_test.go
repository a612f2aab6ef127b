package jsonread_test

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/internal/jsonlimit"
	"github.com/nanovm/nano-vm-mcp/internal/jsonread"
)

// agree checks Value and Skip on data against encoding/json: a value read
// is what json.Unmarshal gives an any, and nothing encoding/json rejects is
// read or skipped.
func agree(t *testing.T, data []byte) {
	t.Helper()
	var want any
	wantErr := json.Unmarshal(data, &want)
	r := jsonread.New(data)
	got, ok := r.Value()
	if ok && r.AtEnd() {
		if wantErr != nil {
			t.Fatalf("%q: read as %#v, but encoding/json says %v", data, got, wantErr)
		}
		if !sameJSON(got, want) {
			t.Fatalf("%q: read as %#v, encoding/json gives %#v", data, got, want)
		}
	}
	r = jsonread.New(data)
	if r.Skip() && r.AtEnd() && !json.Valid(data) {
		t.Fatalf("%q: skipped as a value, but not valid JSON", data)
	}
	r = jsonread.New(data)
	var raw json.RawMessage
	if r.Raw(&raw) && r.AtEnd() && strings.TrimSpace(string(raw)) != strings.TrimSpace(string(data)) {
		t.Fatalf("%q: raw text %q", data, raw)
	}
}

// sameJSON is reflect.DeepEqual with NaN never arising and -0 told from 0.
func sameJSON(a, b any) bool {
	if fa, ok := a.(float64); ok {
		fb, ok := b.(float64)
		return ok && fa == fb && math.Signbit(fa) == math.Signbit(fb)
	}
	switch a := a.(type) {
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, v := range a {
			if w, ok := b[k]; !ok || !sameJSON(v, w) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !sameJSON(a[i], b[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// Ensure the reader agrees with encoding/json on values it reads and on
// what it refuses, including the awkward corners of strings and numbers.
func TestAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range []string{
		`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `-0.0`, `1e400`, `1.5e-7`, `123456789012345678901234567890`, `01`, `1.`, `.5`, `-`, `+1`,
		`"plain"`, `"é"`, `"\u00e9\ud83d\ude00"`, `"\ud800"`, `"\ud800\u0041"`, `"\x"`, `"\u12"`, "\"a\x01\"", "\"\xff\xfe\"", `"\/\b\f\n\r\t"`,
		`{"a":1,"a":2}`, `{"a":[1,{"b":null}],"c":"d"}`, `{"a":1,}`, `[1 2]`, `[1,]`, ` { "a" : [ 1 , 2 ] } `, `{"a"}`, `{1:2}`, `tru`, `nul`,
		strings.Repeat("[", 1001) + strings.Repeat("]", 1001), strings.Repeat("[", 50) + strings.Repeat("]", 50),
	} {
		agree(t, []byte(s))
	}
}

func FuzzReader(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5,-3e-7,"x\"y",true,false,null,{"b":{}}]}`, `"\ud83d\ude00"`, `-0`, `[1e308,1e309]`} {
		f.Add([]byte(s))
	}
	// Around the reader's depth limit, where it hands over to encoding/json.
	for _, n := range []int{jsonlimit.MaxDepth + 1, jsonlimit.MaxRecordDepth, jsonlimit.MaxRecordDepth + 1} {
		f.Add([]byte(strings.Repeat("[", n) + strings.Repeat("]", n)))
	}
	f.Fuzz(func(t *testing.T, data []byte) { agree(t, data) })
}

// Ensure the reader itself (not the encoding/json fallback) reads values
// as deep as any stored record gets: a value accepted at
// jsonlimit.MaxDepth inside a record's nesting, up to MaxRecordDepth; one
// level deeper is left to encoding/json.
func TestReadsRecordDepth(t *testing.T) {
	for _, n := range []int{jsonlimit.MaxDepth + jsonlimit.RecordOverhead, jsonlimit.MaxRecordDepth} {
		data := []byte(strings.Repeat(`{"a":[`, n/2) + "1" + strings.Repeat("]}", n/2))
		r := jsonread.New(data)
		if _, ok := r.Value(); !ok || !r.AtEnd() {
			t.Fatalf("depth %d not read", n)
		}
		agree(t, data)
	}
	deeper := []byte(strings.Repeat("[", jsonlimit.MaxRecordDepth+1) + strings.Repeat("]", jsonlimit.MaxRecordDepth+1))
	if _, ok := jsonread.New(deeper).Value(); ok {
		t.Fatal("past MaxRecordDepth read without falling back")
	}
	agree(t, deeper)
}
