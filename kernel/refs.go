package kernel

import (
	"strings"

	"github.com/nanovm/nano-vm-mcp/kernel/canonical"
)

// A reference is $ followed by a path: segments of letters, digits, '_' and
// '-', separated by dots, the first starting with a letter or '_' — the same
// grammar the condition language reads.

func isRefStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isRefChar(c byte) bool {
	return isRefStart(c) || (c >= '0' && c <= '9') || c == '-'
}

// scanRef reads a reference path starting just after a '$' at s[0:], and
// returns the path's length in bytes (0 if there is none).
func scanRef(s string) int {
	if s == "" || !isRefStart(s[0]) {
		return 0
	}
	i := 1
	for {
		for i < len(s) && isRefChar(s[i]) {
			i++
		}
		if i+1 < len(s) && s[i] == '.' && isRefChar(s[i+1]) {
			i++
			continue
		}
		return i
	}
}

// resolveRefs returns v with every $reference in its strings resolved: a
// string that is exactly one reference becomes the referenced value (typed);
// references inside a larger string are interpolated as text; a missing
// reference stays as written. Maps and slices are copied only when
// something in them changed, so a step without references costs nothing.
func resolveRefs(v any, lookup func([]string) (any, bool)) any {
	r, _ := resolve(v, lookup)
	return r
}

func resolve(v any, lookup func([]string) (any, bool)) (any, bool) {
	switch x := v.(type) {
	case string:
		if strings.IndexByte(x, '$') < 0 {
			return x, false
		}
		r := resolveString(x, lookup)
		s, same := r.(string)
		return r, !same || s != x
	case map[string]any:
		var out map[string]any
		for k, e := range x {
			r, changed := resolve(e, lookup)
			if changed && out == nil {
				out = make(map[string]any, len(x))
				for k2, e2 := range x {
					out[k2] = e2
				}
			}
			if out != nil {
				out[k] = r
			}
		}
		if out == nil {
			return x, false
		}
		return out, true
	case []any:
		var out []any
		for i, e := range x {
			r, changed := resolve(e, lookup)
			if changed && out == nil {
				out = make([]any, len(x))
				copy(out, x)
			}
			if out != nil {
				out[i] = r
			}
		}
		if out == nil {
			return x, false
		}
		return out, true
	}
	return v, false
}

func resolveString(s string, lookup func([]string) (any, bool)) any {
	i := strings.IndexByte(s, '$')
	if i < 0 {
		return s
	}
	if i == 0 {
		if n := scanRef(s[1:]); n == len(s)-1 {
			if v, ok := lookup(strings.Split(s[1:], ".")); ok {
				return v
			}
			return s
		}
	}
	var b strings.Builder
	b.Grow(len(s))
	for {
		b.WriteString(s[:i])
		s = s[i:]
		n := scanRef(s[1:])
		if n == 0 {
			b.WriteByte('$')
			s = s[1:]
		} else {
			path := s[1 : 1+n]
			if v, ok := lookup(strings.Split(path, ".")); ok {
				b.WriteString(textOf(v))
			} else {
				b.WriteString(s[:1+n])
			}
			s = s[1+n:]
		}
		if i = strings.IndexByte(s, '$'); i < 0 {
			b.WriteString(s)
			return b.String()
		}
	}
}

// textOf renders a value inside a larger string: strings as themselves,
// everything else as canonical JSON (so the same value always reads the
// same in a prompt).
func textOf(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := canonical.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}
