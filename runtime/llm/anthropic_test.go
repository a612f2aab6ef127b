package llm

import (
	"net/http"
	"testing"

	"github.com/nanovm/nano-vm-mcp/kernel"
)

// Ensure that Anthropic requests put the system prompt in the top-level
// field, authenticate with x-api-key and the pinned version, and that the
// answer's text blocks, usage and cost come back.
func TestAnthropicRequest(t *testing.T) {
	const haiku = (25*0.80 + 4*4.00) / 1e6
	tests := []struct {
		name     string
		model    string
		opts     Options
		base     string
		env      []string
		req      kernel.LLMRequest
		body     []byte
		wantPath string
		wantKey  string
		wantBody string
		wantText string
		wantUse  kernel.Usage
	}{
		{
			name:     "system prompt goes in the system field",
			model:    "anthropic/claude-3-5-haiku-latest",
			env:      []string{"ANTHROPIC_API_KEY", "sk-ant-test"},
			req:      kernel.LLMRequest{System: "Answer yes or no.", Prompt: "Is this a refund?"},
			body:     fixture(t, "anthropic_message.json"),
			wantPath: "/v1/messages",
			wantKey:  "sk-ant-test",
			wantBody: `{"model":"claude-3-5-haiku-latest","max_tokens":1024,"system":"Answer yes or no.","messages":[{"role":"user","content":"Is this a refund?"}],"temperature":0}`,
			wantText: "yes",
			wantUse:  kernel.Usage{PromptTokens: 25, CompletionTokens: 4, TotalTokens: 29, CostUSD: haiku},
		},
		{
			name:     "no system prompt omits the field; options set limits; base from the environment",
			model:    "anthropic/claude-3-5-haiku-latest",
			opts:     Options{APIKey: "sk-opt", MaxTokens: 16, Temperature: 1},
			base:     "/proxy/",
			req:      kernel.LLMRequest{Prompt: "hi"},
			body:     fixture(t, "anthropic_message.json"),
			wantPath: "/proxy/v1/messages",
			wantKey:  "sk-opt",
			wantBody: `{"model":"claude-3-5-haiku-latest","max_tokens":16,"messages":[{"role":"user","content":"hi"}],"temperature":1}`,
			wantText: "yes",
			wantUse:  kernel.Usage{PromptTokens: 25, CompletionTokens: 4, TotalTokens: 29, CostUSD: haiku},
		},
		{
			name:  "text blocks are joined, other blocks skipped, cache tokens counted as input",
			model: "anthropic/claude-unknown",
			env:   []string{"ANTHROPIC_API_KEY", "k"},
			req:   kernel.LLMRequest{Prompt: "p"},
			body: []byte(`{"type":"message","role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"x"},` +
				`{"type":"text","text":"re"},{"type":"text","text":"fund"}],"stop_reason":"end_turn",` +
				`"usage":{"input_tokens":10,"cache_creation_input_tokens":3,"cache_read_input_tokens":2,"output_tokens":7}}`),
			wantPath: "/v1/messages",
			wantKey:  "k",
			wantBody: `{"model":"claude-unknown","max_tokens":1024,"messages":[{"role":"user","content":"p"}],"temperature":0}`,
			wantText: "refund",
			wantUse:  kernel.Usage{PromptTokens: 15, CompletionTokens: 7, TotalTokens: 22},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newProvider(t, http.StatusOK, tc.body)
			opts := tc.opts
			if tc.base != "" {
				// Exercise NANO_VM_MCP_LLM_BASE_URL rather than Options.BaseURL.
				tc.env = append(tc.env, EnvBaseURL, p.URL+tc.base)
			} else {
				opts.BaseURL = p.URL
			}
			opts.Getenv = env(tc.env...)
			resp, got := completeOnce(t, p, tc.model, &opts, tc.req, tc.wantPath)
			for h, want := range map[string]string{"X-Api-Key": tc.wantKey, "Anthropic-Version": "2023-06-01", "Content-Type": "application/json", "Authorization": ""} {
				if v := got.Header.Get(h); v != want {
					t.Errorf("header %s = %q, want %q", h, v, want)
				}
			}
			checkExchange(t, got, resp, tc.wantBody, tc.wantText, tc.wantUse)
		})
	}
}

// Ensure that Anthropic failures surface verbatim with the right retry
// class, and that unexpected bodies give clear errors.
func TestAnthropicErrors(t *testing.T) {
	tests := []errCase{
		{
			name: "529 overloaded is retryable", status: 529, body: fixture(t, "anthropic_error_529.json"),
			wantStatus: 529, wantRetryable: true,
			wantMsg: []string{`anthropic: 529 Overloaded: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`},
		},
		{
			name: "429 is retryable", status: 429, body: []byte(`{"type":"error","error":{"type":"rate_limit_error","message":"Number of requests has exceeded your rate limit"}}`),
			wantStatus: 429, wantRetryable: true, wantMsg: []string{"anthropic: 429 Too Many Requests", "rate_limit_error"},
		},
		{
			name: "400 is not retryable", status: 400, body: fixture(t, "anthropic_error_400.json"),
			wantStatus: 400, wantMsg: []string{`anthropic: 400 Bad Request: {"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}`},
		},
		{
			name: "malformed JSON", status: 200, body: []byte(`{"type":"message","content":[`),
			wantIs: ErrBadResponse, wantMsg: []string{"anthropic: bad response: decode"},
		},
		{
			name: "an error object with status 200", status: 200, body: fixture(t, "anthropic_error_529.json"),
			wantIs: ErrBadResponse, wantMsg: []string{`type "error", want "message"`},
		},
		{
			name: "no text block still reports tokens", status: 200,
			body:   []byte(`{"type":"message","content":[],"stop_reason":"max_tokens","usage":{"input_tokens":25,"output_tokens":4}}`),
			wantIs: ErrBadResponse, wantMsg: []string{`no text content (stop_reason "max_tokens")`},
			wantUse: kernel.Usage{PromptTokens: 25, CompletionTokens: 4, TotalTokens: 29, CostUSD: (25*0.80 + 4*4.00) / 1e6},
		},
		{
			name: "oversized body", status: 200, maxBytes: 64,
			body:   fixture(t, "anthropic_message.json"),
			wantIs: ErrResponseTooLarge, wantMsg: []string{"anthropic: response body too large"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newProvider(t, tc.status, tc.body)
			completeFailing(t, p, "anthropic/claude-3-5-haiku-latest", tc)
		})
	}
}
