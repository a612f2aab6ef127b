package canonical

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/internal/jsonlimit"
)

// Ensure the number samples of RFC 8785 appendix B encode exactly as listed,
// and that NaN and Infinity are rejected.
func TestNumbersAppendixB(t *testing.T) {
	tests := []struct {
		name string
		bits string
		want string // "" means an ErrNumber
	}{
		{name: "zero", bits: "0000000000000000", want: "0"},
		{name: "minus zero", bits: "8000000000000000", want: "0"},
		{name: "min pos number", bits: "0000000000000001", want: "5e-324"},
		{name: "min neg number", bits: "8000000000000001", want: "-5e-324"},
		{name: "max pos number", bits: "7fefffffffffffff", want: "1.7976931348623157e+308"},
		{name: "max neg number", bits: "ffefffffffffffff", want: "-1.7976931348623157e+308"},
		{name: "max pos int", bits: "4340000000000000", want: "9007199254740992"},
		{name: "max neg int", bits: "c340000000000000", want: "-9007199254740992"},
		{name: "~2**68", bits: "4430000000000000", want: "295147905179352830000"},
		{name: "NaN", bits: "7fffffffffffffff"},
		{name: "Infinity", bits: "7ff0000000000000"},
		{name: "-Infinity", bits: "fff0000000000000"},
		{name: "just below 1e23", bits: "44b52d02c7e14af5", want: "9.999999999999997e+22"},
		{name: "1e23", bits: "44b52d02c7e14af6", want: "1e+23"},
		{name: "just above 1e23", bits: "44b52d02c7e14af7", want: "1.0000000000000001e+23"},
		{name: "highest plain int", bits: "444b1ae4d6e2ef4e", want: "999999999999999700000"},
		{name: "next plain int", bits: "444b1ae4d6e2ef4f", want: "999999999999999900000"},
		{name: "1e21 switches to exponent", bits: "444b1ae4d6e2ef50", want: "1e+21"},
		{name: "just below 1e-6", bits: "3eb0c6f7a0b5ed8c", want: "9.999999999999997e-7"},
		{name: "1e-6 stays plain", bits: "3eb0c6f7a0b5ed8d", want: "0.000001"},
		{name: "round to even 2", bits: "41b3de4355555553", want: "333333333.3333332"},
		{name: "round to even 5", bits: "41b3de4355555554", want: "333333333.33333325"},
		{name: "round to even 3", bits: "41b3de4355555555", want: "333333333.3333333"},
		{name: "round to even 4", bits: "41b3de4355555556", want: "333333333.3333334"},
		{name: "round to even 43", bits: "41b3de4355555557", want: "333333333.33333343"},
		{name: "small negative", bits: "becbf647612f3696", want: "-0.0000033333333333333333"},
		{name: "large fraction", bits: "43143ff3c1cb0959", want: "1424953923781206.2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := bitsToFloat(t, tc.bits)
			got, err := Marshal(f)
			if tc.want == "" {
				if !errors.Is(err, ErrNumber) {
					t.Fatalf("Marshal(%v) = %q, %v; want ErrNumber", f, got, err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("Marshal(%v) = %q, %v; want %q", f, got, err, tc.want)
			}
		})
	}
}

// Ensure number formatting agrees with ECMAScript's Number.prototype.toString
// on thousands of random doubles and on the layout boundaries, as recorded
// from node by testdata/gen-oracle.js.
func TestNumbersOracle(t *testing.T) {
	f, err := os.Open("testdata/numbers.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		bits, want, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			t.Fatalf("bad line %q", sc.Text())
		}
		v := bitsToFloat(t, bits)
		got, err := Marshal(v)
		if err != nil || string(got) != want {
			t.Errorf("Marshal(%s = %v) = %q, %v; want %q", bits, v, got, err, want)
		}
		// The canonical text must read back as the very same double.
		if back, err := Marshal(json.RawMessage(want)); err != nil || string(back) != want {
			t.Errorf("re-canonicalize %q = %q, %v", want, back, err)
		}
		n++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 3000 {
		t.Fatalf("read only %d samples", n)
	}
}

// Ensure the worked examples of RFC 8785 (sections 3.2.2 and 3.2.3) and a few
// structural samples canonicalize to their expected bytes.
func TestRFCExamples(t *testing.T) {
	inputs, err := filepath.Glob("testdata/rfc8785/*.input.json")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".input.json")
		t.Run(name, func(t *testing.T) {
			input := readFile(t, in)
			want := readFile(t, strings.TrimSuffix(in, ".input.json")+".expected.json")
			got, err := Marshal(json.RawMessage(input))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("raw: got %s, %v\nwant %s", got, err, want)
			}
			var v any
			if err := json.Unmarshal(input, &v); err != nil {
				t.Fatal(err)
			}
			got, err = Marshal(v)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("decoded: got %s, %v\nwant %s", got, err, want)
			}
		})
	}
}

