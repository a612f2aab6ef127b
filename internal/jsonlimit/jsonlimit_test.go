package jsonlimit

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

func nested(open, close string, n int) string {
	return strings.Repeat(open, n) + strings.Repeat(close, n)
}

// Ensure Check accepts exactly what the limits let through, on both sides
// of each boundary, and names the limit it refuses.
func TestCheck(t *testing.T) {
	long := strings.Repeat("9", MaxNumberLen)
	tests := []struct {
		name string
		data string
		want string // "" accepts; else a substring of the error
	}{
		{"scalar", `1`, ""},
		{"empty", ``, ""},
		{"arrays at the limit", nested("[", "]", MaxDepth), ""},
		{"arrays one over", nested("[", "]", MaxDepth+1), "nesting depth 129 exceeds the limit of 128"},
		{"objects at the limit", strings.Repeat(`{"a":`, MaxDepth) + "1" + strings.Repeat("}", MaxDepth), ""},
		{"objects one over", strings.Repeat(`{"a":`, MaxDepth+1) + "1" + strings.Repeat("}", MaxDepth+1), "nesting depth 129"},
		{"brackets inside strings do not count", `["` + strings.Repeat("[", 1000) + `"]`, ""},
		{"escaped quote does not end a string", `["\"` + strings.Repeat("[", 1000) + `"]`, ""},
		{"escaped backslash ends before the quote", `["\\",` + nested("[", "]", MaxDepth) + `]`, "nesting depth 129"},
		{"siblings do not add up", "[" + strings.Repeat(nested("[", "]", MaxDepth-1)+",", 10) + "1]", ""},
		{"number at the limit", long, ""},
		{"number one over", long + "9", "a number of 101 characters exceeds the limit of 100"},
		{"negative long number", "-" + long, "a number of 101 characters"},
		{"number inside", `{"a":[` + long + `0]}`, "a number of 101 characters"},
		{"huge number", strings.Repeat("9", 900_000), "a number of 900,000 characters"},
		{"out of range", `[1e400]`, "number 1e400 is outside the range of a 64-bit float"},
		{"underflow is 0, as encoding/json reads it", `-1e-400`, ""},
		{"digits in a string", `"` + strings.Repeat("9", 1000) + `"`, ""},
		{"not JSON is left to the decoder", `[1,,--e]`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check([]byte(tt.data))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err %v, want %q", err, tt.want)
			case err != nil && len(err.Error()) > 200:
				t.Fatalf("error of %d bytes", len(err.Error()))
			}
			if err != nil && !errors.Is(err, ErrDepth) && !errors.Is(err, ErrNumber) {
				t.Fatalf("%v wraps no sentinel", err)
			}
		})
	}
}

// Ensure CheckValue agrees with Check on decoded values.
func TestCheckValue(t *testing.T) {
	for _, n := range []int{MaxDepth - 1, MaxDepth, MaxDepth + 1} {
		for _, doc := range []string{nested("[", "]", n), strings.Repeat(`{"k":`, n) + "null" + strings.Repeat("}", n)} {
			var v any
			if err := json.Unmarshal([]byte(doc), &v); err != nil {
				t.Fatal(err)
			}
			got, want := CheckValue(v), Check([]byte(doc))
			if (got == nil) != (want == nil) || (n > MaxDepth) != (got != nil) {
				t.Fatalf("depth %d: CheckValue %v, Check %v", n, got, want)
			}
		}
	}
	if err := CheckValue(json.Number(strings.Repeat("1", MaxNumberLen+1))); !errors.Is(err, ErrNumber) {
		t.Fatalf("long json.Number: %v", err)
	}
	if err := CheckValue(map[string]any{"a": []any{1.5, "x", nil, true}}); err != nil {
		t.Fatal(err)
	}
}

