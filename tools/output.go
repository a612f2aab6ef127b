package tools

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nanovm/nano-vm-mcp/internal/jsonlimit"
	"github.com/nanovm/nano-vm-mcp/internal/jsonread"
)

// decodeOutput reads stdout as exactly one JSON value; empty means null.
// Output nested deeper than jsonlimit.MaxDepth, or holding a number longer
// than jsonlimit.MaxNumberLen or outside the float64 range, is refused
// here, before it can reach a state, a record or an envelope. The error
// says where the output went wrong and quotes an excerpt there (see
// outputExcerpt), so a tool that printed garbage shows it.
func decodeOutput(stdout []byte) (any, error) {
	// Most outputs are one flat object, which decodeFlat reads in the same
	// pass that checks it: it takes nothing jsonlimit.Check refuses (a
	// flat object is one deep; it refuses a number too long or out of
	// range), so the check's own pass is left to everything else.
	if m, ok := decodeFlat(stdout); ok {
		return m, nil
	}
	if err := jsonlimit.Check(stdout); err != nil {
		return nil, fmt.Errorf("%w: %w; %s", ErrInvalidOutput, err, outputExcerpt(stdout, -1))
	}
	// A guest's output is usually JSON as an encoder writes it, which
	// jsonread decodes as encoding/json would without reflection; anything
	// it does not take goes to encoding/json.
	r := jsonread.New(stdout)
	if v, ok := r.Value(); ok && r.AtEnd() {
		return v, nil
	}
	var v any
	if err := json.Unmarshal(stdout, &v); err == nil {
		return v, nil
	}
	// Slow path, for the empty case and for an error that says what is
	// wrong rather than where json.Unmarshal stopped.
	if len(bytes.TrimSpace(stdout)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(stdout))
	if err := dec.Decode(&v); err != nil {
		at := -1
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			at = int(syn.Offset) - 1 // Offset is just past the byte that broke
		} else if errors.Is(err, io.ErrUnexpectedEOF) {
			at = len(stdout)
		}
		return nil, fmt.Errorf("%w: stdout is not JSON: %s; %s", ErrInvalidOutput,
			jsonlimit.Excerpt(err.Error(), 0), outputExcerpt(stdout, at))
	}
	end := int(dec.InputOffset())
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: stdout holds more than one JSON value: the first ends at byte %d; %s", ErrInvalidOutput,
			end, outputExcerpt(stdout, end))
	}
	return nil, fmt.Errorf("%w: stdout is not JSON; %s", ErrInvalidOutput, outputExcerpt(stdout, -1))
}

// decodeFlat decodes stdout when it is one object whose members are all
// strings, numbers, booleans or null, exactly as jsonread's Value would
// (so as encoding/json would), but without Value's closures or an
// allocation per key: keys, like plain string values, are substrings of
// the reader's one copy of the output. It reports false for anything
// else, nested values included, which then take the general path, and
// for anything jsonlimit.Check refuses (a number longer than
// jsonlimit.MaxNumberLen or out of the float64 range): decodeOutput does
// not check what it takes.
func decodeFlat(stdout []byte) (map[string]any, bool) {
	r := jsonread.New(stdout)
	if !r.Eat('{') {
		return nil, false
	}
	m := make(map[string]any)
	if r.Eat('}') {
		return m, r.AtEnd()
	}
	for {
		key, ok := r.Str()
		if !ok || !r.Eat(':') {
			return nil, false
		}
		var v any
		switch c := r.Peek(); {
		case c == '"':
			s, ok := r.Str()
			if !ok {
				return nil, false
			}
			v = s
		case c == '-' || ('0' <= c && c <= '9'):
			text, integer, ok := r.Number()
			if !ok || len(text) > jsonlimit.MaxNumberLen {
				return nil, false
			}
			f, ok := jsonread.FloatText(text, integer)
			if !ok {
				return nil, false
			}
			v = f
		case c == 't' || c == 'f':
			b, ok := r.Bool()
			if !ok {
				return nil, false
			}
			v = b
		case c == 'n':
			if !r.Literal("null") {
				return nil, false
			}
		default:
			return nil, false
		}
		m[key] = v
		if r.Eat(',') {
			continue
		}
		if !r.Eat('}') {
			return nil, false
		}
		return m, r.AtEnd()
	}
}

// outputExcerptBytes is how much of a tool's stdout an error quotes at
// its start and again where decoding stopped.
const outputExcerptBytes = 160

// outputExcerpt describes a tool's stdout for an error: its size, an
// excerpt of its start and, when decoding stopped at byte at (-1 when not
// known), of what follows there, both quoted so that NUL and other
// non-text bytes show as escapes. Such bytes get a hint: they usually mean
// the module overwrote its own memory, in C most often a stack overflow
// into static data.
func outputExcerpt(stdout []byte, at int) string {
	var b strings.Builder
	start := clipBytes(stdout, 0)
	b.WriteString("stdout starts " + start)
	if strings.HasSuffix(start, "…") {
		b.WriteString("(" + jsonlimit.Group(len(stdout)) + " bytes in all)")
	}
	if at > outputExcerptBytes/2 && at < len(stdout) {
		fmt.Fprintf(&b, ", and at byte %s reads %s", jsonlimit.Group(at), clipBytes(stdout, at))
	}
	if bin := firstNonText(stdout); bin >= 0 {
		fmt.Fprintf(&b, "; byte %s is not text (0x%02x): garbage in stdout usually means the tool overwrote its own memory (in C, often a stack overflow into static data or an overrun buffer)", jsonlimit.Group(bin), stdout[bin])
	} else {
		b.WriteString("; a tool writes exactly one JSON value to stdout (logs go to stderr or nanovm.log)")
	}
	return b.String()
}

// clipBytes quotes stdout from byte from: at most outputExcerptBytes of
// it, fewer when escapes (of binary garbage) would make the quote longer
// than 1.5 times that, with "…" after the quote when it goes on.
func clipBytes(stdout []byte, from int) string {
	s := stdout[from:]
	n := min(len(s), outputExcerptBytes)
	for {
		for n > 0 && n < len(s) && !utf8.RuneStart(s[n]) {
			n--
		}
		q := strconv.Quote(string(s[:n]))
		if len(q) <= outputExcerptBytes*3/2 || n <= 8 {
			if n < len(s) {
				q += "…"
			}
			return q
		}
		n /= 2
	}
}

// firstNonText returns the offset of the first byte of stdout that no
// text holds (a control byte other than tab, newline and carriage return,
// or invalid UTF-8), or -1.
func firstNonText(stdout []byte) int {
	for i := 0; i < len(stdout); {
		c := stdout[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
				return i
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(stdout[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return -1
}
