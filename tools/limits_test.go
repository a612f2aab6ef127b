package tools

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/internal/jsonlimit"
)

func nest(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }

// Ensure a guest's output is held to the limits on accepted data at both
// sides of each boundary, with an error naming the limit.
func TestDecodeOutputLimits(t *testing.T) {
	tests := []struct {
		name, stdout string
		want         string // "" accepts
	}{
		{"depth at the limit", nest(jsonlimit.MaxDepth), ""},
		{"depth one over", nest(jsonlimit.MaxDepth + 1), "invalid output: nesting depth 129 exceeds the limit of 128"},
		{"encoding/json's own limit", nest(10_001), "nesting depth 129"},
		{"number at the limit", strings.Repeat("7", jsonlimit.MaxNumberLen), ""},
		{"number one over", strings.Repeat("7", jsonlimit.MaxNumberLen+1), "a number of 101 characters exceeds the limit of 100"},
		{"900,000 digits", strings.Repeat("9", 900_000), "a number of 900,000 characters"},
		{"out of range", `{"n":-1e309}`, "number -1e309 is outside the range of a 64-bit float"},
		{"not JSON, clipped", "oops " + strings.Repeat("z", 100_000), "bytes in all)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeOutput([]byte(tt.stdout))
			if failedKind(t, err, ErrInvalidOutput, tt.want) && len(err.Error()) > 1_000 {
				t.Fatalf("error of %d bytes", len(err.Error()))
			}
		})
	}
}

// Ensure the errors of a real guest that quote what it wrote (its
// {"error": ...}, a schema failure, stdout that is not JSON) are clipped
// to an excerpt with the total length.
func TestToolErrorsClipped(t *testing.T) {
	r := NewRegistry(newHost(t, HostOptions{}), NewMemoryStore(), RegistryOptions{})
	register(t, r, "raw_echo", func(m *Manifest) {
		m.OutputSchema = json.RawMessage(`{"type":"object","additionalProperties":false}`)
	})
	huge := strings.Repeat("x", 300_000)
	tests := []struct {
		name, raw string
		kind      error
	}{
		{"guest error", `{"error":"` + huge + `"}`, ErrToolFailed},
		{"schema failure", `{"` + huge + `":1}`, ErrInvalidOutput},
		{"not JSON", huge, ErrInvalidOutput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Call(context.Background(), "raw_echo", CallRequest{Args: map[string]any{"raw": tt.raw}})
			if !errors.Is(err, tt.kind) {
				t.Fatalf("err %.300v, want %v", err, tt.kind)
			}
			if msg := err.Error(); len(msg) > 2*maxErrorExcerpt || !strings.Contains(msg, "bytes in all)") {
				t.Fatalf("error of %d bytes: %.300s", len(msg), msg)
			}
		})
	}
}

// Ensure a manifest nested past the limit (in its schema, say) is refused
// naming the limit, and one at it is accepted.
func TestManifestDepth(t *testing.T) {
	schema := func(n int) string {
		return strings.Repeat(`{"type":"array","items":`, n) + `{}` + strings.Repeat("}", n)
	}
	for _, tt := range []struct {
		n    int
		want string
	}{{jsonlimit.MaxDepth - 3, ""}, {jsonlimit.MaxDepth, "nesting depth 129 exceeds the limit of 128"}} {
		_, err := ParseManifest([]byte(`{"name":"deep","version":"1","input_schema":` + schema(tt.n) + `}`))
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrInvalidManifest)) {
			t.Fatalf("schema depth %d: %v", tt.n, err)
		}
	}
	if _, err := ParseManifest([]byte(`{"name":"big","description":"` + strings.Repeat("d", jsonlimit.MaxManifestBytes) + `"}`)); err == nil || !strings.Contains(err.Error(), "over the limit of 1,048,576") {
		t.Fatalf("big manifest: %v", err)
	}
}