// Ensure the limits keep their documented order: every record built
// around an accepted value stays within what every decoder reads.
func TestLimitsOrder(t *testing.T) {
	if MaxDepth+RecordOverhead > MaxRecordDepth || MaxRecordDepth > 10000 {
		t.Fatalf("MaxDepth %d + RecordOverhead %d must be <= MaxRecordDepth %d <= 10000 (encoding/json)", MaxDepth, RecordOverhead, MaxRecordDepth)
	}
	// encoding/json really reads MaxRecordDepth.
	var v any
	if err := json.Unmarshal([]byte(nested("[", "]", MaxRecordDepth)), &v); err != nil {
		t.Fatal(err)
	}
}

// Ensure Excerpt keeps short text, and clips long text on a rune
// boundary with the total length.
func TestExcerpt(t *testing.T) {
	tests := []struct {
		name, in string
		max      int
		want     string
	}{
		{"short", "abc", 10, "abc"},
		{"exact", "abcde", 5, "abcde"},
		{"long", strings.Repeat("x", 412_345), 3, "xxx…(412,345 bytes in all)"},
		{"rune boundary", "ééé", 3, "é…(6 bytes in all)"},
		{"default", strings.Repeat("y", 1000), 0, strings.Repeat("y", MaxExcerpt) + "…(1,000 bytes in all)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Excerpt(tt.in, tt.max); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// depth is the reference: the deepest nesting encoding/json's tokenizer
// sees, and whether some number is over the length limit.
func depth(data []byte) (int, bool, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	d, most, long := 0, 0, false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return most, long, true
		}
		if err != nil {
			return 0, false, false
		}
		switch tok := tok.(type) {
		case json.Delim:
			if tok == '[' || tok == '{' {
				d++
				most = max(most, d)
			} else {
				d--
			}
		case json.Number:
			long = long || len(tok) > MaxNumberLen
		}
	}
}

// FuzzCheck holds Check to the reference on valid JSON: refused for depth
// exactly when encoding/json's tokenizer goes past MaxDepth, for a number
// exactly when one is too long or out of range; never a panic, never an
// error quoting more than an excerpt.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{`[]`, `{"a":[1,2,{"b":"]]"}]}`, `"\"["`, nested("[", "]", MaxDepth+1), `1e400`, strings.Repeat("1", 101), `{"a\\":[[1]]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := Check(data)
		if err != nil && len(err.Error()) > 300 {
			t.Fatalf("error of %d bytes", len(err.Error()))
		}
		if !json.Valid(data) || !utf8.Valid(data) {
			return
		}
		d, long, ok := depth(data)
		if !ok {
			return
		}
		var v any
		rangeErr := json.Unmarshal(data, &v) != nil && !long && d <= MaxDepth
		var de *DepthError
		switch {
		case d > MaxDepth && !errors.As(err, &de) && !errors.Is(err, ErrNumber):
			t.Fatalf("depth %d accepted: %v", d, err)
		case d <= MaxDepth && errors.As(err, &de):
			t.Fatalf("depth %d refused: %v", d, err)
		case long && err == nil:
			t.Fatal("long number accepted")
		case err == nil && rangeErr:
			t.Fatal("a number encoding/json cannot read was accepted")
		}
	})
}

// BenchmarkCheck measures the pass every tool output takes before it is
// decoded: a small result and a 1 MiB one (the default stdout cap).
func BenchmarkCheck(b *testing.B) {
	small := []byte(`{"ok":true,"order_id":"order-abc-123","amount":125.5,"items":[{"sku":"a","qty":2},{"sku":"b","qty":1}],"note":"reserved \"funds\""}`)
	var big bytes.Buffer
	big.WriteByte('[')
	for big.Len() < 1<<20 {
		big.Write(small)
		big.WriteByte(',')
	}
	big.WriteString("null]")
	for _, bc := range []struct {
		name string
		data []byte
	}{{"small", small}, {"1MiB", big.Bytes()}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.data)))
			for b.Loop() {
				if err := Check(bc.data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
