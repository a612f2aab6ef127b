package jsonwrite

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// marshal is the definition every Append function is held to.
func marshal(t testing.TB, v any) ([]byte, bool) {
	t.Helper()
	b, err := json.Marshal(v)
	return b, err == nil
}

// checkValue holds AppendValue to json.Marshal for v: the same bytes
// whenever AppendValue takes it, and json.Marshal must then succeed.
func checkValue(t testing.TB, v any) {
	t.Helper()
	got, ok := AppendValue([]byte("prefix"), v)
	want, wantOK := marshal(t, v)
	if !ok {
		return // left to encoding/json: nothing to compare
	}
	if !wantOK {
		t.Fatalf("AppendValue took %#v, which json.Marshal refuses", v)
	}
	if !bytes.Equal(got[len("prefix"):], want) {
		t.Fatalf("AppendValue(%#v)\n got %s\nwant %s", v, got[len("prefix"):], want)
	}
}

var awkwardStrings = []string{
	"", "plain", `quote " backslash \ slash /`, "<script>&amp;</script>", "\x00\x01\x1f\x7f",
	"\b\f\n\r\t", "\u2028\u2029", "é ü 日本 🎉", "\xff\xfe invalid \xc3", "a\xe2\x80", "\xed\xa0\x80",
	"U+FFFD \ufffd", strings.Repeat("x", 300),
}

var awkwardFloats = []float64{
	0, math.Copysign(0, -1), 1, -1, 0.1, 1e-6, 9.99999e-7, 1e-7, 1e20, 1e21, 123456789012345678901234,
	math.MaxFloat64, math.SmallestNonzeroFloat64, 1.5e-300, -2.5e300, 3.14159, 1 << 53, 1<<53 + 1,
	// Around AppendFloat's whole-number fast path (below 10^15).
	1e15, 1e15 - 1, 1e15 + 1, 999999999999999.9, 12, 120, 1e14, 0.5, 7.0000001,
}

// Ensure AppendValue writes exactly what json.Marshal writes for awkward
// strings, floats, nesting and every supported type, and refuses NaN and
// infinities as json.Marshal does.
func TestAppendValueMatchesMarshal(t *testing.T) {
	var vals []any
	for _, s := range awkwardStrings {
		vals = append(vals, s, map[string]any{s: s}, []string{s}, map[string]string{s: s, "k": s})
	}
	for _, f := range awkwardFloats {
		vals = append(vals, f, -f, []any{f})
	}
	vals = append(vals, nil, true, false, 0, -7, math.MaxInt64, []any{}, map[string]any{}, []any(nil),
		map[string]any(nil), []string(nil), map[string]string(nil),
		map[string]any{"b": 1.0, "a": []any{nil, true, "x", map[string]any{"z": 2.0, "Z": 3.0, "é": 4.0}}})
	for _, v := range vals {
		checkValue(t, v)
	}
	for _, v := range []any{math.NaN(), math.Inf(1), []any{math.Inf(-1)}, map[string]any{"x": math.NaN()}} {
		if _, ok := AppendValue(nil, v); ok {
			t.Errorf("AppendValue(%v) accepted a value json.Marshal refuses", v)
		}
	}
	// Types it does not know are left to encoding/json.
	for _, v := range []any{int64(1), json.Number("1"), []byte("x"), struct{}{}, map[int]any{}, float32(1)} {
		if _, ok := AppendValue(nil, v); ok {
			t.Errorf("AppendValue(%T) took a type it should leave to encoding/json", v)
		}
	}
}

// randomValue builds a JSON-shaped value from r.
func randomValue(r *rand.Rand, depth int) any {
	switch k := r.IntN(9); {
	case k == 0:
		return nil
	case k == 1:
		return r.IntN(2) == 0
	case k == 2:
		return awkwardFloats[r.IntN(len(awkwardFloats))] * float64(r.IntN(3)-1)
	case k == 3:
		return math.Float64frombits(r.Uint64())
	case k == 4:
		return randomString(r)
	case k == 5 && depth < 4:
		n := r.IntN(5)
		a := make([]any, n)
		for i := range a {
			a[i] = randomValue(r, depth+1)
		}
		return a
	case k >= 6 && depth < 4:
		n := r.IntN(8)
		m := make(map[string]any, n)
		for range n {
			m[randomString(r)] = randomValue(r, depth+1)
		}
		return m
	}
	return r.Float64() * 1e6
}

func randomString(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		return awkwardStrings[r.IntN(len(awkwardStrings))]
	}
	b := make([]byte, r.IntN(12))
	for i := range b {
		b[i] = byte(r.IntN(256))
		if r.IntN(2) == 0 {
			b[i] = 'a' + byte(r.IntN(26))
		}
	}
	return string(b)
}

