// Package jsonlines reads newline-delimited JSON-RPC, the framing of MCP's
// stdio transport, from a peer that is not trusted: a line is bounded (a
// longer one is skipped to its newline without being held, and reported
// with the id it carries when that can be read), so one endless line
// cannot grow the reader's memory. It is shared by internal/primary (stdin,
// the database's socket, the operator channel) and runtime/mcpserver
// (ServeStdio), and is a pure package: standard library only.
package jsonlines

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// MaxMessageBytes bounds one JSON-RPC message (one line, without its
// newline) by default: room for register_tool with a 20 MiB module, which
// base64 makes about 27 MiB of JSON. A longer line is not read into
// memory: it is skipped up to its newline and reported to the caller, who
// answers it with a JSON-RPC error (-32600, under the message's id when
// the id can be read from it), and the stream goes on.
const MaxMessageBytes = 32 << 20

// Oversized describes a line longer than the limit, which Read skipped.
type Oversized struct {
	// N is the line's length as far as it was read: to its newline, or to
	// the end of the stream.
	N int64
	// ID is the message's JSON-RPC id (raw JSON), when the skipped bytes
	// held a top-level "id" member short enough to keep; nil otherwise.
	ID json.RawMessage
	// Limit is the limit the line went over.
	Limit int
}

// Message is the text of the JSON-RPC error that answers the line.
func (o Oversized) Message() string {
	return fmt.Sprintf("message too large: %d bytes, over the %d-byte limit of one JSON-RPC message on this transport; it was skipped", o.N, o.Limit)
}

// Read calls fn with every line of r (without its newline) until r ends
// or fails, and tooLong (when not nil) for every line over limit bytes
// (MaxMessageBytes when limit is 0 or less), which it skips without
// holding it: the memory a line costs is at most limit plus the reader's
// 64 KiB buffer, whatever r sends. A last line without a newline is
// dropped when dropTorn is set: from a dying peer it is a torn message;
// from a client closing stdin it is its final message and is kept. A line
// is handed to fn in a buffer of its own, which fn may keep.
func Read(r io.Reader, limit int, dropTorn bool, fn func([]byte), tooLong func(Oversized)) error {
	if limit <= 0 {
		limit = MaxMessageBytes
	}
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, over, err := readLine(br, limit)
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

// readLine reads up to and without the next newline. A line over limit
// is skipped to its newline (a JSON text never holds a raw newline, so the
// next line is the next message) and reported as oversized; its bytes are
// fed through an idScanner on the way, never kept. err is io.EOF when the
// stream ended, before a newline, after what was returned.
func readLine(br *bufio.Reader, limit int) (line []byte, over *Oversized, err error) {
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
		if total+len(chunk) > limit {
			return nil, skipLine(br, limit, chunks, chunk, done), readErr(done, err)
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
func skipLine(br *bufio.Reader, limit int, head [][]byte, chunk []byte, done bool) *Oversized {
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
	return &Oversized{N: n, ID: s.result(), Limit: limit}
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

// RecoverID returns the id of a message that did not parse, when one can
// be read from it, so its error reaches the request that caused it.
func RecoverID(line []byte) json.RawMessage {
	var s idScanner
	s.feed(line)
	return s.result()
}

// JSON-RPC error codes for what a line reader refuses.
const (
	// CodeParse answers a line that is not JSON.
	CodeParse = -32700
	// CodeInvalidRequest answers an oversized line, or JSON that is not
	// a request.
	CodeInvalidRequest = -32600
)

// ErrorLine returns a JSON-RPC error response (without its newline) under
// id, null when id is empty; data is left out when it is nil or does not
// encode.
func ErrorLine(id json.RawMessage, code int, msg string, data any) []byte {
	type body struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    any    `json:"data,omitempty"`
	}
	type response struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   body            `json:"error"`
	}
	if len(id) == 0 || !json.Valid(id) {
		id = json.RawMessage("null")
	}
	b, err := json.Marshal(response{JSONRPC: "2.0", ID: id, Error: body{Code: code, Message: msg, Data: data}})
	if err != nil {
		// Only data could fail to encode; drop it rather than lose the
		// answer.
		b, _ = json.Marshal(response{JSONRPC: "2.0", ID: id, Error: body{Code: code, Message: msg}})
	}
	return b
}
