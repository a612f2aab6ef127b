package canonical

import (
	"fmt"
	"unicode/utf8"
)

// AppendString appends s to dst as a JCS JSON string: only '"', '\\' and the
// control characters below U+0020 are escaped (\b \f \n \r \t in their short
// forms, the rest as \u00xx in lowercase hex); '<', '>', '&', U+2028 and
// U+2029 are written as themselves, unlike encoding/json. AppendString cannot
// fail, so each byte of an invalid UTF-8 sequence is written as U+FFFD; use
// Append to have invalid UTF-8 rejected instead.
func AppendString(dst []byte, s string) []byte {
	dst, _ = appendString(dst, s, true)
	return dst
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JCS string. With replace it substitutes U+FFFD
// for invalid UTF-8; without, it reports ErrUTF8.
func appendString[T ~string | ~[]byte](dst []byte, s T, replace bool) ([]byte, error) {
	dst = append(dst, '"')
	start := 0 // s[start:i] is pending verbatim output
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
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
		if r == utf8.RuneError && size == 1 {
			if !replace {
				return dst, fmt.Errorf("encode string at byte %d: %w", i, ErrUTF8)
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\uFFFD"...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"'), nil
}

// decodeRune is utf8.DecodeRune for either a string or a byte slice, written
// out so the generic code neither converts (copies) nor boxes its argument. An
// invalid sequence yields (utf8.RuneError, 1), as in package utf8.
func decodeRune[T ~string | ~[]byte](s T) (rune, int) {
	n := len(s)
	if n == 0 {
		return utf8.RuneError, 0
	}
	c0 := s[0]
	switch {
	case c0 < 0x80:
		return rune(c0), 1
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
