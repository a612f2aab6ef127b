// Package jsonlimit holds the limits on JSON data nano-vm-mcp accepts from
// anyone it does not trust (MCP clients, uploaded manifests, program inputs,
// resume payloads and every tool's output), the checks that enforce them,
// and the clipping of error text that quotes such data.
//
// The limits are checked where data is accepted, before it reaches a state,
// a step record or an envelope; every decoder of stored records reads back
// deeper than MaxDepth (MaxRecordDepth), so nothing accepted can be stored
// and then fail to read back. See .rationale/storage.md "Why one nesting
// limit of 128, checked where data is accepted?".
//
// # Invariants
//
//   - Depth counts open arrays and objects: a scalar is 0 deep, [1] is 1,
//     {"a":[1]} is 2. A value MaxDepth deep is accepted, one deeper refused.
//   - MaxDepth + RecordOverhead <= MaxRecordDepth <= 10000 (the limit of
//     encoding/json's decoder, which cannot be raised): a test holds it.
package jsonlimit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxDepth is how deeply arrays and objects may nest in any JSON value
// accepted from outside: a program, a run's input, a resume payload, a
// manifest (with its schemas) and a tool's output. Real data rarely nests
// past 20; 128 leaves room for generated ASTs and schemas while keeping
// every record built around such a value far inside every decoder's limit.
const MaxDepth = 128

// RecordOverhead bounds the nesting a stored record adds around an
// accepted value (a trace header's final_output, a parallel step's
// sub_steps[].output, an envelope's payload, the state's steps map).
const RecordOverhead = 16

// MaxRecordDepth is how deeply every decoder of stored records (jsonread,
// canonical, the trace and envelope decoders) must be able to read.
const MaxRecordDepth = 1000

// MaxNumberLen is the longest number text accepted, in bytes. JSON numbers
// are IEEE 754 doubles here (as in RFC 8785): 17 significant digits and an
// exponent say everything a double holds, so a longer number is refused
// rather than silently rounded; keep big integers and decimals in strings.
const MaxNumberLen = 100

// Size limits of accepted data, in bytes of JSON.
const (
	// MaxProgramBytes bounds a program.
	MaxProgramBytes = 1 << 20
	// MaxInputBytes bounds a run's input and a resume payload.
	MaxInputBytes = 4 << 20
	// MaxManifestBytes bounds a tool manifest, schemas included.
	MaxManifestBytes = 1 << 20
)

// ErrDepth is returned when a value nests deeper than MaxDepth.
var ErrDepth = errors.New("nesting too deep")

// ErrNumber is returned when a number is longer than MaxNumberLen or
// outside the range of a float64.
var ErrNumber = errors.New("number not accepted")

// ErrSize is returned when data is larger than its size limit.
var ErrSize = errors.New("too large")

// DepthError reports a value nested deeper than the limit.
type DepthError struct {
	// Depth is the depth reached when the check stopped: Limit+1.
	Depth, Limit int
}

func (e *DepthError) Error() string {
	return fmt.Sprintf("nesting depth %d exceeds the limit of %d", e.Depth, e.Limit)
}

// Unwrap returns ErrDepth.
func (e *DepthError) Unwrap() error { return ErrDepth }

// NumberError reports a number that is too long or out of range.
type NumberError struct {
	// Text is an excerpt of the number; Len its whole length.
	Text string
	Len  int
	// TooLong is true for a number over MaxNumberLen, false for one out of
	// the float64 range.
	TooLong bool
}

func (e *NumberError) Error() string {
	if e.TooLong {
		return fmt.Sprintf("a number of %s characters exceeds the limit of %d (keep big numbers in strings)", Group(e.Len), MaxNumberLen)
	}
	return fmt.Sprintf("number %s is outside the range of a 64-bit float", e.Text)
}

// Unwrap returns ErrNumber.
func (e *NumberError) Unwrap() error { return ErrNumber }

// CheckSize returns an error naming what and limit when n > limit.
func CheckSize(what string, n, limit int) error {
	if n <= limit {
		return nil
	}
	return fmt.Errorf("%s is %s bytes, over the limit of %s: %w", what, Group(n), Group(limit), ErrSize)
}

// Check scans JSON text and reports the first place it nests deeper than
// MaxDepth or holds a number longer than MaxNumberLen or out of range. It
// does not otherwise validate the text: invalid JSON is left to the
// decoder, which says what is wrong with it. It runs in one pass without
// allocating.
func Check(data []byte) error {
	depth := 0
	for i := 0; i < len(data); i++ {
		switch c := data[i]; {
		case c == '[' || c == '{':
			if depth++; depth > MaxDepth {
				return &DepthError{Depth: depth, Limit: MaxDepth}
			}
		case c == ']' || c == '}':
			depth--
		case c == '"':
			for i++; i < len(data) && data[i] != '"'; i++ {
				if data[i] == '\\' {
					i++
				}
			}
		case c == '-' || ('0' <= c && c <= '9'):
			j := i + 1
			for j < len(data) && numberByte(data[j]) {
				j++
			}
			if err := checkNumber(data[i:j]); err != nil {
				return err
			}
			i = j - 1
		}
	}
	return nil
}

func numberByte(c byte) bool {
	return '0' <= c && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'
}

// checkNumber checks one number's text.
func checkNumber(text []byte) error {
	if len(text) > MaxNumberLen {
		return &NumberError{Text: Excerpt(string(text), 40), Len: len(text), TooLong: true}
	}
	// Without an exponent, MaxNumberLen digits stay far inside the range.
	if !bytes.ContainsAny(text, "eE") {
		return nil
	}
	if _, err := strconv.ParseFloat(string(text), 64); errors.Is(err, strconv.ErrRange) {
		return &NumberError{Text: string(text), Len: len(text)}
	}
	return nil // a number, or not one at all, which the decoder reports
}

// CheckValue is Check for a decoded value: the maps, slices, float64s and
// json.Numbers encoding/json decodes to. Other types are not looked into.
func CheckValue(v any) error {
	return checkValue(v, 0)
}

func checkValue(v any, depth int) error {
	switch v := v.(type) {
	case map[string]any:
		if depth++; depth > MaxDepth {
			return &DepthError{Depth: depth, Limit: MaxDepth}
		}
		for _, e := range v {
			if err := checkValue(e, depth); err != nil {
				return err
			}
		}
	case []any:
		if depth++; depth > MaxDepth {
			return &DepthError{Depth: depth, Limit: MaxDepth}
		}
		for _, e := range v {
			if err := checkValue(e, depth); err != nil {
				return err
			}
		}
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return &NumberError{Text: strconv.FormatFloat(v, 'g', -1, 64)}
		}
	case json.Number:
		return checkNumber([]byte(v))
	}
	return nil
}

// MaxExcerpt is the default length of an excerpt of client or guest data
// quoted in an error: what Excerpt keeps when asked for 0.
const MaxExcerpt = 500

// Excerpt returns s when it is at most max bytes, else its first max bytes
// (cut on a rune boundary) followed by "…(412,345 bytes in all)". A max of
// 0 or less means MaxExcerpt. Error text that quotes data from a client or
// a guest goes through it, so no error outgrows the answer it travels in.
func Excerpt(s string, max int) string {
	if max <= 0 {
		max = MaxExcerpt
	}
	if len(s) <= max {
		return s
	}
	n := max
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strings.ToValidUTF8(s[:n], "") + "…(" + Group(len(s)) + " bytes in all)"
}

// Group writes n with thousands separators, as the messages of this
// module quote sizes: 412,345.
func Group(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
