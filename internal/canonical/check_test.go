package canonical

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestIsCanonical holds IsCanonical to the parser on texts that are
// canonical and on texts one canonicalization step away from it.
func TestIsCanonical(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{`{}`, true},
		{`[]`, true},
		{`null`, true},
		{`0`, true},
		{`-1`, true},
		{`123456789012345`, true},
		{`9007199254740993`, false}, // not a float64: prints as 9007199254740992
		{`1.5`, true},
		{`1e+21`, true},
		{`1e21`, false},
		{`1E+21`, false},
		{`-0`, false},
		{`0.0`, false},
		{`1.50`, false},
		{`01`, false},
		{`1e400`, false},
		{`{"a":1,"b":[true,false,null],"c":{"d":"e"}}`, true},
		{`{"b":1,"a":2}`, false},
		{`{"a":1,"a":1}`, false},
		{`{"a":1 }`, false},
		{` {"a":1}`, false},
		{`{"a":1}` + "\n", false},
		{`{"a" :1}`, false},
		{`[1, 2]`, false},
		{`"é€😀"`, true},
		{`"\u00e9"`, false},
		{`"\n\t\"\\\u0000\u001f"`, true},
		{`"\u000a"`, false},
		{`"\u001F"`, false},
		{`"\/"`, false},
		{`"<>&\u2028"`, false},
		{"\"<>&\u2028\"", true},
		{"\"\x7f\"", true},
		{"\"\xff\"", false},
		{"\"\xed\xa0\x80\"", false}, // a UTF-16 surrogate in UTF-8
		{`{"\ue000":1,"\ud83d\ude00":2}`, false},
		{"{\"\U0001F600\":2,\"\ue000\":1}", true}, // UTF-16 order
		{"{\"\ue000\":1,\"\U0001F600\":2}", false},
		{`{"a\"b":1}`, false}, // escaped name: not checked, so false
		{`{"a":1}{}`, false},
		{`{"a":}`, false},
		{`[1,]`, false},
		{`"abc`, false},
		{``, false},
		{`tru`, false},
	} {
		got := IsCanonical([]byte(tc.in))
		if got != tc.want {
			t.Errorf("IsCanonical(%q) = %v, want %v", tc.in, got, tc.want)
		}
		if got {
			out, err := parseRaw(nil, []byte(tc.in), 0)
			if err != nil || string(out) != tc.in {
				t.Errorf("IsCanonical(%q) but the parser gives %q, %v", tc.in, out, err)
			}
		}
	}
}

// TestIsCanonicalDepth: a text nested deeper than the parser takes is not
// canonical (the parser then reports the depth).
func TestIsCanonicalDepth(t *testing.T) {
	ok := strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)
	if !IsCanonical([]byte(ok)) {
		t.Errorf("%d nested arrays: not canonical", MaxDepth)
	}
	deep := "[" + ok + "]"
	if IsCanonical([]byte(deep)) {
		t.Errorf("%d nested arrays: canonical", MaxDepth+1)
	}
	if _, err := Marshal(json.RawMessage(deep)); err == nil {
		t.Errorf("Marshal of %d nested arrays: no error", MaxDepth+1)
	}
	// Nested in a value being encoded, the depth counts from there.
	if _, err := Marshal([]any{json.RawMessage(ok)}); err == nil {
		t.Errorf("Marshal of %d nested arrays inside one: no error", MaxDepth)
	}
}

// TestAppendRawCanonicalAllocs: a canonical RawMessage is appended
// without parsing, so without allocation.
func TestAppendRawCanonicalAllocs(t *testing.T) {
	raw := json.RawMessage(`{"amount":129.5,"items":[1,2,3],"order_id":"A-1042","vault":"vault://secret/card-1"}`)
	var v any = raw // boxed once, outside the count
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() {
		var err error
		if buf, err = Append(buf[:0], v); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Append of a canonical RawMessage: %v allocations", n)
	}
	if !bytes.Equal(buf, raw) {
		t.Errorf("Append changed canonical bytes: %s", buf)
	}
}

// FuzzIsCanonical: whenever IsCanonical says yes, the parser leaves the
// text unchanged; and every canonical text the parser writes without an
// escaped member name is recognized.
func FuzzIsCanonical(f *testing.F) {
	for _, s := range []string{
		`{"b":1,"a":[true,false,null]}`, `"\u20ac\ud83d\ude00"`, `1e21`, `1e+21`, `-0.0`,
		`{"\ue000":1,"\ud83d\ude00":2}`, `[1E400]`, `{"a":1,"a":2}`, `"\udc00"`, `"\u001f\n"`,
		`[0.000001,1e-7,123e-20,5e-324,1.7976931348623157e308]`, `{"":{"":[]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		parsed, err := parseRaw(nil, data, 0)
		if IsCanonical(data) && (err != nil || !bytes.Equal(parsed, data)) {
			t.Fatalf("IsCanonical(%q), but the parser gives %q, %v", data, parsed, err)
		}
		if err != nil {
			return
		}
		if !IsCanonical(parsed) && !escapedName(parsed) {
			t.Fatalf("the parser's canonical %q is not recognized", parsed)
		}
	})
}

// escapedName reports whether a canonical text has a member name with an
// escape (which IsCanonical does not order-check); approximate: any
// escape at all.
func escapedName(b []byte) bool { return bytes.IndexByte(b, '\\') >= 0 }