// Ensure random documents written with shuffled member order, whitespace and
// \u escapes canonicalize exactly as node's JSON.stringify with sorted keys
// does, both as raw JSON and after decoding with encoding/json.
func TestDocumentsOracle(t *testing.T) {
	lines := strings.Split(strings.TrimSpace(string(readFile(t, "testdata/documents.jsonl"))), "\n")
	if len(lines) < 200 || len(lines)%2 != 0 {
		t.Fatalf("documents.jsonl has %d lines", len(lines))
	}
	for i := 0; i < len(lines); i += 2 {
		var input string
		if err := json.Unmarshal([]byte(lines[i]), &input); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		want := lines[i+1]
		got, err := Marshal(json.RawMessage(input))
		if err != nil || string(got) != want {
			t.Errorf("line %d raw: got %s, %v\nwant %s", i+1, got, err, want)
			continue
		}
		var v any
		if err := json.Unmarshal([]byte(input), &v); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if got, err := Marshal(v); err != nil || string(got) != want {
			t.Errorf("line %d decoded: got %s, %v\nwant %s", i+1, got, err, want)
		}
		if again, err := Marshal(json.RawMessage(got)); err != nil || !bytes.Equal(again, got) {
			t.Errorf("line %d not idempotent: %s then %s, %v", i+1, got, again, err)
		}
	}
}

// Ensure strings are escaped exactly as JCS prescribes and no more.
func TestAppendString(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "empty", in: "", want: `""`},
		{name: "plain", in: "hello", want: `"hello"`},
		{name: "quote and backslash", in: `a"b\c`, want: `"a\"b\\c"`},
		{name: "short escapes", in: "\b\f\n\r\t", want: `"\b\f\n\r\t"`},
		{name: "other controls lowercase hex", in: "\x00\x01\x0b\x0f\x1f", want: `"\u0000\u0001\u000b\u000f\u001f"`},
		{name: "DEL is not escaped", in: "\x7f", want: "\"\x7f\""},
		{name: "html characters are not escaped", in: "<a href='x'>&</a>", want: `"<a href='x'>&</a>"`},
		{name: "slash is not escaped", in: "a/b", want: `"a/b"`},
		{name: "line and paragraph separators are not escaped", in: "\u2028\u2029", want: "\"\u2028\u2029\""},
		{name: "non-ASCII verbatim", in: "€ö😀\uffff", want: "\"€ö😀\uffff\""},
		{name: "invalid UTF-8 replaced", in: "a\xffb\xc3", want: "\"a\uFFFDb\uFFFD\""},
		{name: "surrogate encoded in UTF-8 replaced", in: "\xed\xa0\x80", want: "\"\uFFFD\uFFFD\uFFFD\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := AppendString([]byte("x"), tc.in)
			if string(got) != "x"+tc.want {
				t.Fatalf("AppendString(%q) = %s, want %s", tc.in, got[1:], tc.want)
			}
		})
	}
}

