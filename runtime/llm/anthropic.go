package llm

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/nanovm/nano-vm-mcp/kernel"
)

// anthropicVersion is the Messages API version this client speaks.
const anthropicVersion = "2023-06-01"

// anthropicClient speaks Anthropic's Messages API (POST {base}/v1/messages).
type anthropicClient struct {
	ep          endpoint
	model       string
	maxTokens   int
	temperature float64
	price       Price
}

type anthropicMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type anthropicRequest struct {
	Model       string             `json:"model"`
	MaxTokens   int                `json:"max_tokens"`
	System      string             `json:"system,omitempty"`
	Messages    []anthropicMessage `json:"messages"`
	Temperature float64            `json:"temperature"`
}

type anthropicResponse struct {
	Type    string `json:"type"`
	Content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
	StopReason string `json:"stop_reason"`
	Usage      *struct {
		InputTokens              int `json:"input_tokens"`
		OutputTokens             int `json:"output_tokens"`
		CacheCreationInputTokens int `json:"cache_creation_input_tokens"`
		CacheReadInputTokens     int `json:"cache_read_input_tokens"`
	} `json:"usage"`
}

func newAnthropicClient(base, key, model string, o Options) *anthropicClient {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json")
	h.Set("User-Agent", userAgent)
	h.Set("anthropic-version", anthropicVersion)
	if key != "" {
		h.Set("x-api-key", key)
	}
	return &anthropicClient{
		ep:          endpoint{provider: "anthropic", url: base + "/v1/messages", header: h, client: o.HTTPClient, maxBytes: o.MaxResponseBytes},
		model:       model,
		maxTokens:   o.MaxTokens,
		temperature: o.Temperature,
		price:       priceFor("anthropic/"+model, o.Prices),
	}
}

// Complete sends one message: the system prompt in the top-level system
// field (the Messages API has no system role), the prompt as the one user
// turn.
func (c *anthropicClient) Complete(ctx context.Context, req kernel.LLMRequest) (kernel.LLMResponse, error) {
	raw, err := c.ep.post(ctx, anthropicRequest{
		Model:       c.model,
		MaxTokens:   c.maxTokens,
		System:      req.System,
		Messages:    []anthropicMessage{{Role: "user", Content: req.Prompt}},
		Temperature: c.temperature,
	})
	if err != nil {
		return kernel.LLMResponse{}, err
	}
	resp, err := decodeAnthropic(raw)
	resp.Usage.CostUSD = c.price.cost(resp.Usage)
	return resp, err
}

// decodeAnthropic joins the text blocks of a Messages response and reads
// its usage. Cache tokens count as prompt tokens (priced at the input rate,
// an upper bound for reads); this client never asks for caching.
func decodeAnthropic(raw []byte) (kernel.LLMResponse, error) {
	var r anthropicResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		return kernel.LLMResponse{}, badResponse("anthropic", raw, "decode: %v", err)
	}
	var out kernel.LLMResponse
	if r.Usage != nil {
		in := r.Usage.InputTokens + r.Usage.CacheCreationInputTokens + r.Usage.CacheReadInputTokens
		out.Usage = kernel.Usage{PromptTokens: in, CompletionTokens: r.Usage.OutputTokens, TotalTokens: in + r.Usage.OutputTokens}
	}
	if r.Type != "message" {
		return out, badResponse("anthropic", raw, "type %q, want \"message\"", r.Type)
	}
	var b strings.Builder
	found := false
	for _, blk := range r.Content {
		if blk.Type == "text" {
			b.WriteString(blk.Text)
			found = true
		}
	}
	if !found {
		return out, badResponse("anthropic", raw, "no text content (stop_reason %q)", r.StopReason)
	}
	out.Text = b.String()
	return out, nil
}