// Ensure AppendValue matches json.Marshal over many random values
// (random bytes in strings and keys, random float bits, nesting).
func TestAppendValueRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		checkValue(t, randomValue(r, 0))
	}
}

// FuzzAppendValue decodes the input with encoding/json and holds
// AppendValue to json.Marshal on the result.
func FuzzAppendValue(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5e-7,"<&>"],"b":null}`, `"\u2028\ud800"`, `[1e21,-0,0.000001]`, `{"":{"":[]}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v any
		if json.Unmarshal(data, &v) != nil {
			return
		}
		checkValue(t, v)
		checkValue(t, map[string]any{string(data): v})
		checkValue(t, string(data))
	})
}

// Ensure AppendTime writes what time.Time's MarshalJSON writes, and
// refuses what it refuses.
func TestAppendTimeMatchesMarshal(t *testing.T) {
	times := []time.Time{
		{}, time.Unix(0, 0).UTC(), time.Date(2026, 12, 1, 9, 50, 0, 123456789, time.UTC),
		time.Date(2026, 12, 1, 9, 50, 0, 120000000, time.FixedZone("x", 5*3600+30*60)),
		time.Date(2026, 12, 1, 9, 50, 0, 0, time.FixedZone("y", -8*3600)),
		time.Date(1, 1, 1, 0, 0, 0, 1, time.FixedZone("lmt", 1172)),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2000, 1, 1, 0, 0, 0, 0, time.FixedZone("big", 24*3600)),
		time.Date(2000, 1, 1, 0, 0, 0, 0, time.FixedZone("huge", 100*3600)),
		time.Now(),
	}
	for _, tm := range times {
		want, err := tm.MarshalJSON()
		got, ok := AppendTime([]byte("p"), tm)
		if ok != (err == nil) {
			t.Errorf("%v: AppendTime ok %v, MarshalJSON err %v", tm, ok, err)
			continue
		}
		if ok && string(got[1:]) != string(want) {
			t.Errorf("%v: got %s want %s", tm, got[1:], want)
		}
		if !ok && string(got) != "p" {
			t.Errorf("%v: refused but left %q", tm, got)
		}
	}
}

// Ensure AppendRaw writes a raw message verbatim only where json.Marshal
// would, and refuses the rest.
func TestAppendRaw(t *testing.T) {
	for _, raw := range []string{`{"a":1}`, `[1,"x"]`, `"<"`, `{"a": 1}`, "{\n}", `"\u2028"`, "\"\u2028\"", `null`, `"é"`, `"&"`} {
		got, ok := AppendRaw(nil, []byte(raw))
		want, err := json.Marshal(json.RawMessage(raw))
		if err != nil {
			t.Fatal(err)
		}
		if ok && string(got) != string(want) {
			t.Errorf("%s: got %s want %s", raw, got, want)
		}
		if !ok && string(want) == raw && !strings.ContainsRune(raw, 'é') {
			t.Errorf("%s: refused a raw message json.Marshal keeps as is", raw)
		}
	}
	if _, ok := AppendRaw(nil, nil); ok {
		t.Error("empty raw accepted")
	}
}

// Ensure Valid agrees with json.Valid on awkward inputs, including the
// nesting limit.
func TestValidMatchesEncodingJSON(t *testing.T) {
	cases := []string{
		``, ` `, `1`, `-`, `-0`, `01`, `1.`, `1.5`, `1e`, `1e+`, `1E-5`, `.5`, `"`, `"\`, `"\u12"`, `"\u12g4"`, `"\uABCD"`,
		`"\x"`, "\"\x01\"", "\"\xff\"", `tru`, `true`, `truex`, `null `, ` {} `, `{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`,
		`{"a":1 , "b" : [ ]}`, `[1,]`, `[,1]`, `[1 2]`, `[]]`, `[[]`, `{"a":1}{}`, `"a" "b"`, "[1,\n2]", `{1:2}`,
		strings.Repeat("[", 10000) + strings.Repeat("]", 10000), strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
		strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000),
		strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001),
	}
	for _, c := range cases {
		if got, want := Valid([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("Valid(%.40q) = %v, json.Valid %v", c, got, want)
		}
	}
}

// FuzzValid holds Valid to json.Valid.
func FuzzValid(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5e-7,"x"],"b":null}`, `[]`, `"\u0041"`, `-0.0e+1`, `{"a" : true }`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := Valid(data), json.Valid(data); got != want {
			t.Fatalf("Valid(%q) = %v, json.Valid %v", data, got, want)
		}
	})
}

