package tools

import (
	"cmp"
	"encoding/json"
	"slices"
	"strings"
)

// scrub replaces every secret value this call resolved with its ref, both
// raw and JSON-escaped, so neither the result nor the log leaks it.
//
// Longer values go first and the text is scanned once: when one secret
// contains another, the longer is replaced whole rather than leaving the
// rest of it around the shorter one's ref, and a ref just written is never
// scanned again (a short secret may occur inside a ref).
func (s *callState) scrub(b []byte) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.secrets) == 0 || len(b) == 0 {
		return b
	}
	type pair struct{ val, ref string }
	pairs := make([]pair, 0, 2*len(s.secrets))
	for val, ref := range s.secrets {
		pairs = append(pairs, pair{val, ref})
		if esc, err := json.Marshal(val); err == nil {
			if esc := string(esc[1 : len(esc)-1]); esc != val {
				pairs = append(pairs, pair{esc, ref})
			}
		}
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if c := cmp.Compare(len(b.val), len(a.val)); c != 0 {
			return c
		}
		return strings.Compare(a.val, b.val)
	})
	oldnew := make([]string, 0, 2*len(pairs))
	for _, p := range pairs {
		oldnew = append(oldnew, p.val, p.ref)
	}
	return []byte(strings.NewReplacer(oldnew...).Replace(string(b)))
}
