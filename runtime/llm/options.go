package llm

import (
	"net/http"
	"os"
	"time"
)

// Options configure [New]. A nil *Options, and every zero field, means the
// documented default.
type Options struct {
	// BaseURL is the provider's endpoint root, e.g. "http://vllm:8000/v1".
	// Empty means the NANO_VM_MCP_LLM_BASE_URL variable, else the
	// provider's default: https://api.openai.com/v1 (openai),
	// http://localhost:11434/v1 (ollama), https://api.anthropic.com
	// (anthropic). Requests go to {BaseURL}/chat/completions for
	// openai and ollama, and {BaseURL}/v1/messages for anthropic. The mock
	// provider ignores it.
	BaseURL string
	// APIKey authenticates to the provider. Empty means OPENAI_API_KEY
	// (openai) or ANTHROPIC_API_KEY (anthropic); ollama and mock need none.
	// A key is required only for the provider's default endpoint: a custom
	// BaseURL (vLLM, llama.cpp, a local proxy) may be keyless.
	APIKey string
	// HTTPClient sends the requests. Nil means a client with no overall
	// timeout of its own (the caller's ctx bounds each call) over a clone of
	// http.DefaultTransport.
	HTTPClient *http.Client
	// Getenv reads the environment; nil means os.Getenv. Tests pass a map
	// lookup so they never depend on the machine's environment.
	Getenv func(string) string
	// Prices overlays the built-in price table ([DefaultPrices]), keyed by
	// full model string; an entry here wins, so Price{} makes a model free.
	// Nil means the built-in table alone.
	Prices map[string]Price
	// MaxTokens caps the completion length of each call. Zero means 1024.
	// OpenAI's reasoning models (o1, o3, o4, gpt-5 families) receive it as
	// max_completion_tokens, which also counts their hidden reasoning
	// tokens: give them a larger cap.
	MaxTokens int
	// Temperature is the sampling temperature, between 0 and 2. Zero (the
	// default) asks for the most deterministic answer the model gives.
	// OpenAI's reasoning models accept only their default, so it is not
	// sent to them.
	Temperature float64
	// MaxResponseBytes caps a response body. Zero means 4 MiB.
	MaxResponseBytes int64
}

const (
	defaultMaxTokens        = 1024
	defaultMaxResponseBytes = 4 << 20
	defaultOpenAIBase       = "https://api.openai.com/v1"
	defaultOllamaBase       = "http://localhost:11434/v1"
	defaultAnthropicBase    = "https://api.anthropic.com"
)

// defaultHTTPClient returns the client used when Options.HTTPClient is nil.
// Its transport is a clone so a caller tuning http.DefaultTransport does not
// change ours mid-flight; its ResponseHeaderTimeout guards a provider that
// accepts a connection and never answers when the ctx has no deadline.
func defaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = 10 * time.Minute
	return &http.Client{Transport: t}
}

// withDefaults returns a copy of opts (which may be nil) with every zero
// field replaced by its default.
func withDefaults(opts *Options) Options {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.HTTPClient == nil {
		o.HTTPClient = defaultHTTPClient()
	}
	if o.MaxTokens == 0 {
		o.MaxTokens = defaultMaxTokens
	}
	if o.MaxResponseBytes == 0 {
		o.MaxResponseBytes = defaultMaxResponseBytes
	}
	return o
}
