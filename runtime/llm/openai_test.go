package llm

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/kernel"
)

// normJSON re-encodes a JSON text with sorted keys for comparison.
func normJSON(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad JSON in test: %v\n%s", err, s)
	}
	return toJSON(t, v)
}

// Ensure that each OpenAI-compatible flavour sends the Chat Completions
// request the provider expects and turns the answer into text, usage and
// cost.
func TestOpenAICompatibleRequest(t *testing.T) {
	tests := []struct {
		name     string
		model    string
		opts     Options // BaseURL is set to the stand-in's URL + base
		base     string
		env      []string
		req      kernel.LLMRequest
		fixture  string
		wantPath string
		wantAuth string
		wantBody string
		wantText string
		wantUse  kernel.Usage
	}{
		{
			name:     "openai with system prompt",
			model:    "openai/gpt-4o-mini",
			base:     "/v1",
			env:      []string{"OPENAI_API_KEY", "sk-test"},
			req:      kernel.LLMRequest{System: "Answer yes or no.", Prompt: "Is this a refund?"},
			fixture:  "openai_chat_completion.json",
			wantPath: "/v1/chat/completions",
			wantAuth: "Bearer sk-test",
			wantBody: `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"Answer yes or no."},{"role":"user","content":"Is this a refund?"}],"temperature":0,"max_tokens":1024}`,
			wantText: "yes",
			wantUse:  kernel.Usage{PromptTokens: 19, CompletionTokens: 1, TotalTokens: 20, CostUSD: (19*0.15 + 1*0.60) / 1e6},
		},
		{
			name:     "openai without system prompt sends only the user turn",
			model:    "openai/gpt-4o-mini",
			opts:     Options{APIKey: "sk-opt", MaxTokens: 5, Temperature: 0.7},
			env:      []string{"OPENAI_API_KEY", "sk-env-loses"},
			req:      kernel.LLMRequest{Prompt: "hi"},
			fixture:  "openai_chat_completion.json",
			wantPath: "/chat/completions",
			wantAuth: "Bearer sk-opt",
			wantBody: `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"temperature":0.7,"max_tokens":5}`,
			wantText: "yes",
			wantUse:  kernel.Usage{PromptTokens: 19, CompletionTokens: 1, TotalTokens: 20, CostUSD: (19*0.15 + 1*0.60) / 1e6},
		},
		{
			name:     "price override wins over the built-in table",
			model:    "openai/gpt-4o-mini",
			opts:     Options{Prices: map[string]Price{"openai/gpt-4o-mini": {InputPerMTok: 1e6, OutputPerMTok: 2e6}}},
			env:      []string{"OPENAI_API_KEY", "k"},
			req:      kernel.LLMRequest{Prompt: "p"},
			fixture:  "openai_chat_completion.json",
			wantPath: "/chat/completions",
			wantAuth: "Bearer k",
			wantBody: `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"p"}],"temperature":0,"max_tokens":1024}`,
			wantText: "yes",
			wantUse:  kernel.Usage{PromptTokens: 19, CompletionTokens: 1, TotalTokens: 20, CostUSD: 21},
		},
		{
			name:     "a reasoning model gets max_completion_tokens and no temperature",
			model:    "openai/gpt-5-mini",
			opts:     Options{MaxTokens: 4096, Temperature: 0.5},
			env:      []string{"OPENAI_API_KEY", "k"},
			req:      kernel.LLMRequest{Prompt: "p"},
			fixture:  "openai_chat_completion.json",
			wantPath: "/chat/completions",
			wantAuth: "Bearer k",
			wantBody: `{"model":"gpt-5-mini","messages":[{"role":"user","content":"p"}],"max_completion_tokens":4096}`,
			wantText: "yes",
			wantUse:  kernel.Usage{PromptTokens: 19, CompletionTokens: 1, TotalTokens: 20, CostUSD: (19*0.25 + 1*2.00) / 1e6},
		},
		{
			name:     "a model named like a reasoning model on ollama keeps the classic parameters",
			model:    "ollama/o3-lookalike",
			req:      kernel.LLMRequest{Prompt: "p"},
			fixture:  "ollama_chat_completion.json",
			wantPath: "/chat/completions",
			wantBody: `{"model":"o3-lookalike","messages":[{"role":"user","content":"p"}],"temperature":0,"max_tokens":1024}`,
			wantText: "refund",
			wantUse:  kernel.Usage{PromptTokens: 31, CompletionTokens: 2, TotalTokens: 33},
		},
		{
			name:     "vLLM model id with slashes, keyless custom endpoint",
			model:    "openai/meta-llama/Llama-3.1-8B-Instruct",
			base:     "/v1/",
			req:      kernel.LLMRequest{Prompt: "p"},
			fixture:  "openai_chat_completion.json",
			wantPath: "/v1/chat/completions",
			wantBody: `{"model":"meta-llama/Llama-3.1-8B-Instruct","messages":[{"role":"user","content":"p"}],"temperature":0,"max_tokens":1024}`,
			wantText: "yes",
			wantUse:  kernel.Usage{PromptTokens: 19, CompletionTokens: 1, TotalTokens: 20},
		},
		{
			name:     "ollama sends no key even when one is in the environment, and costs nothing",
			model:    "ollama/llama3.2",
			base:     "/v1",
			env:      []string{"OPENAI_API_KEY", "sk-not-for-ollama"},
			req:      kernel.LLMRequest{System: "s", Prompt: "refund please"},
			fixture:  "ollama_chat_completion.json",
			wantPath: "/v1/chat/completions",
			wantBody: `{"model":"llama3.2","messages":[{"role":"system","content":"s"},{"role":"user","content":"refund please"}],"temperature":0,"max_tokens":1024}`,
			wantText: "refund",
			wantUse:  kernel.Usage{PromptTokens: 31, CompletionTokens: 2, TotalTokens: 33},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newProvider(t, http.StatusOK, fixture(t, tc.fixture))
			opts := tc.opts
			opts.BaseURL = p.URL + tc.base
			opts.Getenv = env(tc.env...)
			resp, got := completeOnce(t, p, tc.model, &opts, tc.req, tc.wantPath)
			if a := got.Header.Get("Authorization"); a != tc.wantAuth {
				t.Errorf("Authorization %q, want %q", a, tc.wantAuth)
			}
			if ct := got.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			checkExchange(t, got, resp, tc.wantBody, tc.wantText, tc.wantUse)
		})
	}
}

