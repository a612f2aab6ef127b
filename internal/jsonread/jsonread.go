// Package jsonread reads JSON in the form encoding/json writes it, without
// reflection, for decoders of records read back many times (a trace's step
// records, the store's run records).
//
// A Reader is strict in one direction only: every method reports false for
// input it does not handle (and the caller then hands the whole value to
// encoding/json, which stays the definition of the result), and never
// reports true for input encoding/json rejects. What it accepts it decodes
// exactly as encoding/json would: escapes resolved, invalid UTF-8 and lone
// surrogates replaced by U+FFFD, numbers checked against JSON's grammar.
package jsonread

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/nanovm/nano-vm-mcp/internal/jsonlimit"
)

// maxDepth is how deeply a Reader follows nesting before it gives up,
// leaving the value to encoding/json, whose own limit (10,000) decides:
// every record built around data accepted under jsonlimit.MaxDepth is
// read here.
const maxDepth = jsonlimit.MaxRecordDepth

// Reader reads JSON as encoding/json writes it. Every method
// reports false for input it does not handle, which sends the whole value
// to encoding/json; it never reports true for input encoding/json rejects.
type Reader struct {
	b []byte
	// s is b as a string: a string without escapes is a substring of it,
	// one allocation for the whole record instead of one per string.
	s     string
	i     int
	depth int
}

// New returns a Reader of data.
func New(data []byte) *Reader {
	return &Reader{b: data, s: string(data)}
}

func (d *Reader) skipSpace() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *Reader) AtEnd() bool {
	d.skipSpace()
	return d.i == len(d.b)
}

// peek returns the next byte after white space, 0 at the end.
func (d *Reader) Peek() byte {
	d.skipSpace()
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

func (d *Reader) Eat(c byte) bool {
	if d.Peek() == c {
		d.i++
		return true
	}
	return false
}

// literal consumes the keyword w (true, false, null).
func (d *Reader) Literal(w string) bool {
	d.skipSpace()
	if len(d.b)-d.i >= len(w) && string(d.b[d.i:d.i+len(w)]) == w {
		d.i += len(w)
		return true
	}
	return false
}

// object reads an object, calling member for each name (decoded, as
// encoding/json matches it against field names) with the reader placed at
// the value. name is valid only during the call.
func (d *Reader) Object(member func(name []byte) bool) bool {
	if !d.Eat('{') {
		return false
	}
	d.depth++
	if d.depth > maxDepth {
		return false
	}
	if !d.Eat('}') {
		for {
			name, ok := d.StrBytes()
			if !ok || !d.Eat(':') || !member(name) {
				return false
			}
			if d.Eat(',') {
				continue
			}
			if !d.Eat('}') {
				return false
			}
			break
		}
	}
	d.depth--
	return true
}

// array reads an array, calling elem with the reader placed at each
// element; empty reports whether there were none.
func (d *Reader) Array(elem func() bool) (empty, ok bool) {
	if !d.Eat('[') {
		return false, false
	}
	d.depth++
	if d.depth > maxDepth {
		return false, false
	}
	if d.Eat(']') {
		d.depth--
		return true, true
	}
	for {
		if !elem() {
			return false, false
		}
		if d.Eat(',') {
			continue
		}
		if !d.Eat(']') {
			return false, false
		}
		d.depth--
		return false, true
	}
}

// Once records field bit in seen, refusing a repeated field: encoding/json
// merges a repeat into the first, which is not worth copying.
func Once(seen *uint32, bit uint32) bool {
	if *seen&bit != 0 {
		return false
	}
	*seen |= bit
	return true
}

// str reads a string as encoding/json decodes it: escapes resolved, bad
// UTF-8 and lone surrogates replaced by U+FFFD.
func (d *Reader) Str() (string, bool) {
	if !d.Eat('"') {
		return "", false
	}
	start := d.i
	if d.plain() {
		return d.s[start : d.i-1], true
	}
	b, ok := d.strSlow(start)
	return string(b), ok
}

// strBytes is str as bytes that alias the input when the string needs no
// decoding.
func (d *Reader) StrBytes() ([]byte, bool) {
	if !d.Eat('"') {
		return nil, false
	}
	start := d.i
	if d.plain() {
		return d.b[start : d.i-1], true
	}
	return d.strSlow(start)
}

// plain passes over the rest of a string (the reader just after its
// opening quote) and its closing quote, if it is ASCII without escapes,
// which decodes to itself; otherwise it reports false and stays put.
func (d *Reader) plain() bool {
	b := d.b
	for i := d.i; i < len(b); i++ {
		if c := b[i]; !plainByte[c] {
			if c == '"' {
				d.i = i + 1
				return true
			}
			return false
		}
	}
	return false
}

// plainByte marks the bytes a string may hold and still decode to itself.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// strSlow finishes a string from start (just after its opening quote)
// that holds escapes or non-ASCII bytes, following encoding/json's
// scanner (which escapes are valid) and its unquote (what they become).
func (d *Reader) strSlow(start int) ([]byte, bool) {
	b := d.b
	out := make([]byte, 0, len(b)-start)
	i := start
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			d.i = i + 1
			return out, true
		case c < 0x20:
			return nil, false
		case c == '\\':
			if i+1 >= len(b) {
				return nil, false
			}
			switch b[i+1] {
			case '"', '\\', '/':
				out = append(out, b[i+1])
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r := hex4(b[i:])
				if r < 0 {
					return nil, false
				}
				i += 6
				if utf16.IsSurrogate(r) {
					if r2 := hex4(b[i:]); r2 >= 0 {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							i += 6
							out = utf8.AppendRune(out, dec)
							continue
						}
					}
					r = utf8.RuneError
				}
				out = utf8.AppendRune(out, r)
				continue
			default:
				return nil, false
			}
			i += 2
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			out = utf8.AppendRune(out, r)
			i += size
		}
	}
	return nil, false
}