// Ensure object names sort by UTF-16 code units, which differs from byte and
// code point order for supplementary characters against U+E000–U+FFFF.
func TestCompareKeys(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want int
	}{
		{name: "equal", a: "abc", b: "abc", want: 0},
		{name: "prefix first", a: "ab", b: "abc", want: -1},
		{name: "empty first", a: "", b: "a", want: -1},
		{name: "ascii", a: "B", b: "a", want: -1},
		{name: "digits before letters", a: "10", b: "a", want: -1},
		{name: "latin-1 after ascii", a: "z", b: "\u0080", want: -1},
		{name: "emoji before private use area", a: "😀", b: "\ue000", want: -1},
		{name: "emoji before U+FFFF", a: "\U0010FFFF", b: "\uffff", want: -1},
		{name: "emoji before hebrew presentation form", a: "😀", b: "\ufb33", want: -1},
		{name: "emoji after U+D7FF", a: "\ud7ff", b: "😀", want: -1},
		{name: "two supplementary, same high surrogate", a: "😀", b: "😂", want: -1},
		{name: "two supplementary, different high surrogate", a: "\U00010000", b: "\U0001F600", want: -1},
		{name: "difference after shared multibyte prefix", a: "€a", b: "€b", want: -1},
		{name: "difference in continuation byte", a: "\u00e9", b: "\u00f6", want: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := CompareKeys(tc.a, tc.b); got != tc.want {
				t.Fatalf("CompareKeys(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
			}
			if got := CompareKeys([]byte(tc.b), []byte(tc.a)); got != -tc.want {
				t.Fatalf("CompareKeys(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
			}
			if got, want := CompareKeys(tc.a, tc.b), utf16Compare(tc.a, tc.b); got != want {
				t.Fatalf("CompareKeys disagrees with the UTF-16 reference: %d vs %d", got, want)
			}
		})
	}
}

// Ensure CompareKeys matches a direct UTF-16 comparison on random strings
// drawn from the characters where orders differ.
func TestCompareKeysRandom(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	alphabet := []rune{'a', 'b', 0x7f, 0x80, 0x7ff, 0x800, 0xd7ff, 0xe000, 0xfb33, 0xffff, 0x10000, 0x1f600, 0x1f602, 0x10ffff}
	gen := func() string {
		var sb strings.Builder
		for range r.IntN(4) {
			sb.WriteRune(alphabet[r.IntN(len(alphabet))])
		}
		return sb.String()
	}
	for range 20000 {
		a, b := gen(), gen()
		if got, want := CompareKeys(a, b), utf16Compare(a, b); got != want {
			t.Fatalf("CompareKeys(%q, %q) = %d, want %d (seed %d)", a, b, got, want, seed)
		}
	}
}

// utf16Compare is the obviously-correct, slow reference for CompareKeys.
func utf16Compare(a, b string) int { return slices.Compare(utf16Units(a), utf16Units(b)) }

func utf16Units(s string) []uint16 {
	var u []uint16
	for _, r := range s {
		if r >= 0x10000 {
			r -= 0x10000
			u = append(u, uint16(0xd800+r>>10), uint16(0xdc00+r&0x3ff))
		} else {
			u = append(u, uint16(r))
		}
	}
	return u
}

type tagged struct {
	Zeta  string         `json:"zeta"`
	Alpha float32        `json:"alpha"`
	Skip  string         `json:"-"`
	Inner map[string]int `json:"inner,omitempty"`
	HTML  string         `json:"html"`
}

