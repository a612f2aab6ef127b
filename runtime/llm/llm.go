package llm

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/nanovm/nano-vm-mcp/kernel"
)

// userAgent identifies this client to providers and proxies.
const userAgent = "nano-vm-mcp"

// New returns the client for model, a provider/model string such as
// "openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest",
// "ollama/llama3.2" or "mock/yes", configured by opts (nil for defaults).
// An empty model returns [ErrNoModel].
//
// The mock provider's spec forms are:
//
//   - mock/yes (any text without ':'), mock/const:text — always that text;
//   - mock/cycle:yes,no,maybe — the items in turn. The item is chosen by
//     the request, not by a process-wide counter: the first attempt of a
//     step starts at an item picked by a hash of (trace id, step id,
//     step index) and each retry moves one item on. The same call thus gets
//     the same answer whatever runs concurrently, a retry gets the next
//     item, and runs with different ids spread over the items;
//   - mock/map:refund=refund;question=question;default=no — the value of
//     the first key, in the order written, that occurs in the prompt
//     (case-sensitive), else the default ("" when none is given).
//
// Mock usage counts words (prompt and system as prompt tokens, the answer as
// completion tokens) and costs 0.
//
// New validates everything it can before any call: the model string, the
// base URL, the API key for a provider's public endpoint, MaxTokens and
// Temperature.
func New(model string, opts *Options) (kernel.LLMClient, error) {
	m, err := ParseModel(model)
	if err != nil {
		return nil, err
	}
	o := withDefaults(opts)
	if o.MaxTokens < 0 {
		return nil, fmt.Errorf("new llm client %q: max tokens %d is negative", m, o.MaxTokens)
	}
	if o.MaxResponseBytes < 0 {
		return nil, fmt.Errorf("new llm client %q: max response bytes %d is negative", m, o.MaxResponseBytes)
	}
	if !(o.Temperature >= 0 && o.Temperature <= 2) { // also rejects NaN
		return nil, fmt.Errorf("new llm client %q: temperature %v is outside [0, 2]", m, o.Temperature)
	}
	if m.Provider == ProviderMock {
		return parseMock(m.Name)
	}

	var defBase, keyVar string
	switch m.Provider {
	case ProviderOpenAI:
		defBase, keyVar = defaultOpenAIBase, "OPENAI_API_KEY"
	case ProviderOllama:
		defBase = defaultOllamaBase
	case ProviderAnthropic:
		defBase, keyVar = defaultAnthropicBase, "ANTHROPIC_API_KEY"
	}
	base := firstNonEmpty(o.BaseURL, o.Getenv(EnvBaseURL), defBase)
	base, err = checkBaseURL(base)
	if err != nil {
		return nil, fmt.Errorf("new llm client %q: %w", m, err)
	}
	key := o.APIKey
	if key == "" && keyVar != "" {
		key = strings.TrimSpace(o.Getenv(keyVar))
	}
	if key == "" && keyVar != "" && base == defBase {
		return nil, fmt.Errorf("new llm client %q: %w: set %s (or Options.APIKey)", m, ErrNoAPIKey, keyVar)
	}

	if m.Provider == ProviderAnthropic {
		return newAnthropicClient(base, key, m.Name, o), nil
	}
	return newOpenAIClient(m.Provider.String(), base, key, m.Name, o), nil
}

// checkBaseURL accepts an absolute http or https URL and returns it without
// a trailing slash, so paths join with a single '/'.
func checkBaseURL(base string) (string, error) {
	base = strings.TrimRight(strings.TrimSpace(base), "/")
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("base URL %q: want http:// or https:// with a host", base)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("base URL %q: no query or fragment allowed", base)
	}
	return base, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}
