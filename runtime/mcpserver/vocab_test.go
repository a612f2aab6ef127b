package mcpserver

import (
	"encoding/json"
	"strings"
	"testing"
)

// Ensure verify_audit names the run by trace_id, still takes execution_id
// (its deprecated alias) for clients of the earlier release, refuses the
// two when they differ, and reports the scope as a trace.
func TestVerifyAuditTraceIDAlias(t *testing.T) {
	s := newServer(t, nil)
	c, _ := inProcess(t, s)
	var program map[string]any
	if err := json.Unmarshal(readExample(t, "program.json"), &program); err != nil {
		t.Fatal(err)
	}
	run := ok(t, s, "run_program", call(t, c, "run_program", map[string]any{"program": program, "input": paymentInput()}))
	trace := run["trace_id"].(string)

	tests := []struct {
		name    string
		args    map[string]any
		wantErr string // empty: a report of the run's four envelopes
	}{
		{name: "trace_id", args: map[string]any{"trace_id": trace}},
		{name: "execution_id, the deprecated alias", args: map[string]any{"execution_id": trace}},
		{name: "both, equal", args: map[string]any{"trace_id": trace, "execution_id": trace}},
		{name: "both, different", args: map[string]any{"trace_id": trace, "execution_id": "other"},
			wantErr: `arguments "trace_id" and "execution_id" (its deprecated alias) differ`},
		{name: "alias with a checkpoint", args: map[string]any{"execution_id": trace, "checkpoint": "x"},
			wantErr: "a checkpoint covers the whole chain: omit trace_id"},
		{name: "unknown trace by the alias", args: map[string]any{"execution_id": "no-such-run"}, wantErr: "no-such-run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := call(t, c, "verify_audit", tt.args)
			if tt.wantErr != "" {
				e := toolErr(t, "verify_audit", res)
				if msg, _ := e["message"].(string); !strings.Contains(msg, tt.wantErr) {
					t.Fatalf("error %v, want %q", e, tt.wantErr)
				}
				return
			}
			got := ok(t, s, "verify_audit", res)
			if got["ok"] != true || got["checked"] != float64(4) || got["scope"] != "trace "+trace {
				t.Fatalf("verify_audit %v: %v", tt.args, got)
			}
		})
	}
}
