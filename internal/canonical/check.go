package canonical

import (
	"unicode/utf8"
)

// IsCanonical reports whether data is already the canonical form of the
// JSON value it holds: when it is true, Append of json.RawMessage(data)
// appends data unchanged, so the bytes can be used as they are.
//
// It only reads: no allocation, no output, no member sorting. It may
// answer false for some canonical texts (an object member name holding an
// escape sequence, which it does not decode to check the order); false
// only means "canonicalize to find out". FuzzIsCanonical holds it to
// Append.
func IsCanonical(data []byte) bool {
	return isCanonical(data, 0)
}

// isCanonical is IsCanonical of a value found at nesting depth (as the
// parser counts it: a container at depth MaxDepth or more is refused).
func isCanonical(data []byte, depth int) bool {
	c := checker{data: data}
	return c.value(depth) && c.pos == len(data)
}

// checker walks one JSON text and stops at the first byte that
// canonicalization would change.
type checker struct {
	data []byte
	pos  int
}

func (c *checker) value(depth int) bool {
	if c.pos >= len(c.data) {
		return false
	}
	switch b := c.data[c.pos]; {
	case b == '{':
		return c.object(depth)
	case b == '[':
		return c.array(depth)
	case b == '"':
		_, ok := c.string()
		return ok
	case b == 't':
		return c.literal("true")
	case b == 'f':
		return c.literal("false")
	case b == 'n':
		return c.literal("null")
	case b == '-' || ('0' <= b && b <= '9'):
		return c.number()
	}
	return false
}

func (c *checker) literal(lit string) bool {
	if len(c.data)-c.pos < len(lit) || string(c.data[c.pos:c.pos+len(lit)]) != lit {
		return false
	}
	c.pos += len(lit)
	return true
}

func (c *checker) array(depth int) bool {
	if depth >= MaxDepth {
		return false
	}
	c.pos++ // '['
	if c.pos < len(c.data) && c.data[c.pos] == ']' {
		c.pos++
		return true
	}
	for {
		if !c.value(depth + 1) {
			return false
		}
		if more, ok := c.after(']'); !more {
			return ok
		}
	}
}

// after reads what follows an element or a member: more is true past a
// ',', ok is true past the close; anything else is not canonical.
func (c *checker) after(close byte) (more, ok bool) {
	if c.pos >= len(c.data) {
		return false, false
	}
	switch c.data[c.pos] {
	case ',':
		c.pos++
		return true, true
	case close:
		c.pos++
		return false, true
	}
	return false, false
}

func (c *checker) object(depth int) bool {
	if depth >= MaxDepth {
		return false
	}
	c.pos++ // '{'
	if c.pos < len(c.data) && c.data[c.pos] == '}' {
		c.pos++
		return true
	}
	var prev []byte
	for i := 0; ; i++ {
		if c.pos >= len(c.data) || c.data[c.pos] != '"' {
			return false
		}
		key, ok := c.string()
		if !ok || key == nil {
			// A name with an escape: its order is not checked here.
			return false
		}
		// Strictly ascending: sorted, and no name twice.
		if i > 0 && CompareKeys(prev, key) >= 0 {
			return false
		}
		prev = key
		if c.pos >= len(c.data) || c.data[c.pos] != ':' {
			return false
		}
		c.pos++
		if !c.value(depth + 1) {
			return false
		}
		if more, ok := c.after('}'); !more {
			return ok
		}
	}
}

// string checks the string at c.pos is written as AppendQuoted writes it
// in the JCS style: valid UTF-8, only '"', '\\' and the control
// characters escaped, the short escapes where they exist and \u00xx in
// lowercase hex otherwise. It returns the string's content when it has no
// escape, nil when it has one.
func (c *checker) string() ([]byte, bool) {
	c.pos++ // opening quote
	start := c.pos
	escaped := false
	for c.pos < len(c.data) {
		b := c.data[c.pos]
		switch {
		case b == '"':
			s := c.data[start:c.pos]
			c.pos++
			if escaped {
				return nil, true
			}
			return s, true
		case b == '\\':
			if !c.escape() {
				return nil, false
			}
			escaped = true
		case b < 0x20:
			return nil, false
		case b < utf8.RuneSelf:
			c.pos++
		default:
			r, size := utf8.DecodeRune(c.data[c.pos:])
			if r == utf8.RuneError && size == 1 {
				return nil, false
			}
			c.pos += size
		}
	}
	return nil, false
}

// escape checks the escape sequence at c.pos is the canonical one for the
// character it stands for, and steps over it.
func (c *checker) escape() bool {
	if len(c.data)-c.pos < 2 {
		return false
	}
	switch c.data[c.pos+1] {
	case '"', '\\', 'b', 'f', 'n', 'r', 't':
		c.pos += 2
		return true
	case 'u':
		// Only a control character without a short form is written as
		// \u00xx, in lowercase hex.
		if len(c.data)-c.pos < 6 || c.data[c.pos+2] != '0' || c.data[c.pos+3] != '0' {
			return false
		}
		hi, lo := c.data[c.pos+4], c.data[c.pos+5]
		if hi != '0' && hi != '1' {
			return false
		}
		var v byte
		switch {
		case '0' <= lo && lo <= '9':
			v = lo - '0'
		case 'a' <= lo && lo <= 'f':
			v = lo - 'a' + 10
		default:
			return false
		}
		v += (hi - '0') << 4
		switch v {
		case '\b', '\f', '\n', '\r', '\t':
			return false
		}
		c.pos += 6
		return true
	}
	return false
}

// number checks the number at c.pos is written as appendFloat writes the
// float64 it denotes.
func (c *checker) number() bool {
	start := c.pos
	c.pos = scanNumber(c.data, c.pos)
	s := c.data[start:c.pos]
	// The common case: an integer of at most 15 digits (below 2^53, so
	// exactly its own float64, printed as its digits), no leading zero,
	// not "-0" (which prints as "0").
	digits := s
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if n := len(digits); n > 0 && n <= 15 && (digits[0] != '0' || (n == 1 && len(s) == 1)) {
		all := true
		for _, d := range digits {
			if !isDigit(d) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	if !validNumber(s) {
		return false
	}
	var buf [40]byte
	out, err := appendNumberText(buf[:0], s)
	return err == nil && string(out) == string(s)
}
