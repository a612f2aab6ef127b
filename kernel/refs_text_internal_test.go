package kernel

import (
	"math"
	"strings"
	"testing"
)

// textRef is textOf(resolveRefs(s, lookup)) as it was written before
// interpolate: a strings.Builder and textOf per value.
func textRef(s string, lookup func(path string) (any, bool)) string {
	i := strings.IndexByte(s, '$')
	if i < 0 {
		return s
	}
	if i == 0 {
		if n := scanRef(s[1:]); n == len(s)-1 {
			if v, ok := lookup(s[1:]); ok {
				return textOf(v)
			}
			return s
		}
	}
	var b strings.Builder
	for {
		b.WriteString(s[:i])
		s = s[i:]
		n := scanRef(s[1:])
		if n == 0 {
			b.WriteByte('$')
			s = s[1:]
		} else {
			if v, ok := lookup(s[1 : 1+n]); ok {
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

// Ensure a prompt's text (resolveText, which interpolates into a pooled
// buffer) and an argument's (resolveRefs) are what a Builder and textOf
// per value made, byte for byte, a value without a
// canonical form included (it reads as "", with nothing of it left
// behind), and that a text stays as it was when the buffer is reused.
func TestResolveTextMatchesResolveRefs(t *testing.T) {
	vars := map[string]any{
		"s":      "plain",
		"n":      120.5,
		"order":  map[string]any{"get_amount": map[string]any{"amount": 120.0, "order_id": "o-1"}, "get_status": nil},
		"list":   []any{"a", 1.0, true},
		"bad":    map[string]any{"a": 1.0, "b": math.Inf(1)},
		"dollar": "$s",
	}
	lookup := func(path string) (any, bool) {
		v, ok := vars[path]
		if !ok {
			return walkPath(vars["order"], path)
		}
		return v, true
	}
	prompts := []string{
		"", "no refs", "$s", "$n", "$order", "$missing", "$bad", "$",
		"Eligible? $order", "costs $5 for $s.", "$s$n$list", "$$s", "x $bad y", "x $bad",
		"$bad $s", "tail $", "$dollar then $missing.path", "get_amount is $get_amount.amount",
	}
	got := make([]string, len(prompts))
	for i, p := range prompts {
		want := textRef(p, lookup)
		got[i] = resolveText(p, lookup)
		if got[i] != want {
			t.Errorf("resolveText(%q) = %q, want %q", p, got[i], want)
		}
		if arg := textOf(resolveRefs(p, lookup)); arg != want {
			t.Errorf("textOf(resolveRefs(%q)) = %q, want %q", p, arg, want)
		}
	}
	for i, p := range prompts {
		if want := textRef(p, lookup); got[i] != want {
			t.Errorf("resolveText(%q) became %q after later calls, want %q", p, got[i], want)
		}
	}
}