func BenchmarkValid(b *testing.B) {
	v := map[string]any{"index": 3.0, "output": map[string]any{"order_id": "o-1", "amount": 42.5, "items": []any{"a", "b"}}, "state_hash": strings.Repeat("ab", 32)}
	data, _ := json.Marshal(v)
	// A step record as the refund pipeline's tool steps write them.
	record := []byte(`{"index":2,"step_id":"enrich","type":"parallel","status":"success","output":{"get_amount":{"amount":129.5,"order_id":"o-17"},"get_status":{"order_id":"o-17","status":"delivered"}},"retries":0,"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0,"cost_usd":0},"state_hash":"` + strings.Repeat("3f", 32) + `","sub_steps":[{"step_id":"get_amount","type":"tool","status":"success","output":{"amount":129.5,"order_id":"o-17"},"retries":0,"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0,"cost_usd":0},"tool":{"module_sha256":"` + strings.Repeat("a1", 32) + `","manifest_sha256":"` + strings.Repeat("b2", 32) + `","source":"operator"},"started_at":"2026-12-01T15:24:50.123456789Z","finished_at":"2026-12-01T15:24:50.123498765Z","duration_ms":0.042}],"started_at":"2026-12-01T15:24:50.123456789Z","finished_at":"2026-12-01T15:24:50.123498765Z","duration_ms":0.042}`)
	b.Run("record", func(b *testing.B) {
		b.SetBytes(int64(len(record)))
		for b.Loop() {
			if !Valid(record) {
				b.Fatal("not valid")
			}
		}
	})
	b.Run("jsonwrite", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			Valid(data)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			json.Valid(data)
		}
	})
}

// TestAppendQuotedJCS holds the JCS styles (package canonical's quoting) to
// RFC 8785: only '"', '\\' and control characters escaped, invalid UTF-8
// refused at its offset (JCS) or written as a raw U+FFFD (JCSReplace).
func TestAppendQuotedJCS(t *testing.T) {
	tests := []struct {
		name, in, want, wantReplace string
		bad                         int
	}{
		{name: "html and separators as themselves", in: "<&>\u2028\u2029é", want: "\"<&>\u2028\u2029é\"", bad: -1},
		{name: "short and long escapes", in: "\"\\\b\f\n\r\t\x01\x7f", want: `"\"\\\b\f\n\r\t\u0001` + "\x7f\"", bad: -1},
		{name: "invalid byte", in: "ab\xffc", wantReplace: "\"ab\uFFFDc\"", bad: 2},
		{name: "surrogate", in: "\xed\xa0\x80", wantReplace: "\"\uFFFD\uFFFD\uFFFD\"", bad: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, bad := AppendQuoted(nil, tc.in, JCS)
			if bad != tc.bad {
				t.Fatalf("JCS bad = %d, want %d", bad, tc.bad)
			}
			if bad < 0 && string(got) != tc.want {
				t.Fatalf("JCS = %s, want %s", got, tc.want)
			}
			rep, bad := AppendQuoted(nil, []byte(tc.in), JCSReplace)
			want := tc.wantReplace
			if want == "" {
				want = tc.want
			}
			if bad != -1 || string(rep) != want {
				t.Fatalf("JCSReplace = %s, %d; want %s, -1", rep, bad, want)
			}
		})
	}
}

// TestPlain8 holds the eight-byte test of Valid's string scan to a byte
// loop: every byte value at every position, over plain and over 0xff
// backgrounds (the borrow of the subtraction must not make a byte above
// a plain one look special, nor hide one).
func TestPlain8(t *testing.T) {
	special := func(c byte) bool { return c == '"' || c == '\\' || c < 0x20 }
	for _, bg := range []byte{'a', 0xff, 0x20, 0x80, 0x21, 0x5d} {
		for pos := range 8 {
			for c := range 256 {
				var w [8]byte
				for i := range w {
					w[i] = bg
				}
				w[pos] = byte(c)
				want := true
				for _, b := range w {
					if special(b) {
						want = false
					}
				}
				if got := plain8(binary.LittleEndian.Uint64(w[:])); got != want {
					t.Fatalf("plain8(%q) = %v, want %v", w, got, want)
				}
			}
		}
	}
	// Words of bytes drawn near the boundaries, several special at once.
	near := []byte{0, 1, 0x1f, 0x20, 0x21, '"' - 1, '"', '"' + 1, '\\' - 1, '\\', '\\' + 1, 0x7f, 0x80, 0xa2, 0xdc, 0xff}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		var w [8]byte
		want := true
		for i := range w {
			w[i] = near[r.IntN(len(near))]
			if special(w[i]) {
				want = false
			}
		}
		if got := plain8(binary.LittleEndian.Uint64(w[:])); got != want {
			t.Fatalf("plain8(%q) = %v, want %v", w, got, want)
		}
	}
}
