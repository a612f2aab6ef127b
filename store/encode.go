package store

import (
	"encoding/json"
	"fmt"

	"github.com/nanovm/nano-vm-mcp/internal/jsonwrite"
)

// encodeRun returns a run record as json.Marshal(e) writes it, byte for byte,
// without reflection where e's raw fields are already compact (as the
// runtime writes them); otherwise through json.Marshal. The bytes are
// stored and their SHA-256 goes into an envelope, so the two paths must
// agree: TestEncodeRun and FuzzEncodeRun hold them together.
func encodeRun(e *Run) ([]byte, error) {
	n := 192 + len(e.ID) + len(e.ProgramID) + len(e.ProgramHash) + len(e.ProgramName) + len(e.Status) +
		len(e.PolicyHash) + len(e.IdempotencyKey) + len(e.Input) + len(e.Program) + len(e.Header)
	if b, ok := appendRun(make([]byte, 0, n), e); ok {
		return b, nil
	}
	return marshalRun(*e)
}

// marshalRun is encodeRun's json.Marshal path, on a copy of its own: the
// encoder's reflection makes what it is given escape, and the caller's
// record (often a local) should not move to the heap for the rare record
// that takes this path.
func marshalRun(e Run) ([]byte, error) {
	b, err := json.Marshal(&e)
	if err != nil {
		return nil, fmt.Errorf("encode run: %w", err)
	}
	return b, nil
}

func appendRun(b []byte, e *Run) ([]byte, bool) {
	var ok bool
	b = append(b, `{"id":`...)
	b = jsonwrite.AppendString(b, e.ID)
	if e.ProgramID != "" {
		b = append(b, `,"program_id":`...)
		b = jsonwrite.AppendString(b, e.ProgramID)
	}
	b = append(b, `,"program_hash":`...)
	b = jsonwrite.AppendString(b, e.ProgramHash)
	b = append(b, `,"program_name":`...)
	b = jsonwrite.AppendString(b, e.ProgramName)
	b = append(b, `,"status":`...)
	b = jsonwrite.AppendString(b, string(e.Status))
	b = append(b, `,"policy_hash":`...)
	b = jsonwrite.AppendString(b, e.PolicyHash)
	if e.IdempotencyKey != "" {
		b = append(b, `,"idempotency_key":`...)
		b = jsonwrite.AppendString(b, e.IdempotencyKey)
	}
	for _, f := range [...]struct {
		name string
		raw  json.RawMessage
	}{{`,"input":`, e.Input}, {`,"program":`, e.Program}, {`,"header":`, e.Header}} {
		if len(f.raw) == 0 {
			continue
		}
		b = append(b, f.name...)
		if b, ok = jsonwrite.AppendRaw(b, f.raw); !ok {
			return b, false
		}
	}
	b = append(b, `,"created_at":`...)
	if b, ok = jsonwrite.AppendTime(b, e.CreatedAt); !ok {
		return b, false
	}
	b = append(b, `,"updated_at":`...)
	if b, ok = jsonwrite.AppendTime(b, e.UpdatedAt); !ok {
		return b, false
	}
	return append(b, '}'), true
}
