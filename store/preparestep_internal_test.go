package store

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/nanovm/nano-vm-mcp/kernel"
)

// benchStepRecord is a refund step record as the runtime stores it
// (kernel.AppendStepRecord of a tool step), about 700 bytes.
const benchStepRecord = `{"index":3,"step_id":"eligibility","type":"tool","status":"success","output":{"amount":42.5,"currency":"EUR","order_id":"o-17","reason":"damaged on arrival"},"retries":0,"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0,"cost_usd":0},"state_hash":"6f1c0c4d8a2b5e7f9031a6b4c2d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d2","tool":{"module_sha256":"0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9","manifest_sha256":"f9e8d7c6b5a4938271605f4e3d2c1b0af9e8d7c6b5a4938271605f4e3d2c1b0a","source":"bundled"},"started_at":"2026-12-01T21:00:00.123456789Z","finished_at":"2026-12-01T21:00:00.123498765Z","duration_ms":0.041976}`

// BenchmarkPrepareStep is the run goroutine's share of a step commit
// (validation, the run record's JSON when it is rewritten, the hashes
// and the envelope's canonical bytes), without the transaction: a middle
// step that keeps the run record, the first one committing to the
// record as stored, and a last one that rewrites it with the full header.
func BenchmarkPrepareStep(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "prep.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	created := time.Date(2026, 12, 1, 21, 0, 0, 0, time.UTC)
	run := Run{ID: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", ProgramName: "refund_pipeline", ProgramHash: "3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d",
		Status: kernel.StatusRunning, PolicyHash: "9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d5e4f30211203f4e5d6c7b8a9", CreatedAt: created, UpdatedAt: created}
	// The header a run is recorded with, which the runtime's kept
	// commits still carry in their Run.
	run.Header = json.RawMessage(`{"trace_id":"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","program_name":"refund_pipeline","status":"running","initial_state_hash":"6f1c0c4d8a2b5e7f9031a6b4c2d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d2","started_at":"2026-12-01T21:00:00Z","finished_at":"0001-01-01T00:00:00Z","duration_ms":0,"step_metrics":{"llm_calls":0,"tool_calls":0},"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0,"cost_usd":0}}`)
	header := json.RawMessage(`{"trace_id":"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","program_name":"refund_pipeline","status":"success","initial_state_hash":"6f1c0c4d8a2b5e7f9031a6b4c2d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d2","started_at":"2026-12-01T21:00:00Z","finished_at":"2026-12-01T21:00:00.01Z","duration_ms":10,"final_output":{"refund_id":"r-17","status":"issued"},"step_metrics":{"llm_calls":2,"tool_calls":3},"usage":{"prompt_tokens":120,"completion_tokens":8,"total_tokens":128,"cost_usd":0}}`)
	env := Envelope{Kind: EnvelopeKindStep, TraceID: run.ID, StepIndex: 3, StepID: "eligibility", PolicyHash: run.PolicyHash,
		StateHash:    "6f1c0c4d8a2b5e7f9031a6b4c2d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d2",
		ModuleSHA256: "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9", ManifestSHA256: "f9e8d7c6b5a4938271605f4e3d2c1b0af9e8d7c6b5a4938271605f4e3d2c1b0a",
		Payload: json.RawMessage(`{"output":{"amount":42.5,"currency":"EUR","order_id":"o-17","reason":"damaged on arrival"},"tool_grants":{},"tool_source":"bundled"}`)}
	stored, err := encodeRun(&run)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		sc   StepCommit
	}{
		{"kept", StepCommit{Run: run, KeepRun: true, Index: 3, Step: json.RawMessage(benchStepRecord)}},
		{"first-kept", StepCommit{Run: run, KeepRun: true, RunRecord: StoredRun{v: stored, status: run.Status}, Index: 3, Step: json.RawMessage(benchStepRecord)}},
		{"rewrite", StepCommit{Run: func() Run { r := run; r.Status, r.Header = kernel.StatusSuccess, header; return r }(), Index: 3, Step: json.RawMessage(benchStepRecord)}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				e := env
				sc := c.sc
				sc.Envelope = &e
				if _, err := db.prepareStep(sc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Ensure the remembered program only spares scanning the very bytes found
// valid: a caller's buffer changed afterwards, or another program, is
// checked again.
func TestValidProgramRemembersBytes(t *testing.T) {
	prog := []byte(`{"name":"p","steps":[]}`)
	if !validProgram(prog) || !validProgram(prog) {
		t.Fatal("a valid program refused")
	}
	copy(prog[len(prog)-2:], "]]")
	if validProgram(prog) {
		t.Fatalf("%s accepted after the valid bytes it was remembered as changed", prog)
	}
	if validProgram([]byte(`{"name":`)) || !validProgram([]byte(`{"name":"q"}`)) {
		t.Fatal("another program judged by the remembered one")
	}
	if err := checkRun(Run{ID: "r", Program: json.RawMessage(`{"x":`)}); err == nil {
		t.Fatal("checkRun took an invalid program")
	}
}
