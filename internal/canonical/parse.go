package canonical

import (
	"fmt"
	"slices"
	"sync"
	"unicode/utf8"
)

// appendRaw parses the JSON text data and appends its canonical form.
// Data already canonical (a record written by this module, say) is
// appended as it is, after a check that only reads it.
func appendRaw(dst []byte, data []byte, depth int) ([]byte, error) {
	if isCanonical(data, depth) {
		return append(dst, data...), nil
	}
	return parseRaw(dst, data, depth)
}

// parseRaw is appendRaw without the check: it always parses.
func parseRaw(dst []byte, data []byte, depth int) ([]byte, error) {
	p := parserPool.Get().(*parser)
	defer p.release()
	p.data, p.pos = data, 0
	p.skipSpace()
	dst, err := p.value(dst, depth)
	if err != nil {
		return dst, err
	}
	p.skipSpace()
	if p.pos != len(p.data) {
		return dst, p.errorf("%w: data after the top-level value", ErrSyntax)
	}
	return dst, nil
}

var parserPool = sync.Pool{New: func() any { return new(parser) }}

// parser is a strict RFC 8259 parser that writes canonical JSON as it goes.
// An object's member values are written to the output in input order; once
// the object closes they are rearranged in key order through tmp.
type parser struct {
	data    []byte
	pos     int
	members []member // a stack: each open object owns a suffix
	tmp     []byte   // rearranging space for the object being closed
	str     []byte   // unescaping space for one string
}

// member locates one decoded object member: its name and the span of its
// canonical value in the output buffer.
type member struct {
	key    []byte
	vs, ve int
}

func (p *parser) release() {
	p.data = nil
	clear(p.members) // unpin input and decoded keys
	p.members = p.members[:0]
	if cap(p.tmp) > maxPooledBuf || cap(p.str) > maxPooledBuf || cap(p.members) > 1<<16 {
		return
	}
	parserPool.Put(p)
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("parse JSON at offset %d: "+format, append([]any{p.pos}, args...)...)
}

func (p *parser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) literal(dst []byte, lit string) ([]byte, error) {
	if len(p.data)-p.pos < len(lit) || string(p.data[p.pos:p.pos+len(lit)]) != lit {
		return dst, p.errorf("%w: unexpected %q", ErrSyntax, p.data[p.pos])
	}
	p.pos += len(lit)
	return append(dst, lit...), nil
}

func (p *parser) value(dst []byte, depth int) ([]byte, error) {
	if p.pos >= len(p.data) {
		return dst, p.errorf("%w: unexpected end of input", ErrSyntax)
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object(dst, depth)
	case c == '[':
		return p.array(dst, depth)
	case c == '"':
		s, _, err := p.string()
		if err != nil {
			return dst, err
		}
		return appendString(dst, s, false)
	case c == 't':
		return p.literal(dst, "true")
	case c == 'f':
		return p.literal(dst, "false")
	case c == 'n':
		return p.literal(dst, "null")
	case c == '-' || ('0' <= c && c <= '9'):
		start := p.pos
		p.pos = scanNumber(p.data, p.pos)
		return appendNumberText(dst, p.data[start:p.pos])
	default:
		return dst, p.errorf("%w: unexpected %q", ErrSyntax, c)
	}
}

func (p *parser) array(dst []byte, depth int) ([]byte, error) {
	if depth >= MaxDepth {
		return dst, p.errorf("%w", ErrDepth)
	}
	p.pos++ // '['
	dst = append(dst, '[')
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return append(dst, ']'), nil
	}
	for {
		var err error
		if dst, err = p.value(dst, depth+1); err != nil {
			return dst, err
		}
		p.skipSpace()
		if p.pos >= len(p.data) {
			return dst, p.errorf("%w: unterminated array", ErrSyntax)
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
			p.skipSpace()
			dst = append(dst, ',')
		case ']':
			p.pos++
			return append(dst, ']'), nil
		default:
			return dst, p.errorf("%w: expected ',' or ']'", ErrSyntax)
		}
	}
}

func (p *parser) object(dst []byte, depth int) ([]byte, error) {
	if depth >= MaxDepth {
		return dst, p.errorf("%w", ErrDepth)
	}
	p.pos++ // '{'
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return append(dst, '{', '}'), nil
	}
	base := len(p.members)
	defer func() {
		clear(p.members[base:])
		p.members = p.members[:base]
	}()
	start := len(dst)
	for {
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return dst, p.errorf("%w: expected a member name", ErrSyntax)
		}
		key, escaped, err := p.string()
		if err != nil {
			return dst, err
		}
		if escaped {
			key = slices.Clone(key) // p.str is reused by the next string
		}
		if !utf8.Valid(key) {
			return dst, p.errorf("member name: %w", ErrUTF8)
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return dst, p.errorf("%w: expected ':'", ErrSyntax)
		}
		p.pos++
		p.skipSpace()
		vs := len(dst)
		if dst, err = p.value(dst, depth+1); err != nil {
			return dst, err
		}
		p.members = append(p.members, member{key: key, vs: vs, ve: len(dst)})
		p.skipSpace()
		if p.pos >= len(p.data) {
			return dst, p.errorf("%w: unterminated object", ErrSyntax)
		}
		if p.data[p.pos] == '}' {
			p.pos++
			break
		}
		if p.data[p.pos] != ',' {
			return dst, p.errorf("%w: expected ',' or '}'", ErrSyntax)
		}
		p.pos++
		p.skipSpace()
	}
	ms := p.members[base:]
	slices.SortFunc(ms, func(a, b member) int { return CompareKeys(a.key, b.key) })
	t := append(p.tmp[:0], '{')
	for i, m := range ms {
		if i > 0 {
			if string(ms[i-1].key) == string(m.key) {
				return dst, p.errorf("member %q: %w", m.key, ErrDuplicateKey)
			}
			t = append(t, ',')
		}
		t, _ = appendString(t, m.key, false) // validated above
		t = append(t, ':')
		t = append(t, dst[m.vs:m.ve]...)
	}
	t = append(t, '}')
	p.tmp = t
	return append(dst[:start], t...), nil
}