// Ensure every accepted Go type encodes to its canonical form.
func TestGoTypes(t *testing.T) {
	type named string
	var nilMap map[string]any
	var nilPtr *tagged
	tests := []struct {
		name string
		in   any
		want string
	}{
		{name: "nil", in: nil, want: `null`},
		{name: "true", in: true, want: `true`},
		{name: "false", in: false, want: `false`},
		{name: "int", in: -42, want: `-42`},
		{name: "int8", in: int8(-128), want: `-128`},
		{name: "int16", in: int16(300), want: `300`},
		{name: "int32", in: int32(-2147483648), want: `-2147483648`},
		{name: "int64 2^53", in: int64(1 << 53), want: `9007199254740992`},
		{name: "int64 -2^53", in: int64(-1 << 53), want: `-9007199254740992`},
		{name: "int64 2^60 exact", in: int64(1 << 60), want: `1152921504606847000`},
		{name: "int64 min exact", in: int64(math.MinInt64), want: `-9223372036854776000`},
		{name: "uint8", in: uint8(255), want: `255`},
		{name: "uint16", in: uint16(65535), want: `65535`},
		{name: "uint32", in: uint32(4294967295), want: `4294967295`},
		{name: "uint", in: uint(7), want: `7`},
		{name: "uint64 2^63 exact", in: uint64(1 << 63), want: `9223372036854776000`},
		{name: "float32 shortest", in: float32(0.1), want: `0.1`},
		{name: "float32 large", in: float32(3.4e38), want: `3.4e+38`},
		{name: "float64", in: 4.5, want: `4.5`},
		{name: "float64 negative zero", in: math.Copysign(0, -1), want: `0`},
		{name: "json.Number", in: json.Number("1E30"), want: `1e+30`},
		{name: "json.Number fraction", in: json.Number("-0.0000010"), want: `-0.000001`},
		{name: "json.Number underflow", in: json.Number("1e-400"), want: `0`},
		{name: "json.Number beyond 2^53 rounds like JCS", in: json.Number("9007199254740993"), want: `9007199254740992`},
		{name: "string", in: "a\u2028<", want: "\"a\u2028<\""},
		{name: "[]string", in: []string{"b", "a"}, want: `["b","a"]`},
		{name: "empty []string", in: []string{}, want: `[]`},
		{name: "nil []any", in: []any(nil), want: `[]`},
		{name: "nil map", in: nilMap, want: `{}`},
		{name: "map[string]string", in: map[string]string{"b": "2", "a": "1", "\U0001F600": "x", "\ue000": "y"}, want: "{\"a\":\"1\",\"b\":\"2\",\"\U0001F600\":\"x\",\"\ue000\":\"y\"}"},
		{name: "nested", in: map[string]any{"b": []any{1, 2.5, "x", nil, map[string]any{"d": true, "c": false}}, "a": map[string]any{}},
			want: `{"a":{},"b":[1,2.5,"x",null,{"c":false,"d":true}]}`},
		{name: "raw message nested", in: map[string]any{"r": json.RawMessage(` { "b" : 1.0 , "a" : [ ] } `)}, want: `{"r":{"a":[],"b":1}}`},
		{name: "struct via encoding/json", in: tagged{Zeta: "z", Alpha: 0.1, Skip: "gone", HTML: "<&>"}, want: `{"alpha":0.1,"html":"<&>","zeta":"z"}`},
		{name: "struct pointer with map", in: &tagged{Inner: map[string]int{"y": 2, "x": 1}}, want: `{"alpha":0,"html":"","inner":{"x":1,"y":2},"zeta":""}`},
		{name: "nil struct pointer", in: nilPtr, want: `null`},
		{name: "named string type", in: named("n"), want: `"n"`},
		{name: "map[string]int", in: map[string]int{"b": 1, "a": 2}, want: `{"a":2,"b":1}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Marshal(tc.in)
			if err != nil || string(got) != tc.want {
				t.Fatalf("Marshal(%#v) = %s, %v; want %s", tc.in, got, err, tc.want)
			}
			// Append must append, not overwrite.
			got, err = Append([]byte("prefix"), tc.in)
			if err != nil || string(got) != "prefix"+tc.want {
				t.Fatalf("Append = %s, %v", got, err)
			}
		})
	}
}

// Ensure every value without a single canonical form is an error with the
// documented sentinel, and never a silently different encoding.
func TestErrors(t *testing.T) {
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	deep := strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1)
	tests := []struct {
		name string
		in   any
		want error // nil: any error
	}{
		{name: "NaN", in: math.NaN(), want: ErrNumber},
		{name: "+Inf", in: math.Inf(1), want: ErrNumber},
		{name: "-Inf nested", in: map[string]any{"a": []any{math.Inf(-1)}}, want: ErrNumber},
		{name: "float32 NaN", in: float32(math.NaN()), want: ErrNumber},
		{name: "int64 2^53+1 inexact", in: int64(1<<53 + 1), want: ErrNumber},
		{name: "int64 max inexact", in: int64(math.MaxInt64), want: ErrNumber},
		{name: "int64 -2^53-1 inexact", in: int64(-1<<53 - 1), want: ErrNumber},
		{name: "int inexact", in: int(1<<53 + 1), want: ErrNumber},
		{name: "uint64 max inexact", in: uint64(math.MaxUint64), want: ErrNumber},
		{name: "json.Number overflow", in: json.Number("1e400"), want: ErrNumber},
		{name: "json.Number not JSON", in: json.Number("0x10"), want: ErrSyntax},
		{name: "json.Number Inf", in: json.Number("Inf"), want: ErrSyntax},
		{name: "json.Number leading zero", in: json.Number("01"), want: ErrSyntax},
		{name: "json.Number empty", in: json.Number(""), want: ErrSyntax},
		{name: "invalid UTF-8 string", in: "a\xff", want: ErrUTF8},
		{name: "invalid UTF-8 key", in: map[string]any{"\xc3": 1}, want: ErrUTF8},
		{name: "invalid UTF-8 in []string", in: []string{"\xed\xa0\x80"}, want: ErrUTF8},
		{name: "invalid UTF-8 in map[string]string", in: map[string]string{"k": "\xff"}, want: ErrUTF8},
		{name: "raw duplicate key", in: json.RawMessage(`{"a":1,"b":2,"a":3}`), want: ErrDuplicateKey},
		{name: "raw duplicate key after unescaping", in: json.RawMessage(`{"a":1,"\u0061":1}`), want: ErrDuplicateKey},
		{name: "raw nested duplicate key", in: json.RawMessage(`[{"x":{"k":1,"k":1}}]`), want: ErrDuplicateKey},
		{name: "raw invalid UTF-8", in: json.RawMessage("\"\xff\""), want: ErrUTF8},
		{name: "raw invalid UTF-8 key", in: json.RawMessage("{\"\xff\":1}"), want: ErrUTF8},
		{name: "raw lone high surrogate", in: json.RawMessage(`"\ud800"`), want: ErrUTF8},
		{name: "raw lone high surrogate then text", in: json.RawMessage(`"\ud800abc"`), want: ErrUTF8},
		{name: "raw high surrogate then non-low", in: json.RawMessage(`"\ud800\u0041"`), want: ErrUTF8},
		{name: "raw lone low surrogate", in: json.RawMessage(`"\udc00"`), want: ErrUTF8},
		{name: "raw NaN literal", in: json.RawMessage(`NaN`), want: ErrSyntax},
		{name: "raw number overflow", in: json.RawMessage(`[1e999]`), want: ErrNumber},
		{name: "raw empty", in: json.RawMessage(``), want: ErrSyntax},
		{name: "raw trailing data", in: json.RawMessage(`{} {}`), want: ErrSyntax},
		{name: "raw trailing comma", in: json.RawMessage(`[1,]`), want: ErrSyntax},
		{name: "raw object trailing comma", in: json.RawMessage(`{"a":1,}`), want: ErrSyntax},
		{name: "raw missing colon", in: json.RawMessage(`{"a" 1}`), want: ErrSyntax},
		{name: "raw unquoted key", in: json.RawMessage(`{a:1}`), want: ErrSyntax},
		{name: "raw single quotes", in: json.RawMessage(`'a'`), want: ErrSyntax},
		{name: "raw control char in string", in: json.RawMessage("\"a\nb\""), want: ErrSyntax},
		{name: "raw bad escape", in: json.RawMessage(`"\x"`), want: ErrSyntax},
		{name: "raw short unicode escape", in: json.RawMessage(`"\u12"`), want: ErrSyntax},
		{name: "raw unterminated string", in: json.RawMessage(`"abc`), want: ErrSyntax},
		{name: "raw unterminated array", in: json.RawMessage(`[1`), want: ErrSyntax},
		{name: "raw unterminated object", in: json.RawMessage(`{"a":1`), want: ErrSyntax},
		{name: "raw truncated literal", in: json.RawMessage(`tru`), want: ErrSyntax},
		{name: "raw plus sign", in: json.RawMessage(`+1`), want: ErrSyntax},
		{name: "raw leading dot", in: json.RawMessage(`.5`), want: ErrSyntax},
		{name: "raw trailing dot", in: json.RawMessage(`5.`), want: ErrSyntax},
		{name: "raw bare exponent", in: json.RawMessage(`1e`), want: ErrSyntax},
		{name: "raw minus alone", in: json.RawMessage(`-`), want: ErrSyntax},
		{name: "raw too deep", in: json.RawMessage(deep), want: ErrDepth},
		{name: "cyclic map", in: cyclic, want: ErrDepth},
		{name: "unsupported type", in: make(chan int)},
		{name: "struct with NaN", in: struct{ F float64 }{math.NaN()}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Marshal(tc.in)
			if err == nil {
				t.Fatalf("Marshal = %q, want an error", got)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Marshal error = %v, want %v", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "canonicalize: ") {
				t.Fatalf("error %q does not name the operation", err)
			}
			if _, herr := Hash(tc.in); herr == nil {
				t.Fatal("Hash succeeded where Marshal failed")
			}
		})
	}
}

