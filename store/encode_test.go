package store

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nanovm/nano-vm-mcp/kernel"
)

func checkEncodeRun(t testing.TB, e *Run) {
	t.Helper()
	want, wantErr := json.Marshal(e)
	got, err := encodeRun(e)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("encodeRun error %v, json.Marshal %v", err, wantErr)
	}
	if err == nil && !bytes.Equal(got, want) {
		t.Fatalf("encodeRun\n got %s\nwant %s", got, want)
	}
}

// Ensure the run record's encoder writes exactly json.Marshal's
// bytes (the record's SHA-256 is in the envelopes, and records written by
// earlier releases must keep verifying), for random records with awkward
// strings, raw fields that are compact or not, and times MarshalJSON
// refuses.
func TestEncodeRun(t *testing.T) {
	strs := []string{"", "id-1", "<&>", "tab\there", "\u2028", "\xff", "日本"}
	raws := []string{"", `{"a":1}`, `{"a": 1}`, `"<x>"`, "[\n1]", `{"trace_id":"t","steps":null}`, `"\u2028"`, "\"\u2028\"", `null`}
	times := []time.Time{{}, time.Date(2026, 12, 1, 9, 0, 0, 5, time.UTC), time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("x", -3600)), time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)}
	r := rand.New(rand.NewPCG(3, 4))
	s := func() string { return strs[r.IntN(len(strs))] }
	raw := func() json.RawMessage {
		if v := raws[r.IntN(len(raws))]; v != "" {
			return json.RawMessage(v)
		}
		return nil
	}
	for range 5000 {
		e := &Run{ID: s(), ProgramID: s(), ProgramHash: s(), ProgramName: s(), Status: kernel.Status(s()), PolicyHash: s(),
			IdempotencyKey: s(), Input: raw(), Program: raw(), Header: raw(),
			CreatedAt: times[r.IntN(len(times))], UpdatedAt: times[r.IntN(len(times))]}
		checkEncodeRun(t, e)
	}
}

// FuzzEncodeExecution decodes the input as an execution record and holds
// encodeRun to json.Marshal on it.
func FuzzEncodeRun(f *testing.F) {
	f.Add([]byte(`{"id":"x","status":"running","header":{"a": [1, "<"]},"created_at":"2026-12-01T00:00:00Z"}`))
	f.Add([]byte(`{"id":"x","program_id":"p","input":{"k":"v"},"updated_at":"2026-12-01T00:00:00.5+01:00"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var e Run
		if json.Unmarshal(data, &e) == nil {
			checkEncodeRun(t, &e)
		}
	})
}
