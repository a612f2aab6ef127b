package condition

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// tokKind is the kind of a lexical token. The zero value is tEOF.
type tokKind uint8

const (
	tEOF    tokKind = iota
	tErr            // a lexical error; token.err says which
	tVar            // $a.b.c
	tString         // 'x' or "x"
	tNumber         // -1.5e3
	tTrue           // True, true
	tFalse          // False, false
	tNull           // None, null
	tWord           // any other bare word: always a syntax error, but a helpful one
	tLParen
	tRParen
	tEq
	tNe
	tGt
	tGe
	tLt
	tLe
	tIn
	tNot
	tAnd
	tOr
	tContains
)

// token is one lexical token. Which payload field is set depends on kind.
type token struct {
	kind tokKind
	col  int    // 1-based rune column of the first character
	text string // source text, for messages
	str  string // decoded value of a tString
	num  float64
	path []string // segments of a tVar
	err  *SyntaxError
}

// describe renders the token for "expected …, got X" messages.
func (t token) describe() string {
	if t.kind == tEOF {
		return "end of condition"
	}
	return "'" + t.text + "'"
}

var keywords = map[string]tokKind{
	"and": tAnd, "or": tOr, "not": tNot, "in": tIn, "contains": tContains,
	"True": tTrue, "true": tTrue,
	"False": tFalse, "false": tFalse,
	"None": tNull, "null": tNull,
}

// hints explain the characters people most often reach for by habit.
var hints = map[rune]string{
	'=': "; use '==' to compare",
	'!': "; use 'not', or '!=' to compare",
	'&': "; use 'and'",
	'|': "; use 'or'",
	'[': "; indexing is not allowed, use $a.b",
	']': "; indexing is not allowed, use $a.b",
	'+': "; arithmetic is not allowed",
	'-': "; arithmetic is not allowed",
	'*': "; arithmetic is not allowed",
	'/': "; arithmetic is not allowed",
	'%': "; arithmetic is not allowed",
}

// lexer turns the source into tokens. It stops at the first lexical error
// and records it as a final tErr token, so that the parser reports whichever
// problem comes first in the source.
type lexer struct {
	src  string
	i    int // byte offset
	col  int // rune column of src[i], 1-based
	toks []token
}

func lex(src string) []token {
	l := &lexer{src: src, col: 1, toks: make([]token, 0, 8)}
	for {
		l.skipSpace()
		if l.i >= len(l.src) {
			l.toks = append(l.toks, token{kind: tEOF, col: l.col})
			return l.toks
		}
		if err := l.next(); err != nil {
			l.toks = append(l.toks, token{kind: tErr, col: err.Column, err: err})
			return l.toks
		}
	}
}

func (l *lexer) peekRune(off int) (rune, int) {
	if l.i+off >= len(l.src) {
		return -1, 0
	}
	return utf8.DecodeRuneInString(l.src[l.i+off:])
}

// advance moves past n bytes holding runes runes.
func (l *lexer) advance(n, runes int) {
	l.i += n
	l.col += runes
}

func (l *lexer) skipSpace() {
	for l.i < len(l.src) {
		switch l.src[l.i] {
		case ' ', '\t', '\n', '\r':
			l.advance(1, 1)
		default:
			return
		}
	}
}

func (l *lexer) emit(kind tokKind, start, startCol int) *token {
	l.toks = append(l.toks, token{kind: kind, col: startCol, text: l.src[start:l.i]})
	return &l.toks[len(l.toks)-1]
}

func (l *lexer) errAt(col int, format string, args ...any) *SyntaxError {
	return &SyntaxError{Column: col, Msg: fmt.Sprintf(format, args...)}
}

func (l *lexer) next() *SyntaxError {
	start, startCol := l.i, l.col
	r, w := l.peekRune(0)
	switch {
	case r == '$':
		return l.variable()
	case r == '\'' || r == '"':
		return l.stringLit(r)
	case isDigit(r) || r == '-' && isDigit(l.byteAt(1)):
		return l.number()
	case isLetter(r) || r == '_':
		for {
			r, w := l.peekRune(0)
			if !isLetter(r) && !isDigit(r) && r != '_' {
				break
			}
			l.advance(w, 1)
		}
		kind, ok := keywords[l.src[start:l.i]]
		if !ok {
			kind = tWord
		}
		l.emit(kind, start, startCol)
		return nil
	case r == '(':
		l.advance(1, 1)
		l.emit(tLParen, start, startCol)
		return nil
	case r == ')':
		l.advance(1, 1)
		l.emit(tRParen, start, startCol)
		return nil
	case r == '=' && l.byteAt(1) == '=':
		l.advance(2, 2)
		l.emit(tEq, start, startCol)
		return nil
	case r == '!' && l.byteAt(1) == '=':
		l.advance(2, 2)
		l.emit(tNe, start, startCol)
		return nil
	case r == '>' || r == '<':
		kind := tGt
		if r == '<' {
			kind = tLt
		}
		l.advance(1, 1)
		if l.byteAt(0) == '=' {
			l.advance(1, 1)
			kind++ // tGe follows tGt, tLe follows tLt
		}
		l.emit(kind, start, startCol)
		return nil
	}
	return l.unexpected(r, w, startCol)
}