// Ensure the deepest nesting MaxDepth allows is still accepted.
func TestMaxDepthAccepted(t *testing.T) {
	deep := strings.Repeat(`{"a":`, MaxDepth) + "1" + strings.Repeat("}", MaxDepth)
	got, err := Marshal(json.RawMessage(deep))
	if err != nil || string(got) != deep {
		t.Fatalf("Marshal of depth %d: %v", MaxDepth, err)
	}
}

// Ensure canonical output is a fixed point and input member order, spacing
// and escaping never change it, on random documents (the seed is logged).
func TestPropertiesRandom(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range 500 {
		v := randomValue(r, 0)
		want, err := Marshal(v)
		if err != nil {
			t.Fatalf("doc %d: %v (seed %d)", i, err, seed)
		}
		again, err := Marshal(json.RawMessage(want))
		if err != nil || !bytes.Equal(again, want) {
			t.Fatalf("doc %d not idempotent: %s -> %s, %v (seed %d)", i, want, again, err, seed)
		}
		// encoding/json writes members in byte order with HTML escaping and
		// indentation: a different text of the same data.
		other, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		reordered := reverseMembers(t, other)
		for _, text := range [][]byte{other, reordered} {
			got, err := Marshal(json.RawMessage(text))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("doc %d from %s:\ngot  %s, %v\nwant %s (seed %d)", i, text, got, err, want, seed)
			}
		}
	}
}

