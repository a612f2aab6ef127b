package store_test

import (
	"encoding/json"
	"testing"

	"github.com/nanovm/nano-vm-mcp/store"
)

// Ensure a record problem names its run under trace_id and, for clients of
// the earlier release, under the deprecated execution_id too.
func TestRecordProblemJSON(t *testing.T) {
	two := 2
	tests := []struct {
		name string
		p    store.RecordProblem
	}{
		{"step", store.RecordProblem{TraceID: "7f0c", Record: store.RecordStep, StepIndex: &two, Seq: 9, Problem: store.ProblemRecordChanged, Reason: "r"}},
		{"secret, no run", store.RecordProblem{Record: store.RecordSecret, Problem: store.ProblemRecordChanged, Reason: "r"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.p)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if m["trace_id"] != tt.p.TraceID || m["execution_id"] != tt.p.TraceID || m["record"] != tt.p.Record {
				t.Fatalf("%s", b)
			}
		})
	}
}
