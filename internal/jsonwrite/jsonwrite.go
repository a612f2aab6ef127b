// Package jsonwrite appends JSON exactly as encoding/json's Marshal writes
// it, without reflection, for the values records hold: strings, float64,
// bool, nil, map[string]any, []any, map[string]string and []string, plus
// times and raw messages. Anything else makes an Append function report
// false, and the caller hands the whole value to encoding/json, which
// stays the definition of the output. Tests and fuzz targets hold every
// function to json.Marshal (and Valid to json.Valid) byte for byte.
//
// It exists for the durable-step path: every step's record, trace header
// and execution record used to go through json.Marshal's reflection, and
// their bytes are what the audit chain hashes, so they must not change.
package jsonwrite

import (
	"math"
	"slices"
	"strconv"
	"time"
)

// MaxDepth is how deep AppendValue nests before it gives up (reports
// false): stored values are bounded far below (kernel/jsonlimit), and
// encoding/json, which then takes over, has its own cycle check.
const MaxDepth = 1000

// AppendString appends s quoted as json.Marshal quotes a string: HTML
// characters, U+2028 and U+2029 escaped, invalid UTF-8 replaced by
// U+FFFD (AppendQuoted in style Marshal).
func AppendString(dst []byte, s string) []byte {
	dst, _ = AppendQuoted(dst, s, Marshal)
	return dst
}

// AppendFloat appends f as json.Marshal writes a float64; false for NaN
// and infinities, which it refuses.
func AppendFloat(dst []byte, f float64) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, false
	}
	abs := math.Abs(f)
	if abs < 1e15 && f == math.Trunc(f) && (f != 0 || !math.Signbit(f)) {
		// A whole number below 10^15 prints in 'f' format as its
		// integer digits (a counter, a cost of 0): the same bytes,
		// without the shortest-decimal search. -0 prints as "-0" and
		// takes the general path.
		return strconv.AppendInt(dst, int64(f), 10), true
	}
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, true
}

// AppendInt appends an integer.
func AppendInt(dst []byte, n int) []byte { return strconv.AppendInt(dst, int64(n), 10) }

// AppendBool appends true or false.
func AppendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, "true"...)
	}
	return append(dst, "false"...)
}

// AppendTime appends t as time.Time's MarshalJSON writes it (quoted RFC
// 3339 with nanoseconds); false where MarshalJSON fails (a year outside
// 0–9999, a zone offset of 24 hours or more).
func AppendTime(dst []byte, t time.Time) ([]byte, bool) {
	n0 := len(dst)
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	b := dst[n0+1:]
	switch {
	case len(b) < 5 || b[4] != '-':
		return dst[:n0], false
	case b[len(b)-1] != 'Z':
		c := b[len(b)-len("Z07:00")]
		h := b[len(b)-len("07:00"):]
		if ('0' <= c && c <= '9') || 10*(h[0]-'0')+(h[1]-'0') >= 24 {
			return dst[:n0], false
		}
	}
	return append(dst, '"'), true
}

// AppendRaw appends a json.RawMessage as json.Marshal writes one that is
// already compact and holds nothing it would escape (whitespace, '<',
// '>', '&', U+2028, U+2029): verbatim. It reports false for anything
// else, which encoding/json would rewrite, and for an empty raw (which it
// writes as null). raw must be valid JSON; the caller checks.
func AppendRaw(dst []byte, raw []byte) ([]byte, bool) {
	if len(raw) == 0 {
		return dst, false
	}
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\n', '\r', '<', '>', '&', 0xE2:
			// 0xE2 leads U+2028 and U+2029 (and other characters, which
			// merely take the slow path).
			return dst, false
		}
	}
	return append(dst, raw...), true
}

// AppendValue appends v as json.Marshal writes it, for nil, bool,
// float64, string, int, map[string]any, []any, map[string]string and
// []string (recursively). It reports false for anything else (and for
// NaN, infinities, or nesting past MaxDepth), leaving dst's contents past
// its length unspecified: the caller then encodes with encoding/json.
func AppendValue(dst []byte, v any) ([]byte, bool) {
	return appendValue(dst, v, 0)
}

func appendValue(dst []byte, v any, depth int) ([]byte, bool) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), true
	case string:
		return AppendString(dst, x), true
	case float64:
		return AppendFloat(dst, x)
	case bool:
		return AppendBool(dst, x), true
	case int:
		return AppendInt(dst, x), true
	case map[string]any:
		if x == nil {
			return append(dst, "null"...), true
		}
		if depth >= MaxDepth {
			return dst, false
		}
		dst = append(dst, '{')
		ok := true
		eachSorted(x, func(i int, k string, e any) bool {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendString(dst, k)
			dst = append(dst, ':')
			dst, ok = appendValue(dst, e, depth+1)
			return ok
		})
		if !ok {
			return dst, false
		}
		return append(dst, '}'), true
	case []any:
		if x == nil {
			return append(dst, "null"...), true
		}
		if depth >= MaxDepth {
			return dst, false
		}
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			var ok bool
			if dst, ok = appendValue(dst, e, depth+1); !ok {
				return dst, false
			}
		}
		return append(dst, ']'), true
	case map[string]string:
		if x == nil {
			return append(dst, "null"...), true
		}
		return AppendStringMap(dst, x), true
	case []string:
		if x == nil {
			return append(dst, "null"...), true
		}
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendString(dst, e)
		}
		return append(dst, ']'), true
	}
	return dst, false
}

// AppendStringMap appends m as json.Marshal writes a map[string]string:
// keys in byte order (a nil map is null).
func AppendStringMap(dst []byte, m map[string]string) []byte {
	if m == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '{')
	eachSorted(m, func(i int, k string, v string) bool {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, k)
		dst = append(dst, ':')
		dst = AppendString(dst, v)
		return true
	})
	return append(dst, '}')
}

// eachSorted calls f for m's entries in key order until f returns false.
// Small maps sort their keys in a stack array.
func eachSorted[V any](m map[string]V, f func(i int, k string, v V) bool) {
	var arr [16]string
	keys := arr[:0]
	if len(m) > len(arr) {
		keys = make([]string, 0, len(m))
	}
	for k := range m {
		keys = append(keys, k)
	}
	if len(keys) > 1 {
		slices.Sort(keys)
	}
	for i, k := range keys {
		if !f(i, k, m[k]) {
			return
		}
	}
}
