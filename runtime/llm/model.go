package llm

import (
	"fmt"
	"strings"
)

// EnvModel is the environment variable holding the provider/model string.
const EnvModel = "NANO_VM_MCP_LLM_MODEL"

// EnvBaseURL is the environment variable that overrides a provider's
// default base URL when Options.BaseURL is empty.
const EnvBaseURL = "NANO_VM_MCP_LLM_BASE_URL"

// Provider names an LLM provider. The zero value is invalid.
type Provider int

// The supported providers.
const (
	providerInvalid Provider = iota
	// ProviderOpenAI is any OpenAI-compatible Chat Completions endpoint.
	ProviderOpenAI
	// ProviderOllama is Ollama's OpenAI-compatible endpoint, keyless.
	ProviderOllama
	// ProviderAnthropic is Anthropic's Messages API.
	ProviderAnthropic
	// ProviderMock is the deterministic offline provider.
	ProviderMock
)

var providerNames = [...]string{
	ProviderOpenAI:    "openai",
	ProviderOllama:    "ollama",
	ProviderAnthropic: "anthropic",
	ProviderMock:      "mock",
}

// String returns the provider's prefix in a model string, e.g. "openai",
// or "invalid" for the zero value.
func (p Provider) String() string {
	if p <= providerInvalid || int(p) >= len(providerNames) {
		return "invalid"
	}
	return providerNames[p]
}

// Model is a parsed provider/model string.
type Model struct {
	// Provider is the part before the first '/'.
	Provider Provider
	// Name is everything after the first '/', passed to the provider as is;
	// it may itself contain '/' (e.g. a Hugging Face id served by vLLM).
	Name string
}

// String returns the model as provider/name; ParseModel(m.String()) == m.
func (m Model) String() string { return m.Provider.String() + "/" + m.Name }

// ParseModel parses a provider/model string such as "openai/gpt-4o-mini".
// Surrounding whitespace is ignored, so a value read from a file with a
// trailing newline works. The provider prefix is case-sensitive, as in
// LiteLLM. An empty string returns [ErrNoModel]; anything else malformed a
// wrapped [ErrInvalidModel]. The mock spec is checked by [New] and
// [RequireModel], not here.
func ParseModel(s string) (Model, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Model{}, ErrNoModel
	}
	prefix, name, ok := strings.Cut(s, "/")
	if !ok {
		return Model{}, fmt.Errorf("parse model %q: %w: want provider/model (e.g. openai/%s)", s, ErrInvalidModel, s)
	}
	var p Provider
	for i, n := range providerNames {
		if n != "" && n == prefix {
			p = Provider(i)
		}
	}
	if p == providerInvalid {
		return Model{}, fmt.Errorf("parse model %q: %w: unknown provider %q (want openai, ollama, anthropic or mock)", s, ErrInvalidModel, prefix)
	}
	if strings.TrimSpace(name) != name || name == "" {
		return Model{}, fmt.Errorf("parse model %q: %w: empty or space-padded model name after %q", s, ErrInvalidModel, prefix+"/")
	}
	if strings.ContainsFunc(name, isControl) {
		return Model{}, fmt.Errorf("parse model %q: %w: control character in model name", s, ErrInvalidModel)
	}
	return Model{Provider: p, Name: name}, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// RequireModel checks, before a program with llm steps runs, that model
// (typically the value of NANO_VM_MCP_LLM_MODEL) is set and well-formed. It
// returns [ErrNoModel] when model is empty, so the message tells the user
// which variable to set, and a wrapped [ErrInvalidModel] (or mock spec
// error) when it cannot be used.
func RequireModel(model string) error {
	m, err := ParseModel(model)
	if err != nil {
		return err
	}
	if m.Provider == ProviderMock {
		if _, err := parseMock(m.Name); err != nil {
			return err
		}
	}
	return nil
}
