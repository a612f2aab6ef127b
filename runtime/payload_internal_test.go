package runtime

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/nanovm/nano-vm-mcp/internal/canonical"
	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/kernel/projection"
)

// Ensure the envelope payload written member by member is byte for byte
// the canonical JSON of the map it replaces, for every optional member
// (status, resume source, sub-steps, tool source and grants, nil and empty
// grants) and outputs that projection rewrites (secret-looking fields, vault references, types other than plain JSON
// data).
// Envelope hashes cover these bytes.
func TestEnvelopePayloadCanonical(t *testing.T) {
	upload := &kernel.ToolProvenance{ModuleSHA256: "m", ManifestSHA256: "n", Source: "upload", Grants: map[string]string{"nanovm:http": "policy", "wasi:fs": "upload-default"}}
	noGrants := &kernel.ToolProvenance{ModuleSHA256: "m", ManifestSHA256: "n", Source: "operator"}
	empty := &kernel.ToolProvenance{ModuleSHA256: "m", ManifestSHA256: "n", Source: "bundled", Grants: map[string]string{}}
	legacy := &kernel.ToolProvenance{ModuleSHA256: "m", ManifestSHA256: "n"}
	oci := &kernel.ToolProvenance{ModuleSHA256: "m", ManifestSHA256: "n", Source: "upload", Origin: "oci://r/t@sha256:ab", Signer: "key <1>", Grants: map[string]string{"nanovm:http": "policy"}}
	originOnly := &kernel.ToolProvenance{ModuleSHA256: "m", ManifestSHA256: "n", Source: "operator", Origin: "file"}
	outputs := []any{nil, "x", 1.5, map[string]any{"api_key": "sk-123", "amount": 3.0, "<b>": []any{"é", true}}, []any{map[string]any{"password": "p"}},
		// Vault references, which the Trace projection rewrites.
		"vault://secret/abc", map[string]any{"k": []any{"use vault://secret/x.y now"}, "vault://secret/n": 1.0},
		[]string{"a", "vault://secret/s"}, map[string]string{"a": "b"}, json.RawMessage(`{"r":"vault://secret/r"}`), 7}
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
		{"parallel, repeated ids", kernel.StepRecord{Status: kernel.StepFailed, SubSteps: []kernel.SubStepRecord{
			{StepID: "b", Status: kernel.StepSuccess, Tool: upload}, {StepID: "a", Status: kernel.StepFailed}, {StepID: "b", Status: kernel.StepFailed, Tool: oci}}}},
		{"parallel, many", kernel.StepRecord{Status: kernel.StepSuccess, SubSteps: manySubs(40, upload)}},
	}
	for _, tc := range tests {
		for _, out := range outputs {
			rec := tc.rec
			rec.Output = out
			for _, refs := range []projection.Refs{nil, payloadVault{}} {
				got, err := envelopePayload(&rec, refs, nil)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				// With the output's canonical JSON given, as the
				// kernel gives it, the bytes are the same.
				if enc, err := canonical.Marshal(out); err == nil {
					with, err := envelopePayload(&rec, refs, enc)
					if err != nil || !bytes.Equal(with, got) {
						t.Errorf("%s, output %v, with its JSON: %s, %v; without: %s", tc.name, out, with, err, got)
					}
				}
				want, err := envelopePayloadMap(&rec, refs)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s, output %v:\n got %s\nwant %s", tc.name, out, got, want)
				}
			}
		}
	}
}

// payloadVault salts every reference and has erased "x.y".
type payloadVault struct{}

func (payloadVault) Ref(id string) (string, bool) { return "salt-" + id, id == "x.y" }

// manySubs makes n sub-step records with ids in no order.
func manySubs(n int, tool *kernel.ToolProvenance) []kernel.SubStepRecord {
	subs := make([]kernel.SubStepRecord, n)
	for i := range subs {
		subs[i] = kernel.SubStepRecord{StepID: fmt.Sprintf("s%d", (i*7)%n), Status: kernel.StepSuccess, Tool: tool}
	}
	return subs
}

// TestEnvelopePayloadInvalidUTF8 checks that a string no canonical form
// holds makes envelopePayload fail wherever it sits, as the map it
// replaces fails to encode.
func TestEnvelopePayloadInvalidUTF8(t *testing.T) {
	bad := "x\xff"
	tool := func(src, origin string) *kernel.ToolProvenance {
		return &kernel.ToolProvenance{ModuleSHA256: "m", ManifestSHA256: "n", Source: src, Origin: origin}
	}
	for name, rec := range map[string]kernel.StepRecord{
		"output":          {Status: kernel.StepSuccess, Output: bad},
		"resume source":   {Status: kernel.StepSuccess, Kind: kernel.KindResume, Source: bad},
		"tool source":     {Status: kernel.StepSuccess, Tool: tool(bad, "")},
		"tool origin":     {Status: kernel.StepSuccess, Tool: tool("upload", bad)},
		"grants":          {Status: kernel.StepSuccess, Tool: &kernel.ToolProvenance{Source: "upload", Grants: map[string]string{bad: "policy"}}},
		"sub-step id":     {Status: kernel.StepSuccess, SubSteps: []kernel.SubStepRecord{{StepID: bad, Status: kernel.StepSuccess}}},
		"sub-step module": {Status: kernel.StepSuccess, SubSteps: []kernel.SubStepRecord{{StepID: "a", Status: kernel.StepSuccess, Tool: &kernel.ToolProvenance{ModuleSHA256: bad}}}},
	} {
		if _, err := envelopePayloadMap(&rec, nil); err == nil {
			t.Fatalf("%s: the map encodes", name)
		}
		if b, err := envelopePayload(&rec, nil, nil); err == nil {
			t.Errorf("%s: envelopePayload = %s, want an error", name, b)
		}
	}
}