func randomValue(r *rand.Rand, depth int) any {
	k := r.IntN(10)
	if depth > 4 {
		k = r.IntN(5)
	}
	switch k {
	case 0:
		return nil
	case 1:
		return r.IntN(2) == 0
	case 2:
		return math.Float64frombits(r.Uint64()&^(0x7ff<<52) | uint64(r.IntN(0x7ff))<<52) // finite
	case 3:
		return float64(r.IntN(2000) - 1000)
	case 4:
		return randomString(r)
	case 5, 6:
		a := make([]any, r.IntN(4))
		for i := range a {
			a[i] = randomValue(r, depth+1)
		}
		return a
	default:
		m := map[string]any{}
		for range r.IntN(6) {
			m[randomString(r)] = randomValue(r, depth+1)
		}
		return m
	}
}

func randomString(r *rand.Rand) string {
	alphabet := []rune{'a', 'Z', '0', '"', '\\', '\n', 0x01, 0x7f, '<', '&', 0xe9, 0x2028, 0xe000, 0xffff, 0x1f600, 0x10ffff}
	var sb strings.Builder
	for range r.IntN(5) {
		sb.WriteRune(alphabet[r.IntN(len(alphabet))])
	}
	return sb.String()
}

// reverseMembers rewrites JSON text with every object's members in reverse
// order, using the standard library's token stream.
func reverseMembers(t *testing.T, text []byte) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	var walk func() []byte
	walk = func() []byte {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		switch tok := tok.(type) {
		case json.Delim:
			if tok == '[' {
				var parts [][]byte
				for dec.More() {
					parts = append(parts, walk())
				}
				dec.Token()
				return append(append([]byte("["), bytes.Join(parts, []byte(","))...), ']')
			}
			var parts [][]byte
			for dec.More() {
				k, _ := dec.Token()
				kb, _ := json.Marshal(k)
				parts = append([][]byte{append(append(kb, ':'), walk()...)}, parts...)
			}
			dec.Token()
			return append(append([]byte("{"), bytes.Join(parts, []byte(","))...), '}')
		default:
			b, _ := json.Marshal(tok)
			return b
		}
	}
	return walk()
}

