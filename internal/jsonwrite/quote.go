package jsonwrite

import "unicode/utf8"

// Style is one of the two ways this module quotes a JSON string.
type Style uint8

const (
	// Marshal quotes as encoding/json's Marshal does: '<', '>', '&',
	// U+2028 and U+2029 escaped, each byte of invalid UTF-8 written as
	// \ufffd.
	Marshal Style = iota
	// JCS quotes as RFC 8785 (package canonical) does: only '"', '\\'
	// and the control characters are escaped, everything else is
	// written as itself; invalid UTF-8 is refused (see AppendQuoted).
	JCS
	// JCSReplace is JCS, but each byte of invalid UTF-8 is written as
	// U+FFFD (raw) instead of refused.
	JCSReplace
)

const hexDigits = "0123456789abcdef"

// marshalSafe and jcsSafe mark the ASCII bytes each style writes as
// themselves: marshalSafe is encoding/json's htmlSafeSet (everything
// printable but '"', '\\', '<', '>' and '&'); jcsSafe lets '<', '>' and
// '&' through.
var marshalSafe, jcsSafe = func() (m, j [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		m[c], j[c] = true, true
	}
	m['"'], m['\\'], m['<'], m['>'], m['&'] = false, false, false, false, false
	j['"'], j['\\'] = false, false
	return m, j
}()

// AppendQuoted appends s to dst as a quoted JSON string in the given
// style. The short escapes \b \f \n \r \t are used where they exist, the
// other escaped bytes are written as \u00xx in lowercase hex. bad is the
// byte offset of the first invalid UTF-8 sequence when style is JCS (dst
// then holds a partial string and must be dropped), and -1 otherwise.
func AppendQuoted[T ~string | ~[]byte](dst []byte, s T, style Style) (out []byte, bad int) {
	safe := &marshalSafe
	if style != Marshal {
		safe = &jcsSafe
	}
	dst = append(dst, '"')
	start := 0 // s[start:i] is pending verbatim output
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := decodeRune(s[i:])
		var esc string
		switch {
		case r == utf8.RuneError && size == 1:
			switch style {
			case JCS:
				return dst, i
			case JCSReplace:
				esc = "\uFFFD"
			default:
				esc = `\ufffd`
			}
		case style == Marshal && r == '\u2028':
			esc = `\u2028`
		case style == Marshal && r == '\u2029':
			esc = `\u2029`
		default:
			i += size
			continue
		}
		dst = append(dst, s[start:i]...)
		dst = append(dst, esc...)
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"'), -1
}

// decodeRune is utf8.DecodeRune for either a string or a byte slice whose
// first byte is not ASCII (AppendQuoted handles those itself), written out
// so the generic code neither converts (copies) nor boxes its argument. An
// invalid sequence yields (utf8.RuneError, 1), as in package utf8.
func decodeRune[T ~string | ~[]byte](s T) (rune, int) {
	n := len(s)
	c0 := s[0]
	switch {
	case c0 < 0xC2 || c0 > 0xF4:
		return utf8.RuneError, 1
	case c0 < 0xE0:
		if n < 2 || !cont(s[1]) {
			return utf8.RuneError, 1
		}
		return rune(c0&0x1F)<<6 | rune(s[1]&0x3F), 2
	case c0 < 0xF0:
		lo, hi := byte(0x80), byte(0xBF)
		if c0 == 0xE0 {
			lo = 0xA0 // overlong
		} else if c0 == 0xED {
			hi = 0x9F // UTF-16 surrogates
		}
		if n < 3 || s[1] < lo || s[1] > hi || !cont(s[2]) {
			return utf8.RuneError, 1
		}
		return rune(c0&0x0F)<<12 | rune(s[1]&0x3F)<<6 | rune(s[2]&0x3F), 3
	default:
		lo, hi := byte(0x80), byte(0xBF)
		if c0 == 0xF0 {
			lo = 0x90 // overlong
		} else if c0 == 0xF4 {
			hi = 0x8F // above U+10FFFF
		}
		if n < 4 || s[1] < lo || s[1] > hi || !cont(s[2]) || !cont(s[3]) {
			return utf8.RuneError, 1
		}
		return rune(c0&0x07)<<18 | rune(s[1]&0x3F)<<12 | rune(s[2]&0x3F)<<6 | rune(s[3]&0x3F), 4
	}
}

func cont(b byte) bool { return b&0xC0 == 0x80 }