func usageEqual(a, b kernel.Usage) bool {
	return a.PromptTokens == b.PromptTokens && a.CompletionTokens == b.CompletionTokens &&
		a.TotalTokens == b.TotalTokens && math.Abs(a.CostUSD-b.CostUSD) <= 1e-12*math.Max(1, math.Abs(b.CostUSD))
}

// errCase is one provider failure and how it must surface.
type errCase struct {
	name          string
	status        int
	body          []byte
	maxBytes      int64
	wantIs        error // when set, errors.Is must hold
	wantStatus    int   // when set, an *APIError with this status
	wantRetryable bool
	wantMsg       []string // substrings of err.Error()
	wantUse       kernel.Usage
}

// checkErr asserts err matches tc.
// completeFailing makes one completion with a client for model against p
// and checks it fails as tc says.
func completeFailing(t *testing.T, p *provider, model string, tc errCase) {
	t.Helper()
	c, err := New(model, &Options{BaseURL: p.URL, APIKey: "k", MaxResponseBytes: tc.maxBytes, Getenv: env()})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Complete(context.Background(), kernel.LLMRequest{Prompt: "p"})
	checkErr(t, tc, resp, err)
}

func checkErr(t *testing.T, tc errCase, resp kernel.LLMResponse, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; response %+v", resp)
	}
	if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
		t.Errorf("error %v is not %v", err, tc.wantIs)
	}
	var ae *APIError
	if tc.wantStatus != 0 {
		if !errors.As(err, &ae) || ae.Status != tc.wantStatus {
			t.Errorf("error %v: want *APIError with status %d", err, tc.wantStatus)
		}
	}
	if got := IsRetryable(err); got != tc.wantRetryable {
		t.Errorf("IsRetryable(%v) = %v, want %v", err, got, tc.wantRetryable)
	}
	for _, s := range tc.wantMsg {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
	if !usageEqual(resp.Usage, tc.wantUse) {
		t.Errorf("usage %+v, want %+v", resp.Usage, tc.wantUse)
	}
}

