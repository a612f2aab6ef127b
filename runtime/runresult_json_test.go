package runtime_test

import (
	"encoding/json"
	"testing"

	"github.com/nanovm/nano-vm-mcp/runtime"
)

// Ensure a run's result says a stored outcome under stored_outcome and, for
// clients of the earlier release, under the deprecated idempotent_replay;
// and says neither for a fresh run.
func TestRunResultStoredOutcomeJSON(t *testing.T) {
	tests := []struct {
		name   string
		stored bool
		want   any // both fields' value; nil when left out
	}{
		{"stored outcome", true, true},
		{"fresh run", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(&runtime.RunResult{TraceID: "t", Status: "success", StoredOutcome: tt.stored})
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if m["stored_outcome"] != tt.want || m["idempotent_replay"] != tt.want || m["trace_id"] != "t" {
				t.Fatalf("%s", b)
			}
			var back runtime.RunResult
			if err := json.Unmarshal(b, &back); err != nil || back.StoredOutcome != tt.stored {
				t.Fatalf("read back %+v, %v", back, err)
			}
		})
	}
}
