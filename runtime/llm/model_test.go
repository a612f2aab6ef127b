package llm

import (
	"errors"
	"strings"
	"testing"
)

// Ensure that model strings parse into provider and name as LiteLLM spells
// them, and that each malformed form is rejected with a reason.
func TestParseModel(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Model
		wantErr error
		wantMsg string
	}{
		{name: "openai", in: "openai/gpt-4o-mini", want: Model{ProviderOpenAI, "gpt-4o-mini"}},
		{name: "anthropic", in: "anthropic/claude-3-5-haiku-latest", want: Model{ProviderAnthropic, "claude-3-5-haiku-latest"}},
		{name: "ollama with tag", in: "ollama/llama3.2:3b", want: Model{ProviderOllama, "llama3.2:3b"}},
		{name: "mock", in: "mock/yes", want: Model{ProviderMock, "yes"}},
		{name: "name keeps further slashes", in: "openai/meta-llama/Llama-3.1-8B-Instruct", want: Model{ProviderOpenAI, "meta-llama/Llama-3.1-8B-Instruct"}},
		{name: "surrounding whitespace is ignored", in: "  mock/yes\n", want: Model{ProviderMock, "yes"}},
		{name: "mock spec with spaces inside", in: "mock/map:a b=c d", want: Model{ProviderMock, "map:a b=c d"}},
		{name: "empty", in: "", wantErr: ErrNoModel},
		{name: "blank", in: " \t", wantErr: ErrNoModel},
		{name: "no provider", in: "gpt-4o-mini", wantErr: ErrInvalidModel, wantMsg: "want provider/model (e.g. openai/gpt-4o-mini)"},
		{name: "unknown provider", in: "azure/gpt-4o", wantErr: ErrInvalidModel, wantMsg: `unknown provider "azure"`},
		{name: "provider is case-sensitive", in: "OpenAI/gpt-4o", wantErr: ErrInvalidModel, wantMsg: `unknown provider "OpenAI"`},
		{name: "empty provider", in: "/gpt-4o", wantErr: ErrInvalidModel, wantMsg: `unknown provider ""`},
		{name: "empty name", in: "openai/", wantErr: ErrInvalidModel, wantMsg: "empty or space-padded model name"},
		{name: "space-padded name", in: "openai/ gpt-4o", wantErr: ErrInvalidModel, wantMsg: "empty or space-padded"},
		{name: "control character", in: "openai/gpt\x004o", wantErr: ErrInvalidModel, wantMsg: "control character"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseModel(tc.in)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("ParseModel(%q) error %v, want %v", tc.in, err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantMsg) {
					t.Errorf("error %q does not contain %q", err, tc.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("ParseModel(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			if again, err := ParseModel(got.String()); err != nil || again != got {
				t.Errorf("round trip of %q: %+v, %v", got, again, err)
			}
		})
	}
}

// Ensure that RequireModel gives the message that names the variable when
// no model is set, and rejects unusable models before anything runs.
func TestRequireModel(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr error
		wantMsg string
	}{
		{name: "unset", in: " ", wantErr: ErrNoModel,
			wantMsg: "llm steps need a model: set NANO_VM_MCP_LLM_MODEL (e.g. openai/gpt-4o-mini, anthropic/claude-3-5-haiku-latest, ollama/llama3.2, mock/yes)"},
		{name: "typo in provider", in: "opnai/gpt-4o", wantErr: ErrInvalidModel, wantMsg: `parse model "opnai/gpt-4o"`},
		{name: "bad mock spec", in: "mock/cycle:a,,b", wantErr: ErrMockSpec, wantMsg: "cycle item 2 is empty"},
		{name: "good", in: "anthropic/claude-3-5-haiku-latest"},
		{name: "good mock", in: "mock/map:refund=refund;default=no"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := RequireModel(tc.in)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("RequireModel(%q) = %v, want %v containing %q", tc.in, err, tc.wantErr, tc.wantMsg)
			}
		})
	}
}

// Ensure that Provider.String names every provider and marks the zero
// value invalid.
func TestProviderString(t *testing.T) {
	tests := []struct {
		name string
		p    Provider
		want string
	}{
		{name: "zero", p: 0, want: "invalid"},
		{name: "openai", p: ProviderOpenAI, want: "openai"},
		{name: "ollama", p: ProviderOllama, want: "ollama"},
		{name: "anthropic", p: ProviderAnthropic, want: "anthropic"},
		{name: "mock", p: ProviderMock, want: "mock"},
		{name: "out of range", p: 99, want: "invalid"},
		{name: "negative", p: -1, want: "invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
		})
	}
}

// FuzzParseModel ensures the parser never panics and that whatever it
// accepts is well-formed and round-trips.
func FuzzParseModel(f *testing.F) {
	for _, s := range []string{"openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest", "ollama/llama3.2", "mock/yes",
		"mock/cycle:yes,no,maybe", "mock/map:refund=refund;default=no", "", "/", "openai/", "x/y/z", " mock/yes \n", "mock/\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseModel(s)
		if err != nil {
			if m != (Model{}) {
				t.Fatalf("ParseModel(%q) returned %+v with error %v", s, m, err)
			}
			return
		}
		if m.Provider.String() == "invalid" || m.Name == "" || strings.ContainsFunc(m.Name, isControl) {
			t.Fatalf("ParseModel(%q) accepted %+v", s, m)
		}
		again, err := ParseModel(m.String())
		if err != nil || again != m {
			t.Fatalf("round trip of %q: %+v, %v", s, again, err)
		}
		// RequireModel and New agree with the parser on every accepted string.
		if m.Provider == ProviderMock {
			_, perr := parseMock(m.Name)
			if rerr := RequireModel(s); (perr == nil) != (rerr == nil) {
				t.Fatalf("RequireModel(%q) = %v but parseMock says %v", s, rerr, perr)
			}
		}
	})
}
