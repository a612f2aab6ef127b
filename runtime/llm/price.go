package llm

import "github.com/nanovm/nano-vm-mcp/kernel"

// Price is what a model costs, in US dollars per million tokens.
type Price struct {
	// InputPerMTok is the price of a million prompt (input) tokens.
	InputPerMTok float64
	// OutputPerMTok is the price of a million completion (output) tokens.
	OutputPerMTok float64
}

// cost returns the dollar cost of u at p.
func (p Price) cost(u kernel.Usage) float64 {
	return (float64(u.PromptTokens)*p.InputPerMTok + float64(u.CompletionTokens)*p.OutputPerMTok) / 1e6
}

// PricesDate is the month the built-in price table was last checked against
// the providers' published list prices. Edit the table and this date
// together; providers change prices, so cost is an estimate, not a bill.
const PricesDate = "2025-11"

// DefaultPrices returns a fresh copy of the built-in price table, keyed by
// the full model string ("openai/gpt-4o-mini"). It is an editable list of a
// few well-known models' standard (non-batch, non-cached) list prices as of
// [PricesDate]; a model not in it costs 0, as do ollama and mock models.
// Callers may modify the returned map.
func DefaultPrices() map[string]Price {
	return map[string]Price{
		// OpenAI, https://openai.com/api/pricing
		"openai/gpt-4o":       {InputPerMTok: 2.50, OutputPerMTok: 10.00},
		"openai/gpt-4o-mini":  {InputPerMTok: 0.15, OutputPerMTok: 0.60},
		"openai/gpt-4.1":      {InputPerMTok: 2.00, OutputPerMTok: 8.00},
		"openai/gpt-4.1-mini": {InputPerMTok: 0.40, OutputPerMTok: 1.60},
		"openai/gpt-4.1-nano": {InputPerMTok: 0.10, OutputPerMTok: 0.40},
		"openai/gpt-5":        {InputPerMTok: 1.25, OutputPerMTok: 10.00},
		"openai/gpt-5-mini":   {InputPerMTok: 0.25, OutputPerMTok: 2.00},
		"openai/gpt-5-nano":   {InputPerMTok: 0.05, OutputPerMTok: 0.40},
		"openai/o3-mini":      {InputPerMTok: 1.10, OutputPerMTok: 4.40},
		"openai/o4-mini":      {InputPerMTok: 1.10, OutputPerMTok: 4.40},

		// Anthropic, https://www.anthropic.com/pricing#api
		"anthropic/claude-3-5-haiku-latest":   {InputPerMTok: 0.80, OutputPerMTok: 4.00},
		"anthropic/claude-3-5-haiku-20241022": {InputPerMTok: 0.80, OutputPerMTok: 4.00},
		"anthropic/claude-3-haiku-20240307":   {InputPerMTok: 0.25, OutputPerMTok: 1.25},
		"anthropic/claude-3-7-sonnet-latest":  {InputPerMTok: 3.00, OutputPerMTok: 15.00},
		"anthropic/claude-sonnet-4-0":         {InputPerMTok: 3.00, OutputPerMTok: 15.00},
		"anthropic/claude-sonnet-4-20250514":  {InputPerMTok: 3.00, OutputPerMTok: 15.00},
		"anthropic/claude-sonnet-4-5":         {InputPerMTok: 3.00, OutputPerMTok: 15.00},
		"anthropic/claude-haiku-4-5":          {InputPerMTok: 1.00, OutputPerMTok: 5.00},
		"anthropic/claude-opus-4-1":           {InputPerMTok: 15.00, OutputPerMTok: 75.00},
		"anthropic/claude-opus-4-5":           {InputPerMTok: 5.00, OutputPerMTok: 25.00},
	}
}

// priceFor looks model up in the built-in table overlaid with overrides.
func priceFor(model string, overrides map[string]Price) Price {
	if p, ok := overrides[model]; ok {
		return p
	}
	return DefaultPrices()[model]
}
