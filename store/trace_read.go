package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/nanovm/nano-vm-mcp/internal/jsonread"
)

// RunTrace implements RunStore.
func (db *DB) RunTrace(ctx context.Context, id string) (Run, []Step, error) {
	var (
		e     Run
		steps []Step
	)
	err := db.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketRuns).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		if !readRun(v, &e) {
			e = Run{}
			if err := decodeRecord(v, &e); err != nil {
				return err
			}
		}
		if body := tx.Bucket(bucketRunBodies).Get([]byte(id)); body != nil && !readBody(body, &e) {
			e.Input, e.Program = nil, nil
			if err := loadBody(tx, &e); err != nil {
				return err
			}
		}
		steps = readSteps(tx, id)
		return nil
	})
	if err != nil {
		return Run{}, nil, fmt.Errorf("run trace %q: %w", id, err)
	}
	return e, steps, nil
}

// readSteps returns a run's steps, copied out of the transaction
// into one allocation.
func readSteps(tx *bolt.Tx, id string) []Step {
	prefix := append([]byte(id), 0)
	c := tx.Bucket(bucketSteps).Cursor()
	var steps []Step
	size := 0
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if len(k) != len(prefix)+8 {
			continue // not a step key: verify reports it (badStepKeys)
		}
		rec := stepRecord(tx, v)
		if rec == nil {
			continue // a reference to a log record that is gone: verify reports the step missing
		}
		steps = append(steps, Step{Index: int(binary.BigEndian.Uint64(k[len(prefix):])), Data: rec})
		size += len(rec)
	}
	buf := make([]byte, 0, size)
	for i := range steps {
		start := len(buf)
		buf = append(buf, steps[i].Data...)
		steps[i].Data = buf[start:len(buf):len(buf)]
	}
	return steps
}

// The run and body records are read directly when they are as
// json.Marshal writes them: through encoding/json they were over a quarter
// of a replay's time. Anything else (escapes or non-ASCII in a string,
// unknown or repeated fields, invalid JSON) goes to decodeRecord and
// loadBody, which define the result, so a change of the record format
// costs speed, not correctness; the conformance suite compares
// RunTrace with Run and Steps.

// readRun reads a run record into the zero e, or reports
// false.
func readRun(v []byte, e *Run) bool {
	r := jsonread.New(v)
	var seen uint32
	ok := r.Object(func(name []byte) bool {
		ok := false
		switch string(name) {
		case "id":
			ok = jsonread.Once(&seen, 1<<0) && str(r, &e.ID)
		case "program_id":
			ok = jsonread.Once(&seen, 1<<1) && str(r, &e.ProgramID)
		case "program_hash":
			ok = jsonread.Once(&seen, 1<<2) && str(r, &e.ProgramHash)
		case "program_name":
			ok = jsonread.Once(&seen, 1<<3) && str(r, &e.ProgramName)
		case "status":
			ok = jsonread.Once(&seen, 1<<4) && str(r, (*string)(&e.Status))
		case "policy_hash":
			ok = jsonread.Once(&seen, 1<<5) && str(r, &e.PolicyHash)
		case "idempotency_key":
			ok = jsonread.Once(&seen, 1<<6) && str(r, &e.IdempotencyKey)
		case "input":
			ok = jsonread.Once(&seen, 1<<7) && r.Raw(&e.Input)
		case "program":
			ok = jsonread.Once(&seen, 1<<8) && r.Raw(&e.Program)
		case "checkpoint": // written by older releases, never read
			var old json.RawMessage
			ok = jsonread.Once(&seen, 1<<9) && r.Raw(&old)
		case "header":
			ok = jsonread.Once(&seen, 1<<10) && r.Raw(&e.Header)
		case "created_at":
			ok = jsonread.Once(&seen, 1<<11) && r.Time(&e.CreatedAt)
		case "updated_at":
			ok = jsonread.Once(&seen, 1<<12) && r.Time(&e.UpdatedAt)
		}
		return ok
	})
	return ok && r.AtEnd()
}

// readBody reads a run body into e's Input and Program, as
// loadBody does, or reports false.
func readBody(v []byte, e *Run) bool {
	r := jsonread.New(v)
	var seen uint32
	var in, prog, cp json.RawMessage
	ok := r.Object(func(name []byte) bool {
		ok := false
		switch string(name) {
		case "input":
			ok = jsonread.Once(&seen, 1<<0) && r.Raw(&in)
		case "program":
			ok = jsonread.Once(&seen, 1<<1) && r.Raw(&prog)
		case "checkpoint":
			ok = jsonread.Once(&seen, 1<<2) && r.Raw(&cp) // older releases; never read
		}
		return ok
	})
	if !ok || !r.AtEnd() {
		return false
	}
	e.Input, e.Program = in, prog
	return true
}

// str reads a string into s.
func str(r *jsonread.Reader, s *string) bool {
	v, ok := r.Str()
	*s = v
	return ok
}

// readRunKeys reads the fields a run's index keys derive from, as
// decodeRecord would into an runKeys, passing over the other fields of
// the record; a name it does not know sends the record to decodeRecord.
// It runs on the committer at the end of every run, where a full decode
// of the record was a measurable part of each group commit.
func readRunKeys(v []byte, k *runKeys) bool {
	r := jsonread.New(v)
	var seen uint32
	ok := r.Object(func(name []byte) bool {
		switch string(name) {
		case "program_id":
			return jsonread.Once(&seen, 1<<0) && str(r, &k.ProgramID)
		case "status":
			return jsonread.Once(&seen, 1<<1) && str(r, (*string)(&k.Status))
		case "created_at":
			return jsonread.Once(&seen, 1<<2) && r.Time(&k.CreatedAt)
		case "id", "program_hash", "program_name", "policy_hash", "idempotency_key",
			"input", "program", "checkpoint", "header", "updated_at":
			return r.Skip()
		}
		return false
	})
	return ok && r.AtEnd()
}

// badStepKeys counts the keys under a run's step prefix that are
// not the id, a NUL and an 8-byte index: no writer makes them and every
// reader skips them, so only verify sees them.
func badStepKeys(tx *bolt.Tx, id string) int {
	prefix := append([]byte(id), 0)
	c := tx.Bucket(bucketSteps).Cursor()
	n := 0
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if len(k) != len(prefix)+8 {
			n++
		}
	}
	return n
}
