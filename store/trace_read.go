package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ExecutionTrace implements ExecutionStore.
func (db *DB) ExecutionTrace(ctx context.Context, id string) (Execution, []Step, error) {
	var (
		e     Execution
		steps []Step
	)
	err := db.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketExecutions).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		if !readExecution(v, &e) {
			e = Execution{}
			if err := decodeRecord(v, &e); err != nil {
				return err
			}
		}
		if body := tx.Bucket(bucketExecBodies).Get([]byte(id)); body != nil && !readBody(body, &e) {
			e.Input, e.Program, e.Checkpoint = nil, nil, nil
			if err := loadBody(tx, &e); err != nil {
				return err
			}
		}
		steps = readSteps(tx, id)
		return nil
	})
	if err != nil {
		return Execution{}, nil, fmt.Errorf("execution trace %q: %w", id, err)
	}
	return e, steps, nil
}

// readSteps returns an execution's steps, copied out of the transaction
// into one allocation.
func readSteps(tx *bolt.Tx, id string) []Step {
	prefix := append([]byte(id), 0)
	c := tx.Bucket(bucketSteps).Cursor()
	var steps []Step
	size := 0
	for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
		steps = append(steps, Step{Index: int(binary.BigEndian.Uint64(k[len(prefix):])), Data: v})
		size += len(v)
	}
	buf := make([]byte, 0, size)
	for i := range steps {
		start := len(buf)
		buf = append(buf, steps[i].Data...)
		steps[i].Data = buf[start:len(buf):len(buf)]
	}
	return steps
}

// The execution and body records are read directly when they are as
// json.Marshal writes them: through encoding/json they were over a quarter
// of a replay's time. Anything else (escapes or non-ASCII in a string,
// unknown or repeated fields, invalid JSON) goes to decodeRecord and
// loadBody, which define the result, so a change of the record format
// costs speed, not correctness; the conformance suite compares
// ExecutionTrace with Execution and Steps.

// readExecution reads an execution record into the zero e, or reports
// false.
func readExecution(v []byte, e *Execution) bool {
	r := recordReader{b: v}
	var seen uint32
	ok := r.object(func(name []byte) bool {
		ok := false
		switch string(name) {
		case "id":
			ok = once(&seen, 1<<0) && r.str(&e.ID)
		case "program_id":
			ok = once(&seen, 1<<1) && r.str(&e.ProgramID)
		case "program_hash":
			ok = once(&seen, 1<<2) && r.str(&e.ProgramHash)
		case "program_name":
			ok = once(&seen, 1<<3) && r.str(&e.ProgramName)
		case "status":
			ok = once(&seen, 1<<4) && r.str(&e.Status)
		case "policy_hash":
			ok = once(&seen, 1<<5) && r.str(&e.PolicyHash)
		case "idempotency_key":
			ok = once(&seen, 1<<6) && r.str(&e.IdempotencyKey)
		case "input":
			ok = once(&seen, 1<<7) && r.raw(&e.Input)
		case "program":
			ok = once(&seen, 1<<8) && r.raw(&e.Program)
		case "checkpoint":
			ok = once(&seen, 1<<9) && r.raw(&e.Checkpoint)
		case "header":
			ok = once(&seen, 1<<10) && r.raw(&e.Header)
		case "created_at":
			ok = once(&seen, 1<<11) && r.time(&e.CreatedAt)
		case "updated_at":
			ok = once(&seen, 1<<12) && r.time(&e.UpdatedAt)
		}
		return ok
	})
	return ok && r.atEnd()
}

// readBody reads an execution body into e's Input, Program and
// Checkpoint, as loadBody does, or reports false.
func readBody(v []byte, e *Execution) bool {
	r := recordReader{b: v}
	var seen uint32
	var in, prog, cp json.RawMessage
	ok := r.object(func(name []byte) bool {
		ok := false
		switch string(name) {
		case "input":
			ok = once(&seen, 1<<0) && r.raw(&in)
		case "program":
			ok = once(&seen, 1<<1) && r.raw(&prog)
		case "checkpoint":
			ok = once(&seen, 1<<2) && r.raw(&cp)
		}
		return ok
	})
	if !ok || !r.atEnd() {
		return false
	}
	e.Input, e.Program, e.Checkpoint = in, prog, cp
	return true
}

// once records field bit in seen, refusing a repeated field, which
// encoding/json would merge.
func once(seen *uint32, bit uint32) bool {
	if *seen&bit != 0 {
		return false
	}
	*seen |= bit
	return true
}

// maxRecordDepth is how deeply recordReader follows nesting in a raw
// value before it leaves the record to encoding/json.
const maxRecordDepth = 1000

