package jsonwrite

import "encoding/binary"

// maxNesting is encoding/json's nesting limit: json.Valid refuses deeper
// input, so Valid does too.
const maxNesting = 10000

// Valid reports whether data is one JSON value (with optional surrounding
// whitespace), exactly as json.Valid does, including its nesting limit;
// like json.Valid it does not check that strings are UTF-8. It is a
// direct scanner, several times faster than encoding/json's state
// machine, for the records every step commit checks.
func Valid(data []byte) bool {
	var stackArr [64]byte
	stack := stackArr[:0] // '{' or '[' per open container
	i := skipWS(data, 0)
	for {
		// A value starts at i.
		if i >= len(data) {
			return false
		}
		switch c := data[i]; c {
		case '{', '[':
			if len(stack) >= maxNesting {
				return false
			}
			stack = append(stack, c)
			i = skipWS(data, i+1)
			if i < len(data) && data[i] == c+2 { // '}' is '{'+2, ']' is '['+2
				stack = stack[:len(stack)-1]
				i++
				break
			}
			if c == '{' {
				if i = member(data, i); i < 0 {
					return false
				}
			}
			continue
		case '"':
			if i = str(data, i); i < 0 {
				return false
			}
		case 't':
			if i = lit(data, i, "true"); i < 0 {
				return false
			}
		case 'f':
			if i = lit(data, i, "false"); i < 0 {
				return false
			}
		case 'n':
			if i = lit(data, i, "null"); i < 0 {
				return false
			}
		default:
			if i = number(data, i); i < 0 {
				return false
			}
		}
		// After a value: close containers or move to the next element.
		for {
			i = skipWS(data, i)
			if len(stack) == 0 {
				return i == len(data)
			}
			if i >= len(data) {
				return false
			}
			top := stack[len(stack)-1]
			c := data[i]
			if c == top+2 {
				stack = stack[:len(stack)-1]
				i++
				continue
			}
			if c != ',' {
				return false
			}
			i = skipWS(data, i+1)
			if top == '{' {
				if i = member(data, i); i < 0 {
					return false
				}
			}
			break
		}
	}
}

func skipWS(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// member reads `"name" :` and the whitespace after it, returning where
// the value starts, or -1.
func member(data []byte, i int) int {
	if i >= len(data) || data[i] != '"' {
		return -1
	}
	if i = str(data, i); i < 0 {
		return -1
	}
	i = skipWS(data, i)
	if i >= len(data) || data[i] != ':' {
		return -1
	}
	return skipWS(data, i+1)
}

// str reads a string starting at its opening quote and returns the index
// after its closing one, or -1.
func str(data []byte, i int) int {
	i++
	for {
		// Eight bytes at a time while none ends the string, starts an
		// escape or is a control character (the hex hashes and
		// timestamps that fill a step record), then byte by byte to the
		// one that does.
		for i+8 <= len(data) && plain8(binary.LittleEndian.Uint64(data[i:])) {
			i += 8
		}
		for i < len(data) && plainByte[data[i]] {
			i++
		}
		if i >= len(data) {
			return -1
		}
		switch data[i] {
		case '"':
			return i + 1
		case '\\':
		default:
			return -1 // a control character
		}
		i++
		if i >= len(data) {
			return -1
		}
		switch data[i] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i++
		case 'u':
			if i+4 >= len(data) {
				return -1
			}
			for _, h := range data[i+1 : i+5] {
				if !isHex(h) {
					return -1
				}
			}
			i += 5
		default:
			return -1
		}
	}
}

// plainByte marks the bytes a string holds as themselves: all but '"',
// '\\' and the control characters (Valid, like json.Valid, does not check
// UTF-8).
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plain8 reports whether none of the eight bytes in x is '"', '\\' or
// below 0x20: the exact "has a zero byte" test, (v-0x01…)&^v&0x80…, on
// x^'"'…, x^'\\'… and, for bytes below 0x20, (x-0x20…)&^x&0x80….
func plain8(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q, s := x^(ones*'"'), x^(ones*'\\')
	return ((x-ones*0x20)&^x|(q-ones)&^q|(s-ones)&^s)&highs == 0
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func lit(data []byte, i int, w string) int {
	if len(data)-i < len(w) || string(data[i:i+len(w)]) != w {
		return -1
	}
	return i + len(w)
}

// number reads -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? and returns
// the index after it, or -1.
func number(data []byte, i int) int {
	if i < len(data) && data[i] == '-' {
		i++
	}
	if i >= len(data) {
		return -1
	}
	switch c := data[i]; {
	case c == '0':
		i++
	case '1' <= c && c <= '9':
		i = digits(data, i)
	default:
		return -1
	}
	if i < len(data) && data[i] == '.' {
		i++
		j := digits(data, i)
		if j == i {
			return -1
		}
		i = j
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		j := digits(data, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func digits(data []byte, i int) int {
	for i < len(data) && '0' <= data[i] && data[i] <= '9' {
		i++
	}
	return i
}
