package primary

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sync/atomic"
)

// MaxMessageBytes bounds one JSON-RPC message (one line, without its
// newline) on stdin and on the primary's socket: room for register_tool
// with a 20 MiB module, which base64 makes about 27 MiB of JSON. A longer
// line is not read into memory: it is skipped up to its newline and
// answered with a JSON-RPC error (-32600, under the message's id when the
// id can be read from it), and the stream goes on.
const MaxMessageBytes = 32 << 20

// lineLimit is the limit readLines applies: MaxMessageBytes, lowered by
// tests (atomic, since readers of earlier tests may still be running).
var lineLimit atomic.Int64

func init() { lineLimit.Store(MaxMessageBytes) }

func maxLine() int { return int(lineLimit.Load()) }

// oversized describes a line longer than maxLine that was skipped.
type oversized struct {
	// n is the line's length as far as it was read: to its newline, or to
	// the end of the stream.
	n int64
	// id is the message's JSON-RPC id (raw JSON), when the skipped bytes
	// held a top-level "id" member short enough to keep; nil otherwise.
	id json.RawMessage
}

func (o oversized) message() string {
	return fmt.Sprintf("message too large: %d bytes, over the %d-byte limit of one JSON-RPC message on this transport; it was skipped", o.n, maxLine())
}

// readLines calls fn with every line of r (without its newline) until r
// ends or fails, and tooLong (when not nil) for every line over maxLine,
// which it skips without holding it. A last line without a newline is
// dropped when dropTorn is set: from a dying peer it is a torn message;
// from a client closing stdin it is its final message and is kept. A line
// is handed to fn in a buffer of its own, which fn may keep.
func readLines(r io.Reader, dropTorn bool, fn func([]byte), tooLong func(oversized)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, over, err := readLine(br)
		if over != nil {
			if tooLong != nil && (err == nil || !dropTorn) {
				tooLong(*over)
			}
		} else if t := bytes.TrimSpace(line); len(t) > 0 && (err == nil || (err == io.EOF && !dropTorn)) {
			fn(t)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// readLine reads up to and without the next newline. A line over maxLine
// is skipped to its newline (a JSON text never holds a raw newline, so the
// next line is the next message) and reported as oversized; its bytes are
// fed through an idScanner on the way, never kept. err is io.EOF when the
// stream ended, before a newline, after what was returned.
func readLine(br *bufio.Reader) (line []byte, over *oversized, err error) {
	// A long line is gathered in chunks and joined once, so it costs its
	// own size plus at most one chunk list, not append's regrowth.
	var chunks [][]byte
	total := 0
	for {
		chunk, err := br.ReadSlice('\n')
		done := err == nil
		if done {
			chunk = chunk[:len(chunk)-1]
		}
		if total+len(chunk) > maxLine() {
			return nil, skipLine(br, chunks, chunk, done), readErr(done, err)
		}
		if chunks == nil && err != bufio.ErrBufferFull {
			return bytes.Clone(chunk), nil, readErr(done, err)
		}
		chunks = append(chunks, bytes.Clone(chunk))
		total += len(chunk)
		if err == bufio.ErrBufferFull {
			continue
		}
		line = make([]byte, 0, total)
		for _, c := range chunks {
			line = append(line, c...)
		}
		return line, nil, readErr(done, err)
	}
}

func readErr(done bool, err error) error {
	if done || err == bufio.ErrBufferFull {
		return nil
	}
	return err
}

// skipLine discards the rest of an oversized line, scanning it for its id.
// head is what was read before chunk; done says chunk ended the line.
func skipLine(br *bufio.Reader, head [][]byte, chunk []byte, done bool) *oversized {
	var s idScanner
	var n int64
	for _, c := range head {
		s.feed(c)
		n += int64(len(c))
	}
	s.feed(chunk)
	n += int64(len(chunk))
	for !done {
		c, err := br.ReadSlice('\n')
		if err == nil {
			c = c[:len(c)-1]
			done = true
		}
		s.feed(c)
		n += int64(len(c))
		if err != nil && err != bufio.ErrBufferFull {
			// The stream ended inside the line; the caller learns it
			// from its next read.
			break
		}
	}
	return &oversized{n: n, id: s.result()}
}

// idScanner finds the top-level "id" member of a JSON object read in
// chunks, keeping nothing but that member's value (when it is short: a
// JSON-RPC id is a number or a string). It tolerates anything: on input
// that is not a JSON object it simply finds no id.
type idScanner struct {
	depth    int
	inString bool
	escape   bool
	// At depth 1: whether the next string is a member name, the name read
	// so far (up to 3 bytes, enough to tell "id"), and whether the value
	// being read belongs to "id".
	wantKey  bool
	key      []byte
	keyLong  bool
	inIDVal  bool
	idVal    []byte
	idDone   bool
	idTooBig bool
	failed   bool
}

const maxIDBytes = 256

func (s *idScanner) feed(b []byte) {
	for _, c := range b {
		if s.failed {
			return
		}
		s.step(c)
	}
}

func (s *idScanner) step(c byte) {
	if s.inIDVal {
		// The value of "id" ends at depth 1 with ',' or '}' outside a
		// string; inside it, strings and nesting are tracked as usual.
		if !s.inString && s.depth == 1 && (c == ',' || c == '}') {
			s.inIDVal, s.idDone = false, true
		} else {
			if len(s.idVal) < maxIDBytes {
				s.idVal = append(s.idVal, c)
			} else {
				s.idTooBig = true
			}
		}
	}
	if s.inString {
		switch {
		case s.escape:
			s.escape = false
		case c == '\\':
			s.escape = true
		case c == '"':
			s.inString = false
			if s.depth == 1 && s.wantKey {
				s.wantKey = false
			}
			return
		}
		if s.depth == 1 && s.wantKey && !s.inIDVal {
			if len(s.key) < 3 {
				s.key = append(s.key, c)
			} else {
				s.keyLong = true
			}
		}
		return
	}
	switch c {
	case '"':
		s.inString = true
		if s.depth == 1 && s.wantKey {
			s.key, s.keyLong = s.key[:0], false
		}
	case '{', '[':
		if s.depth == 0 && c != '{' {
			s.failed = true
			return
		}
		s.depth++
		if s.depth == 1 {
			s.wantKey = true
		}
	case '}', ']':
		s.depth--
		if s.depth <= 0 {
			s.failed = s.depth < 0
		}
	case ',':
		if s.depth == 1 {
			s.wantKey = true
		}
	case ':':
		if s.depth == 1 && !s.idDone && !s.keyLong && string(s.key) == "id" {
			s.inIDVal, s.idVal = true, s.idVal[:0]
		}
		if s.depth == 1 {
			s.key = s.key[:0]
		}
	}
}

// result is the id found, as raw JSON, or nil.
func (s *idScanner) result() json.RawMessage {
	if !s.idDone || s.idTooBig {
		return nil
	}
	v := bytes.TrimSpace(s.idVal)
	if len(v) == 0 || !json.Valid(v) || bytes.Equal(v, []byte("null")) {
		return nil
	}
	switch v[0] {
	case '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return json.RawMessage(bytes.Clone(v))
	}
	return nil // an object, array or boolean is not a JSON-RPC id
}

// recoverID returns the id of a message that did not parse, when one can
// be read from it, so its error reaches the request that caused it.
func recoverID(line []byte) json.RawMessage {
	var s idScanner
	s.feed(line)
	return s.result()
}
