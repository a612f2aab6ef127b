package canonical

// CompareKeys orders two valid UTF-8 object names (the one key order of
// every canonical form in nano-vm-mcp; the kernel's state hash uses it too) by their UTF-16 code units,
// as RFC 8785 section 3.2.3 requires. UTF-8 byte order is code point order,
// and code point order is UTF-16 order except between a supplementary
// character (a surrogate pair, 0xD800–0xDBFF first) and a character in
// U+E000–U+FFFF, where UTF-16 puts the supplementary one first. Those two
// differ already in their lead bytes (0xF0–0xF4 against 0xEE–0xEF), so one
// byte comparison plus that single correction suffices: both strings share
// every byte before the first difference, hence its rune boundaries, so the
// first differing bytes are either both lead bytes or both continuations.
func CompareKeys[T ~string | ~[]byte](a, b T) int {
	n := min(len(a), len(b))
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	if i == n {
		switch {
		case len(a) < len(b):
			return -1
		case len(a) > len(b):
			return 1
		}
		return 0
	}
	ca, cb := a[i], b[i]
	if ca >= 0xEE && cb >= 0xEE && (ca >= 0xF0) != (cb >= 0xF0) {
		if ca >= 0xF0 {
			return -1 // a is supplementary: its high surrogate sorts first
		}
		return 1
	}
	if ca < cb {
		return -1
	}
	return 1
}