// hex4 decodes \uXXXX at the start of b, or returns -1.
func hex4(b []byte) rune {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range b[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// number reads a number's text, checked against JSON's grammar (which
// strconv's is wider than); integer reports it has no fraction or
// exponent.
func (d *Reader) Number() (text []byte, integer, ok bool) {
	d.skipSpace()
	b, start := d.b, d.i
	i := start
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	default:
		return nil, false, false
	}
	integer = true
	if i < len(b) && b[i] == '.' {
		integer = false
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return nil, false, false
		}
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		integer = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return nil, false, false
		}
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	}
	d.i = i
	return b[start:i], integer, true
}

// smallInt parses an integer's text of at most 18 digits, which int64
// holds exactly.
func smallInt(text []byte) (int64, bool) {
	neg := text[0] == '-'
	if neg {
		text = text[1:]
	}
	if len(text) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range text {
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// int reads a number into an int as encoding/json does: an integer that
// fits, anything else refused.
func (d *Reader) Int() (int, bool) {
	text, integer, ok := d.Number()
	if !ok || !integer {
		return 0, false
	}
	n, ok := smallInt(text)
	if !ok {
		var err error
		if n, err = strconv.ParseInt(string(text), 10, 64); err != nil {
			return 0, false
		}
	}
	if int64(int(n)) != n {
		return 0, false
	}
	return int(n), true
}

// float reads a number into a float64 as encoding/json does.
func (d *Reader) Float() (float64, bool) {
	text, integer, ok := d.Number()
	if !ok {
		return 0, false
	}
	return FloatText(text, integer)
}

// FloatText converts a number's text, as Number read it (integer as
// Number reported), to a float64 as encoding/json does; false when it is
// out of the float64 range.
func FloatText(text []byte, integer bool) (float64, bool) {
	// Up to 15 digits an integer converts exactly; -0 keeps its sign
	// through ParseFloat.
	if integer && len(text) <= 15 && string(text) != "-0" {
		n, _ := smallInt(text)
		return float64(n), true
	}
	f, err := strconv.ParseFloat(string(text), 64)
	if err != nil {
		return 0, false
	}
	return f, true
}

func (d *Reader) Bool() (bool, bool) {
	switch d.Peek() {
	case 't':
		return true, d.Literal("true")
	case 'f':
		return false, d.Literal("false")
	}
	return false, false
}

// time reads a time.Time the way encoding/json does: its UnmarshalJSON
// on the literal's text, quotes included.
func (d *Reader) Time(t *time.Time) bool {
	if d.Peek() != '"' {
		return false
	}
	start := d.i
	d.i++
	for d.i < len(d.b) && d.b[d.i] != '"' {
		if c := d.b[d.i]; c == '\\' || c < 0x20 {
			return false
		}
		d.i++
	}
	if d.i == len(d.b) {
		return false
	}
	d.i++
	return t.UnmarshalJSON(d.b[start:d.i]) == nil
}

// value reads any JSON value as encoding/json decodes it into an any.
func (d *Reader) Value() (any, bool) {
	switch c := d.Peek(); {
	case c == '"':
		return d.Str()
	case c == '{':
		m := make(map[string]any)
		ok := d.Object(func(name []byte) bool {
			key := string(name)
			v, ok := d.Value()
			m[key] = v
			return ok
		})
		return m, ok
	case c == '[':
		s := make([]any, 0)
		_, ok := d.Array(func() bool {
			v, ok := d.Value()
			s = append(s, v)
			return ok
		})
		return s, ok
	case c == 't', c == 'f':
		return d.Bool()
	case c == 'n':
		return nil, d.Literal("null")
	case c == '-' || ('0' <= c && c <= '9'):
		return d.Float()
	}
	return nil, false
}

// Skip passes over one value, checking it against JSON's grammar as
// encoding/json's scanner does.
func (d *Reader) Skip() bool {
	switch c := d.Peek(); {
	case c == '{':
		return d.Object(func([]byte) bool { return d.Skip() })
	case c == '[':
		_, ok := d.Array(d.Skip)
		return ok
	case c == '"':
		_, ok := d.StrBytes()
		return ok
	case c == 't':
		return d.Literal("true")
	case c == 'f':
		return d.Literal("false")
	case c == 'n':
		return d.Literal("null")
	case c == '-' || ('0' <= c && c <= '9'):
		_, _, ok := d.Number()
		return ok
	}
	return false
}

// Raw reads any value and copies its text, as a json.RawMessage field
// gets it.
func (d *Reader) Raw(out *json.RawMessage) bool {
	d.skipSpace()
	start := d.i
	if !d.Skip() {
		return false
	}
	*out = append(json.RawMessage(nil), d.b[start:d.i]...)
	return true
}