// recordReader reads a JSON record; every method reports false for input
// it does not handle, and never true for input encoding/json rejects.
type recordReader struct {
	b     []byte
	i     int
	depth int
}

func (r *recordReader) skipSpace() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

func (r *recordReader) atEnd() bool {
	r.skipSpace()
	return r.i == len(r.b)
}

func (r *recordReader) peek() byte {
	r.skipSpace()
	if r.i < len(r.b) {
		return r.b[r.i]
	}
	return 0
}

func (r *recordReader) eat(c byte) bool {
	if r.peek() == c {
		r.i++
		return true
	}
	return false
}

// object reads the record's object, calling member for each name with the
// reader at the value. Names must be plain (see plain).
func (r *recordReader) object(member func(name []byte) bool) bool {
	if !r.eat('{') {
		return false
	}
	if r.eat('}') {
		return true
	}
	for {
		name, ok := r.plain()
		if !ok || !r.eat(':') || !member(name) {
			return false
		}
		if r.eat(',') {
			continue
		}
		return r.eat('}')
	}
}

// plain reads a string of printable ASCII without escapes, which decodes
// to itself; any other string is refused.
func (r *recordReader) plain() ([]byte, bool) {
	if !r.eat('"') {
		return nil, false
	}
	start := r.i
	for r.i < len(r.b) {
		switch c := r.b[r.i]; {
		case c == '"':
			r.i++
			return r.b[start : r.i-1], true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false
		}
		r.i++
	}
	return nil, false
}

func (r *recordReader) str(s *string) bool {
	b, ok := r.plain()
	*s = string(b)
	return ok
}

// time reads a time as encoding/json does: the value's UnmarshalJSON on
// the literal, quotes included.
func (r *recordReader) time(t *time.Time) bool {
	if r.peek() != '"' {
		return false
	}
	start := r.i
	if _, ok := r.plain(); !ok {
		return false
	}
	return t.UnmarshalJSON(r.b[start:r.i]) == nil
}

// raw reads any valid JSON value and copies its text, as a
// json.RawMessage field gets it.
func (r *recordReader) raw(out *json.RawMessage) bool {
	r.skipSpace()
	start := r.i
	if !r.skip() {
		return false
	}
	*out = append([]byte(nil), r.b[start:r.i]...)
	return true
}

// skip passes over one value, checking it against JSON's grammar as
// encoding/json's scanner does.
func (r *recordReader) skip() bool {
	switch c := r.peek(); {
	case c == '{':
		r.i++
		if r.depth++; r.depth > maxRecordDepth {
			return false
		}
		if !r.eat('}') {
			for {
				if r.peek() != '"' || !r.skipString() || !r.eat(':') || !r.skip() {
					return false
				}
				if r.eat(',') {
					continue
				}
				if !r.eat('}') {
					return false
				}
				break
			}
		}
		r.depth--
		return true
	case c == '[':
		r.i++
		if r.depth++; r.depth > maxRecordDepth {
			return false
		}
		if !r.eat(']') {
			for {
				if !r.skip() {
					return false
				}
				if r.eat(',') {
					continue
				}
				if !r.eat(']') {
					return false
				}
				break
			}
		}
		r.depth--
		return true
	case c == '"':
		return r.skipString()
	case c == 't':
		return r.keyword("true")
	case c == 'f':
		return r.keyword("false")
	case c == 'n':
		return r.keyword("null")
	case c == '-' || ('0' <= c && c <= '9'):
		return r.skipNumber()
	}
	return false
}

func (r *recordReader) keyword(w string) bool {
	if len(r.b)-r.i >= len(w) && string(r.b[r.i:r.i+len(w)]) == w {
		r.i += len(w)
		return true
	}
	return false
}

// skipString passes over a string at r.i: no control characters, and only
// the escapes JSON defines (any bytes at or above 0x20 are accepted, as
// encoding/json's scanner accepts them).
func (r *recordReader) skipString() bool {
	b := r.b
	i := r.i + 1
	for i < len(b) {
		switch c := b[i]; {
		case c == '"':
			r.i = i + 1
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if i+1 >= len(b) {
				return false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return false
				}
				for _, h := range b[i+2 : i+6] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return false
					}
				}
				i += 6
			default:
				return false
			}
		default:
			i++
		}
	}
	return false
}

// skipNumber passes over a number in JSON's grammar.
func (r *recordReader) skipNumber() bool {
	b, i := r.b, r.i
	digits := func() bool {
		start := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		return i > start
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		digits()
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	r.i = i
	return true
}
