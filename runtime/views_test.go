package runtime_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/store"
)

// Ensure SummariseTool shows what a record and its manifest say, with
// capabilities and grants never nil (the readers' schemas require both),
// the source a record without one reads as, and the pinning ref.
func TestSummariseTool(t *testing.T) {
	tests := []struct {
		name string
		rec  store.ToolRecord
		want runtime.ToolSummary
	}{
		{
			name: "manifest fields, grants and source as recorded",
			rec: store.ToolRecord{Name: "echo", ModuleSHA256: "ab", ManifestSHA256: "cd", Source: store.SourceUpload,
				Manifest: []byte(`{"name":"echo","version":"1.2","description":"says it back","capabilities":["nanovm:http"]}`),
				Grants:   map[string]string{"nanovm:http": "policy"}},
			want: runtime.ToolSummary{Name: "echo", Version: "1.2", Description: "says it back", Capabilities: []string{"nanovm:http"},
				ModuleSHA256: "ab", ManifestSHA256: "cd", Source: "upload", Grants: map[string]string{"nanovm:http": "policy"}, Ref: "echo@sha256:ab"},
		},
		{
			name: "nothing asked, nothing granted, no source recorded",
			rec:  store.ToolRecord{Name: "bare", ModuleSHA256: "ef", Manifest: []byte(`{"name":"bare"}`)},
			want: runtime.ToolSummary{Name: "bare", Capabilities: []string{}, ModuleSHA256: "ef", Source: "operator", Grants: map[string]string{}, Ref: "bare@sha256:ef"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := runtime.SummariseTool(tc.rec); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("SummariseTool\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// Ensure Header copies every field of the header: a field added to
// TraceHeader and not set from the view would be zero here.
func TestTraceHeaderComplete(t *testing.T) {
	next := 3
	finished := time.Unix(2, 0)
	v := &runtime.TraceView{
		Trace: &kernel.Trace{
			TraceID: "t", ProgramName: "n", Status: kernel.StatusSuspended, Error: "e", InitialStateHash: "i", StateRoot: "r",
			SuspendedStepID: "s", StepMetrics: kernel.StepMetrics{ToolCalls: 1}, Usage: kernel.Usage{TotalTokens: 1},
			StartedAt: time.Unix(1, 0), FinishedAt: &finished, DurationMS: 1,
		},
		ProgramID: "p", ProgramHash: "ph", PolicyHash: "pol", TotalSteps: 9, Offset: 1, NextOffset: &next,
	}
	h := reflect.ValueOf(v.Header())
	for i := range h.NumField() {
		if h.Field(i).IsZero() {
			t.Errorf("Header leaves %s unset", h.Type().Field(i).Name)
		}
	}
}
