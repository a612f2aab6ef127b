package llm

import (
	"errors"
	"testing"
)

// FuzzDecodeOpenAI ensures the Chat Completions decoder never panics, fails
// only with ErrBadResponse, and reports usage it was given.
func FuzzDecodeOpenAI(f *testing.F) {
	f.Add(fixture(f, "openai_chat_completion.json"))
	f.Add(fixture(f, "openai_refusal.json"))
	f.Add(fixture(f, "ollama_chat_completion.json"))
	for _, s := range []string{`{}`, `null`, `[]`, `{"choices":null}`, `{"choices":[{}]}`, `{"choices":[{"message":{"content":""}}]}`,
		`{"usage":{"prompt_tokens":-1}}`, `{"choices":[{"message":{"content":1}}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		resp, err := decodeOpenAI("openai", raw)
		if err != nil && !errors.Is(err, ErrBadResponse) {
			t.Fatalf("error %v is not ErrBadResponse", err)
		}
		if err != nil && resp.Text != "" {
			t.Fatalf("text %q returned with error %v", resp.Text, err)
		}
	})
}

// FuzzDecodeAnthropic ensures the Messages decoder never panics, fails only
// with ErrBadResponse, and keeps total = prompt + completion.
func FuzzDecodeAnthropic(f *testing.F) {
	f.Add(fixture(f, "anthropic_message.json"))
	f.Add(fixture(f, "anthropic_error_529.json"))
	for _, s := range []string{`{}`, `null`, `{"type":"message"}`, `{"type":"message","content":[{"type":"text"}]}`,
		`{"type":"message","content":[{"type":"tool_use","id":"x"}]}`, `{"type":"message","usage":{"input_tokens":"x"}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		resp, err := decodeAnthropic(raw)
		if err != nil && !errors.Is(err, ErrBadResponse) {
			t.Fatalf("error %v is not ErrBadResponse", err)
		}
		if u := resp.Usage; u.TotalTokens != u.PromptTokens+u.CompletionTokens {
			t.Fatalf("usage %+v", u)
		}
	})
}