// Ensure that only OpenAI's reasoning model families are recognised.
func TestIsOpenAIReasoningModel(t *testing.T) {
	tests := []struct {
		name  string
		model string
		want  bool
	}{
		{name: "o1", model: "o1", want: true},
		{name: "o3-mini", model: "o3-mini", want: true},
		{name: "o4-mini dated", model: "o4-mini-2025-04-16", want: true},
		{name: "gpt-5", model: "gpt-5", want: true},
		{name: "gpt-5-nano", model: "gpt-5-nano", want: true},
		{name: "gpt-4o", model: "gpt-4o", want: false},
		{name: "gpt-4.1-mini", model: "gpt-4.1-mini", want: false},
		{name: "prefix without dash", model: "o1x", want: false},
		{name: "gpt-50", model: "gpt-50", want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := isOpenAIReasoningModel(tc.model); got != tc.want {
				t.Errorf("isOpenAIReasoningModel(%q) = %v, want %v", tc.model, got, tc.want)
			}
		})
	}
}

// Ensure that OpenAI failures surface verbatim, are classed retryable or
// not as the SDKs do, and that bad or oversized bodies give clear errors.
func TestOpenAIErrors(t *testing.T) {
	bigErr := []byte(`{"error":{"message":"` + strings.Repeat("x", 10000) + `"}}`)
	tests := []errCase{
		{
			name: "429 is retryable and carries the body", status: 429, body: fixture(t, "openai_error_429.json"),
			wantStatus: 429, wantRetryable: true,
			wantMsg: []string{`openai: 429 Too Many Requests: {"error":{"message":"Rate limit reached for gpt-4o-mini`},
		},
		{
			name: "400 is not retryable", status: 400, body: fixture(t, "openai_error_400.json"),
			wantStatus: 400, wantMsg: []string{`openai: 400 Bad Request: {"error":{"message":"Invalid value for 'temperature'`},
		},
		{
			name: "401 is not retryable", status: 401, body: []byte(`{"error":{"message":"Incorrect API key provided"}}`),
			wantStatus: 401, wantMsg: []string{"openai: 401 Unauthorized", "Incorrect API key"},
		},
		{
			name: "500 is retryable", status: 500, body: []byte(`{"error":{"message":"The server had an error"}}`),
			wantStatus: 500, wantRetryable: true, wantMsg: []string{"openai: 500 Internal Server Error"},
		},
		{
			name: "503 from a proxy with an HTML body is retryable", status: 503, body: []byte("<html>upstream unavailable</html>\n"),
			wantStatus: 503, wantRetryable: true, wantMsg: []string{"openai: 503 Service Unavailable: <html>upstream unavailable</html>"},
		},
		{
			name: "a long error body is capped", status: 400, body: bigErr,
			wantStatus: 400, wantMsg: []string{"…(truncated)"},
		},
		{
			name: "malformed JSON", status: 200, body: []byte(`{"choices":[{"message":`),
			wantIs: ErrBadResponse, wantMsg: []string{"openai: bad response: decode", `body starts "{\"choices\"`},
		},
		{
			name: "an HTML page instead of JSON", status: 200, body: []byte("<!doctype html><p>login</p>"),
			wantIs: ErrBadResponse, wantMsg: []string{"invalid character '<'", "<!doctype html>"},
		},
		{
			name: "no choices", status: 200, body: []byte(`{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":0,"total_tokens":3}}`),
			wantIs: ErrBadResponse, wantMsg: []string{"no choices"},
			wantUse: kernel.Usage{PromptTokens: 3, TotalTokens: 3, CostUSD: 3 * 0.15 / 1e6},
		},
		{
			name: "a refusal is an error that still reports the tokens spent", status: 200, body: fixture(t, "openai_refusal.json"),
			wantIs: ErrBadResponse, wantMsg: []string{"model refused: I'm sorry"},
			wantUse: kernel.Usage{PromptTokens: 12, CompletionTokens: 9, TotalTokens: 21, CostUSD: (12*0.15 + 9*0.60) / 1e6},
		},
		{
			name: "oversized body under a small cap", status: 200, maxBytes: 1024,
			body:   []byte(`{"choices":[{"message":{"content":"` + strings.Repeat("a", 2000) + `"}}]}`),
			wantIs: ErrResponseTooLarge, wantMsg: []string{"openai: response body too large: more than 1024 bytes"},
		},
		{
			name: "oversized body under the default 4 MiB cap", status: 200,
			body:   []byte(`{"choices":[{"message":{"content":"` + strings.Repeat("a", 4<<20) + `"}}]}`),
			wantIs: ErrResponseTooLarge, wantMsg: []string{"more than 4194304 bytes"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newProvider(t, tc.status, tc.body)
			completeFailing(t, p, "openai/gpt-4o-mini", tc)
		})
	}
}
