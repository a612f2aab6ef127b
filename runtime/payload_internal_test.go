package runtime

import (
	"bytes"
	"testing"

	"github.com/nanovm/nano-vm-mcp/kernel"
)

// Ensure the envelope payload written member by member is byte for byte
// the canonical JSON of the map it replaces, for every optional member
// (status, resume source, sub-steps, tool source and grants, nil and empty
// grants) and outputs that projection rewrites (secret-looking fields).
// Envelope hashes cover these bytes.
func TestEnvelopePayloadCanonical(t *testing.T) {
	upload := &kernel.ToolProvenance{ModuleSHA256: "m", ManifestSHA256: "n", Source: "upload", Grants: map[string]string{"nanovm:http": "policy", "wasi:fs": "upload-default"}}
	noGrants := &kernel.ToolProvenance{ModuleSHA256: "m", ManifestSHA256: "n", Source: "operator"}
	empty := &kernel.ToolProvenance{ModuleSHA256: "m", ManifestSHA256: "n", Source: "bundled", Grants: map[string]string{}}
	legacy := &kernel.ToolProvenance{ModuleSHA256: "m", ManifestSHA256: "n"}
	oci := &kernel.ToolProvenance{ModuleSHA256: "m", ManifestSHA256: "n", Source: "upload", Origin: "oci://r/t@sha256:ab", Signer: "key <1>", Grants: map[string]string{"nanovm:http": "policy"}}
	originOnly := &kernel.ToolProvenance{ModuleSHA256: "m", ManifestSHA256: "n", Source: "operator", Origin: "file"}
	outputs := []any{nil, "x", 1.5, map[string]any{"api_key": "sk-123", "amount": 3.0, "<b>": []any{"é", true}}, []any{map[string]any{"password": "p"}}}
	tests := []struct {
		name string
		rec  kernel.StepRecord
	}{
		{"success", kernel.StepRecord{Status: kernel.StepSuccess}},
		{"failed", kernel.StepRecord{Status: kernel.StepFailed}},
		{"skipped", kernel.StepRecord{Status: kernel.StepSkipped}},
		{"resume", kernel.StepRecord{Status: kernel.StepSuccess, Kind: kernel.KindResume, Source: "WEBHOOK"}},
		{"resume failed", kernel.StepRecord{Status: kernel.StepPending, Kind: kernel.KindResume, Source: `"q"`}},
		{"upload tool", kernel.StepRecord{Status: kernel.StepSuccess, Tool: upload}},
		{"no grants", kernel.StepRecord{Status: kernel.StepSuccess, Tool: noGrants}},
		{"empty grants", kernel.StepRecord{Status: kernel.StepFailed, Tool: empty}},
		{"legacy tool", kernel.StepRecord{Status: kernel.StepSuccess, Tool: legacy}},
		{"oci tool", kernel.StepRecord{Status: kernel.StepSuccess, Tool: oci}},
		{"origin only", kernel.StepRecord{Status: kernel.StepFailed, Tool: originOnly}},
		{"parallel", kernel.StepRecord{Status: kernel.StepSuccess, SubSteps: []kernel.SubStepRecord{
			{StepID: "b", Status: kernel.StepSuccess, Tool: upload}, {StepID: "a", Status: kernel.StepFailed},
			{StepID: "é", Status: kernel.StepSkipped, Tool: legacy}, {StepID: "c", Status: kernel.StepSuccess, Tool: noGrants}, {StepID: "d", Status: kernel.StepSuccess, Tool: oci}}}},
	}
	for _, tc := range tests {
		for _, out := range outputs {
			rec := tc.rec
			rec.Output = out
			got, err := envelopePayload(&rec, nil)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			want, err := envelopePayloadMap(&rec, nil)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s, output %v:\n got %s\nwant %s", tc.name, out, got, want)
			}
		}
	}
}
