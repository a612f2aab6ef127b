package llm

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/nanovm/nano-vm-mcp/kernel"
)

// openAIClient speaks the Chat Completions wire format
// (POST {base}/chat/completions) shared by OpenAI, Ollama, vLLM, LiteLLM's
// proxy and llama.cpp's server.
type openAIClient struct {
	ep          endpoint
	model       string
	maxTokens   int
	temperature float64
	price       Price
	reasoning   bool // see isOpenAIReasoningModel
}

// isOpenAIReasoningModel reports whether model is one of OpenAI's reasoning
// models (o1, o3, o4-mini, gpt-5 families), which reject max_tokens in
// favour of max_completion_tokens and accept only the default temperature.
// Only the openai provider asks: an Ollama or vLLM model of any name keeps
// the classic parameters those servers understand.
func isOpenAIReasoningModel(model string) bool {
	for _, p := range [...]string{"o1", "o3", "o4", "gpt-5"} {
		if model == p || strings.HasPrefix(model, p+"-") {
			return true
		}
	}
	return false
}

type openAIMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type openAIRequest struct {
	Model       string          `json:"model"`
	Messages    []openAIMessage `json:"messages"`
	Temperature *float64        `json:"temperature,omitempty"`
	MaxTokens   int             `json:"max_tokens,omitempty"`
	// MaxCompletionTokens replaces MaxTokens for OpenAI's reasoning models,
	// which reject max_tokens.
	MaxCompletionTokens int `json:"max_completion_tokens,omitempty"`
}

type openAIResponse struct {
	Choices []struct {
		Message struct {
			// Content is null when the model refused or called a tool.
			Content *string `json:"content"`
			Refusal *string `json:"refusal"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

func newOpenAIClient(provider, base, key, model string, o Options) *openAIClient {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json")
	h.Set("User-Agent", userAgent)
	if key != "" {
		h.Set("Authorization", "Bearer "+key)
	}
	return &openAIClient{
		ep:          endpoint{provider: provider, url: base + "/chat/completions", header: h, client: o.HTTPClient, maxBytes: o.MaxResponseBytes},
		model:       model,
		maxTokens:   o.MaxTokens,
		temperature: o.Temperature,
		price:       priceFor(provider+"/"+model, o.Prices),
		reasoning:   provider == ProviderOpenAI.String() && isOpenAIReasoningModel(model),
	}
}

// Complete sends one chat completion: the system prompt (when set) as a
// system message, then the prompt as a user message.
func (c *openAIClient) Complete(ctx context.Context, req kernel.LLMRequest) (kernel.LLMResponse, error) {
	msgs := make([]openAIMessage, 0, 2)
	if req.System != "" {
		msgs = append(msgs, openAIMessage{Role: "system", Content: req.System})
	}
	msgs = append(msgs, openAIMessage{Role: "user", Content: req.Prompt})
	body := openAIRequest{Model: c.model, Messages: msgs}
	if c.reasoning {
		body.MaxCompletionTokens = c.maxTokens
	} else {
		body.MaxTokens, body.Temperature = c.maxTokens, &c.temperature
	}
	raw, err := c.ep.post(ctx, body)
	if err != nil {
		return kernel.LLMResponse{}, err
	}
	// Usage travels with a decode error too: the tokens were spent and the
	// kernel counts them against the run's budget either way.
	resp, err := decodeOpenAI(c.ep.provider, raw)
	resp.Usage.CostUSD = c.price.cost(resp.Usage)
	return resp, err
}

// decodeOpenAI extracts the first choice's text and the usage from a Chat
// Completions response body.
func decodeOpenAI(provider string, raw []byte) (kernel.LLMResponse, error) {
	var r openAIResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		return kernel.LLMResponse{}, badResponse(provider, raw, "decode: %v", err)
	}
	var out kernel.LLMResponse
	if r.Usage != nil {
		out.Usage = kernel.Usage{PromptTokens: r.Usage.PromptTokens, CompletionTokens: r.Usage.CompletionTokens, TotalTokens: r.Usage.TotalTokens}
		if out.Usage.TotalTokens == 0 {
			out.Usage.TotalTokens = out.Usage.PromptTokens + out.Usage.CompletionTokens
		}
	}
	if len(r.Choices) == 0 {
		return out, badResponse(provider, raw, "no choices")
	}
	msg := r.Choices[0].Message
	switch {
	case msg.Content != nil:
		out.Text = *msg.Content
	case msg.Refusal != nil:
		return out, badResponse(provider, raw, "model refused: %s", *msg.Refusal)
	default:
		return out, badResponse(provider, raw, "no message content (finish_reason %q)", r.Choices[0].FinishReason)
	}
	return out, nil
}