// string scans the string starting at p.pos and returns its unescaped
// content: a slice of the input when it has no escapes, else (escaped) of
// p.str, which the next call overwrites. UTF-8 validity is left to the
// caller, except that escaped lone surrogates are rejected here.
func (p *parser) string() (s []byte, escaped bool, err error) {
	p.pos++ // opening quote
	start := p.pos
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			s := p.data[start:p.pos]
			p.pos++
			return s, false, nil
		case c == '\\':
			p.str = append(p.str[:0], p.data[start:p.pos]...)
			s, err := p.escapedString()
			return s, true, err
		case c < 0x20:
			return nil, false, p.errorf("%w: control character in string", ErrSyntax)
		}
		p.pos++
	}
	return nil, false, p.errorf("%w: unterminated string", ErrSyntax)
}

func (p *parser) escapedString() ([]byte, error) {
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			return p.str, nil
		case c < 0x20:
			return nil, p.errorf("%w: control character in string", ErrSyntax)
		case c != '\\':
			p.str = append(p.str, c)
			p.pos++
			continue
		}
		if p.pos+1 >= len(p.data) {
			break
		}
		e := p.data[p.pos+1]
		p.pos += 2
		switch e {
		case '"', '\\', '/':
			p.str = append(p.str, e)
		case 'b':
			p.str = append(p.str, '\b')
		case 'f':
			p.str = append(p.str, '\f')
		case 'n':
			p.str = append(p.str, '\n')
		case 'r':
			p.str = append(p.str, '\r')
		case 't':
			p.str = append(p.str, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return nil, p.errorf("%w: bad \\u escape", ErrSyntax)
			}
			if 0xDC00 <= r && r <= 0xDFFF {
				return nil, p.errorf("lone low surrogate \\u%04x: %w", r, ErrUTF8)
			}
			if 0xD800 <= r && r <= 0xDBFF {
				if p.pos+1 >= len(p.data) || p.data[p.pos] != '\\' || p.data[p.pos+1] != 'u' {
					return nil, p.errorf("lone high surrogate \\u%04x: %w", r, ErrUTF8)
				}
				p.pos += 2
				lo, ok := p.hex4()
				if !ok {
					return nil, p.errorf("%w: bad \\u escape", ErrSyntax)
				}
				if lo < 0xDC00 || lo > 0xDFFF {
					return nil, p.errorf("lone high surrogate \\u%04x: %w", r, ErrUTF8)
				}
				r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
			}
			p.str = utf8.AppendRune(p.str, r)
		default:
			return nil, p.errorf("%w: bad escape '\\%c'", ErrSyntax, e)
		}
	}
	return nil, p.errorf("%w: unterminated string", ErrSyntax)
}

func (p *parser) hex4() (rune, bool) {
	if len(p.data)-p.pos < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p.data[p.pos : p.pos+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	p.pos += 4
	return r, true
}

// scanNumber returns the end of the longest prefix of data[i:] that looks
// like a number; validNumber then decides whether it is one.
func scanNumber(data []byte, i int) int {
	for i < len(data) {
		switch c := data[i]; {
		case '0' <= c && c <= '9', c == '-', c == '+', c == '.', c == 'e', c == 'E':
			i++
		default:
			return i
		}
	}
	return i
}

// validNumber reports whether s matches the RFC 8259 number grammar
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func validNumber[T ~string | ~[]byte](s T) bool {
	i, n := 0, len(s)
	if i < n && s[i] == '-' {
		i++
	}
	switch {
	case i < n && s[i] == '0':
		i++
	case i < n && '1' <= s[i] && s[i] <= '9':
		for i < n && isDigit(s[i]) {
			i++
		}
	default:
		return false
	}
	if i < n && s[i] == '.' {
		i++
		if i >= n || !isDigit(s[i]) {
			return false
		}
		for i < n && isDigit(s[i]) {
			i++
		}
	}
	if i < n && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < n && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= n || !isDigit(s[i]) {
			return false
		}
		for i < n && isDigit(s[i]) {
			i++
		}
	}
	return i == n
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
