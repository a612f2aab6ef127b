package canonical

import (
	"strconv"
	"strings"

	"github.com/nanovm/nano-vm-mcp/internal/jsonlimit"
)

// pathError says where in a Go value encoding failed. Segments are collected
// innermost first as the error travels up, so a failure deep in a value costs
// one allocation per level instead of re-formatting the message at each one.
type pathError struct {
	rev []pathSeg // innermost first
	err error
}

type pathSeg struct {
	key   string
	index int // used when isKey is false
	isKey bool
}

// maxShownSegs bounds the printed path; a value nested thousands deep (or a
// map that contains itself) would otherwise yield a message as deep.
const maxShownSegs = 32

// maxShownKey bounds each member name printed in a path: names come from
// clients and guests.
const maxShownKey = 64

func (e *pathError) Error() string {
	var sb strings.Builder
	sb.WriteString("at $")
	n := len(e.rev)
	for i := n - 1; i >= 0; i-- {
		if n > maxShownSegs && i == n-maxShownSegs/2-1 {
			sb.WriteString("…")
			i = maxShownSegs / 2
		}
		s := e.rev[i]
		if !s.isKey {
			sb.WriteByte('[')
			sb.WriteString(strconv.Itoa(s.index))
			sb.WriteByte(']')
		} else if isIdent(s.key) && len(s.key) <= maxShownKey {
			sb.WriteByte('.')
			sb.WriteString(s.key)
		} else {
			sb.WriteByte('[')
			sb.WriteString(strconv.Quote(jsonlimit.Excerpt(s.key, maxShownKey)))
			sb.WriteByte(']')
		}
	}
	sb.WriteString(": ")
	sb.WriteString(e.err.Error())
	return sb.String()
}

func (e *pathError) Unwrap() error { return e.err }

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

func atKey(err error, key string) error {
	return at(err, pathSeg{key: key, isKey: true})
}

func atIndex(err error, i int) error {
	return at(err, pathSeg{index: i})
}

func at(err error, s pathSeg) error {
	if pe, ok := err.(*pathError); ok {
		pe.rev = append(pe.rev, s)
		return pe
	}
	return &pathError{rev: []pathSeg{s}, err: err}
}