// Ensure Hash is the lowercase hex SHA-256 of the canonical bytes.
func TestHash(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{name: "object", in: map[string]any{"b": []any{true, nil, "x"}, "a": 1}, want: "eca8cfb31ab74533e1eb2f4c74d2d55dfe3c79ac704787e54be8647ea7777eb1"},
		{name: "same object as raw JSON", in: json.RawMessage(`{"b":[true,null,"x"],"a":1.0}`), want: "eca8cfb31ab74533e1eb2f4c74d2d55dfe3c79ac704787e54be8647ea7777eb1"},
		{name: "null", in: nil, want: "74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Hash(tc.in)
			if err != nil || got != tc.want {
				t.Fatalf("Hash = %s, %v; want %s", got, err, tc.want)
			}
		})
	}
}

func bitsToFloat(t *testing.T, bits string) float64 {
	t.Helper()
	b, err := hex.DecodeString(bits)
	if err != nil || len(b) != 8 {
		t.Fatalf("bad bits %q", bits)
	}
	return math.Float64frombits(binary.BigEndian.Uint64(b))
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Ensure an encoding error says where in the value it happened, and that a
// self-referencing map yields a bounded message.
func TestErrorPath(t *testing.T) {
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	tests := []struct {
		name string
		in   any
		want string
	}{
		{name: "nested", in: map[string]any{"a": []any{1, map[string]any{"b c": math.NaN()}}},
			want: `canonicalize: at $.a[1]["b c"]: encode number NaN: number not representable in canonical JSON`},
		{name: "string list", in: []string{"ok", "\xff"}, want: `canonicalize: at $[1]: encode string at byte 0: invalid UTF-8`},
		{name: "top level", in: math.Inf(1), want: `canonicalize: encode number +Inf: number not representable in canonical JSON`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Marshal(tc.in)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error = %v\nwant    %s", err, tc.want)
			}
		})
	}
	_, err := Marshal(cyclic)
	if err == nil || len(err.Error()) > 400 || !strings.Contains(err.Error(), "…") {
		t.Fatalf("cyclic error = %v", err)
	}
}

// Ensure canonical JSON encodes everything a stored record can hold (up to
// jsonlimit.MaxRecordDepth deep), and an error about a huge number or key
// quotes only an excerpt of it.
func TestRecordDepthAndShortErrors(t *testing.T) {
	deep := strings.Repeat("[", jsonlimit.MaxRecordDepth) + strings.Repeat("]", jsonlimit.MaxRecordDepth)
	if _, err := Marshal(json.RawMessage(deep)); err != nil {
		t.Fatalf("depth %d: %v", jsonlimit.MaxRecordDepth, err)
	}
	if MaxDepth < jsonlimit.MaxRecordDepth {
		t.Fatalf("MaxDepth %d below jsonlimit.MaxRecordDepth %d", MaxDepth, jsonlimit.MaxRecordDepth)
	}
	huge := strings.Repeat("9", 900_000)
	for name, v := range map[string]any{
		"raw number":  json.RawMessage("[" + huge + "]"),
		"json.Number": json.Number(huge),
		"key":         map[string]any{strings.Repeat("k", 100_000): math.Inf(1)},
	} {
		_, err := Marshal(v)
		if err == nil || len(err.Error()) > 300 || !strings.Contains(err.Error(), "bytes in all") {
			t.Errorf("%s: error of %d bytes: %.300v", name, len(fmt.Sprint(err)), err)
		}
	}
}