func (l *lexer) unexpected(r rune, w, col int) *SyntaxError {
	if r == utf8.RuneError && w == 1 {
		return l.errAt(col, "unexpected byte 0x%02x (not UTF-8)", l.src[l.i])
	}
	return l.errAt(col, "unexpected character %s%s", showRune(r), hints[r])
}

// showRune quotes a rune for a message; invisible ones are shown as U+XXXX.
func showRune(r rune) string {
	if unicode.IsPrint(r) {
		return "'" + string(r) + "'"
	}
	return fmt.Sprintf("U+%04X", r)
}

// byteAt returns the byte off bytes ahead, or 0 past the end. Only used to
// test for ASCII characters, which never occur inside a multi-byte rune.
func (l *lexer) byteAt(off int) rune {
	if l.i+off >= len(l.src) {
		return 0
	}
	return rune(l.src[l.i+off])
}

func (l *lexer) variable() *SyntaxError {
	start, startCol := l.i, l.col
	l.advance(1, 1) // '$'
	var path []string
	for {
		segStart, segCol := l.i, l.col
		for {
			r, w := l.peekRune(0)
			if !isLetter(r) && !isDigit(r) && r != '_' && r != '-' {
				break
			}
			if l.i == segStart && len(path) == 0 && !isLetter(r) && r != '_' {
				break // the first segment starts with a letter or underscore
			}
			l.advance(w, 1)
		}
		if l.i == segStart {
			if len(path) == 0 {
				return l.errAt(segCol, "expected a variable name after '$'")
			}
			return l.errAt(segCol, "expected a path segment after '.'")
		}
		path = append(path, l.src[segStart:l.i])
		if l.byteAt(0) != '.' {
			break
		}
		l.advance(1, 1)
	}
	l.emit(tVar, start, startCol).path = path
	return nil
}

func (l *lexer) stringLit(quote rune) *SyntaxError {
	start, startCol := l.i, l.col
	l.advance(1, 1)
	var b strings.Builder
	plain := l.i // start of the run not yet copied into b
	escaped := false
	for {
		if l.i >= len(l.src) {
			return l.errAt(startCol, "unterminated string")
		}
		r, w := l.peekRune(0)
		switch r {
		case quote:
			var s string
			if escaped {
				b.WriteString(l.src[plain:l.i])
				s = b.String()
			} else {
				s = l.src[plain:l.i]
			}
			l.advance(1, 1)
			l.emit(tString, start, startCol).str = s
			return nil
		case '\\':
			escCol := l.col
			b.WriteString(l.src[plain:l.i])
			escaped = true
			e, ew := l.peekRune(1)
			switch e {
			case '\\', '\'', '"':
				b.WriteRune(e)
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case -1:
				return l.errAt(startCol, "unterminated string")
			default:
				return l.errAt(escCol, "unknown escape '\\%s' in string; use \\\\ \\' \\\" \\n or \\t", l.src[l.i+1:l.i+1+ew])
			}
			l.advance(1+ew, 2)
			plain = l.i
		default:
			l.advance(w, 1)
		}
	}
}

func (l *lexer) number() *SyntaxError {
	start, startCol := l.i, l.col
	if l.byteAt(0) == '-' {
		l.advance(1, 1)
	}
	l.digits()
	if l.byteAt(0) == '.' && isDigit(l.byteAt(1)) {
		l.advance(1, 1)
		l.digits()
	}
	if e := l.byteAt(0); e == 'e' || e == 'E' {
		if isDigit(l.byteAt(1)) {
			l.advance(1, 1)
			l.digits()
		} else if s := l.byteAt(1); (s == '+' || s == '-') && isDigit(l.byteAt(2)) {
			l.advance(2, 2)
			l.digits()
		}
	}
	// A number runs into the next token only through a mistake such as
	// "3abc", "1.2.3" or "1e": reject it rather than split it silently.
	if r, _ := l.peekRune(0); isLetter(r) || isDigit(r) || r == '_' || r == '.' || r == '$' {
		return l.errAt(l.col, "unexpected character %s after number", showRune(r))
	}
	text := l.src[start:l.i]
	n, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return l.errAt(startCol, "number %s out of range", text)
	}
	l.emit(tNumber, start, startCol).num = n
	return nil
}

func (l *lexer) digits() {
	for l.i < len(l.src) && isDigit(rune(l.src[l.i])) {
		l.advance(1, 1)
	}
}

func isDigit(r rune) bool { return '0' <= r && r <= '9' }

// isLetter accepts Unicode letters so that $path segments can name any
// JSON key written in a natural language.
func isLetter(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || r >= utf8.RuneSelf && unicode.IsLetter(r)
}
