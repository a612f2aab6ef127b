package tools

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/internal/jsonlimit"
)

// Ensure the quick check recognises only the simple schema shape and never
// accepts a value the full validator rejects.
func TestQuickSchema(t *testing.T) {
	tests := []struct {
		name   string
		schema string
		simple bool
		value  string
		want   bool // what quick says; the full validator must agree when true
	}{
		{name: "any object", schema: `{"type":"object"}`, simple: true, value: `{"x":[1]}`, want: true},
		{name: "not an object", schema: `{"type":"object"}`, simple: true, value: `[1]`, want: false},
		{name: "typed property", schema: `{"type":"object","properties":{"s":{"type":"string"}}}`, simple: true, value: `{"s":"a"}`, want: true},
		{name: "wrong property type", schema: `{"type":"object","properties":{"s":{"type":"string"}}}`, simple: true, value: `{"s":1}`, want: false},
		{name: "required missing", schema: `{"type":"object","required":["a"]}`, simple: true, value: `{}`, want: false},
		{name: "integer", schema: `{"type":"object","properties":{"n":{"type":"integer"}}}`, simple: true, value: `{"n":3}`, want: true},
		{name: "not integer", schema: `{"type":"object","properties":{"n":{"type":"integer"}}}`, simple: true, value: `{"n":3.5}`, want: false},
		{name: "untyped property", schema: `{"type":"object","properties":{"a":{"description":"x"}}}`, simple: true, value: `{"a":null}`, want: true},
		{name: "annotations", schema: `{"title":"t","type":"object","description":"d"}`, simple: true, value: `{}`, want: true},
		{name: "additionalProperties is not simple", schema: `{"type":"object","additionalProperties":false}`},
		{name: "enum is not simple", schema: `{"type":"object","properties":{"a":{"type":"string","enum":["x"]}}}`},
		{name: "type list is not simple", schema: `{"type":"object","properties":{"a":{"type":["string","null"]}}}`},
		{name: "no type is not simple", schema: `{"properties":{"a":{"type":"string"}}}`},
		{name: "non-object type is not simple", schema: `{"type":"string"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := compileQuick(json.RawMessage(tt.schema))
			if (q != nil) != tt.simple {
				t.Fatalf("compileQuick simple = %v, want %v", q != nil, tt.simple)
			}
			if q == nil {
				return
			}
			var v any
			if err := json.Unmarshal([]byte(tt.value), &v); err != nil {
				t.Fatal(err)
			}
			if got := q.accepts(v); got != tt.want {
				t.Fatalf("accepts(%s) = %v, want %v", tt.value, got, tt.want)
			}
			full, err := compileSchema(json.RawMessage(tt.schema))
			if err != nil {
				t.Fatal(err)
			}
			if ferr := full.Validate(v); tt.want && ferr != nil {
				t.Fatalf("quick accepted what the full validator rejects: %v", ferr)
			}
		})
	}
}

// FuzzQuickSchema checks soundness: whatever schema and value, if the
// quick check accepts, the full validator accepts too.
func FuzzQuickSchema(f *testing.F) {
	f.Add(`{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"}},"required":["a"]}`, `{"a":1e300,"b":"x"}`)
	f.Add(`{"type":"object","properties":{"n":{"type":"null"},"o":{"type":"object"},"l":{"type":"array"}}}`, `{"n":null,"o":{},"l":[]}`)
	f.Add(`{"type":"object"}`, `{}`)
	f.Fuzz(func(t *testing.T, schema, value string) {
		q := compileQuick(json.RawMessage(schema))
		if q == nil {
			return
		}
		full, err := compileSchema(json.RawMessage(schema))
		if err != nil {
			return // Register refuses it before any call
		}
		var v any
		if json.Unmarshal([]byte(value), &v) != nil {
			return
		}
		if q.accepts(v) {
			if err := full.Validate(v); err != nil {
				t.Fatalf("quick accepted %s under %s; full: %v", value, schema, err)
			}
		}
	})
}

// FuzzDecodeOutput checks decodeOutput against the streaming decoder it
// replaced on the fast path: exactly one JSON value (or only blanks) is
// accepted, anything else is ErrInvalidOutput, and the values agree.
func FuzzDecodeOutput(f *testing.F) {
	for _, s := range []string{``, ` `, `null`, `{"a":1}`, `"PENDING"`, `{} {}`, `{`, `1 2`, "[1]\n", `{"error":"x"}`,
		strings.Repeat("[", jsonlimit.MaxDepth+1) + strings.Repeat("]", jsonlimit.MaxDepth+1), strings.Repeat("1", jsonlimit.MaxNumberLen+1), `[1e999]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, stdout []byte) {
		got, err := decodeOutput(stdout)
		want, wantErr := referenceDecode(stdout)
		if wantErr == nil && jsonlimit.Check(stdout) != nil {
			// Beyond the limits on accepted data (FuzzCheck holds Check
			// to encoding/json's tokenizer).
			want, wantErr = nil, jsonlimit.Check(stdout)
		}
		if err != nil && len(err.Error()) > 2_000 {
			t.Fatalf("decodeOutput error of %d bytes", len(err.Error()))
		}
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("decodeOutput(%q) err = %v, reference err = %v", stdout, err, wantErr)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidOutput) {
				t.Fatalf("error %v is not ErrInvalidOutput", err)
			}
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeOutput(%q) = %#v, reference %#v", stdout, got, want)
		}
	})
}

// referenceDecode is the plain streaming reading of the ABI rule.
func referenceDecode(stdout []byte) (any, error) {
	if len(bytes.TrimSpace(stdout)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(stdout))
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("more than one value")
	}
	return v, nil
}
