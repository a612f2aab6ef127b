package llm

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/kernel"
)

// Ensure that New resolves base URL and key in the documented order and
// rejects what cannot work before any call.
func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		model   string
		opts    *Options
		wantURL string // the endpoint a request would reach
		wantKey string // the credential header value
		wantErr error
		wantMsg string
	}{
		{name: "openai defaults", model: "openai/gpt-4o-mini", opts: &Options{Getenv: env("OPENAI_API_KEY", "sk-1")},
			wantURL: "https://api.openai.com/v1/chat/completions", wantKey: "Bearer sk-1"},
		{name: "environment base URL beats the default", model: "openai/gpt-4o-mini",
			opts:    &Options{Getenv: env("OPENAI_API_KEY", "sk-1", EnvBaseURL, "http://litellm:4000/")},
			wantURL: "http://litellm:4000/chat/completions", wantKey: "Bearer sk-1"},
		{name: "Options.BaseURL beats the environment", model: "openai/gpt-4o-mini",
			opts:    &Options{BaseURL: "http://vllm:8000/v1", Getenv: env(EnvBaseURL, "http://litellm:4000")},
			wantURL: "http://vllm:8000/v1/chat/completions"},
		{name: "ollama defaults need no key", model: "ollama/llama3.2", opts: &Options{Getenv: env()},
			wantURL: "http://localhost:11434/v1/chat/completions"},
		{name: "anthropic defaults", model: "anthropic/claude-3-5-haiku-latest", opts: &Options{Getenv: env("ANTHROPIC_API_KEY", " sk-ant\n")},
			wantURL: "https://api.anthropic.com/v1/messages", wantKey: "sk-ant"},
		{name: "openai's public endpoint without a key", model: "openai/gpt-4o-mini", opts: &Options{Getenv: env()},
			wantErr: ErrNoAPIKey, wantMsg: `new llm client "openai/gpt-4o-mini": no API key: set OPENAI_API_KEY (or Options.APIKey)`},
		{name: "anthropic's public endpoint without a key", model: "anthropic/claude-3-5-haiku-latest", opts: &Options{Getenv: env("OPENAI_API_KEY", "wrong one")},
			wantErr: ErrNoAPIKey, wantMsg: "set ANTHROPIC_API_KEY"},
		{name: "empty model", model: "", opts: &Options{Getenv: env()}, wantErr: ErrNoModel},
		{name: "unknown provider", model: "gemini/gemini-2.0-flash", opts: &Options{Getenv: env()}, wantErr: ErrInvalidModel, wantMsg: `unknown provider "gemini"`},
		{name: "bad mock spec", model: "mock/cylce:a,b", opts: nil, wantErr: ErrMockSpec, wantMsg: `unknown form "cylce"`},
		{name: "base URL without scheme", model: "ollama/llama3.2", opts: &Options{BaseURL: "localhost:11434", Getenv: env()},
			wantMsg: "want http:// or https:// with a host"},
		{name: "base URL with a query", model: "ollama/llama3.2", opts: &Options{BaseURL: "http://h/v1?x=1", Getenv: env()},
			wantMsg: "no query or fragment"},
		{name: "negative max tokens", model: "mock/yes", opts: &Options{MaxTokens: -1}, wantMsg: "max tokens -1 is negative"},
		{name: "negative response cap", model: "mock/yes", opts: &Options{MaxResponseBytes: -1}, wantMsg: "max response bytes -1 is negative"},
		{name: "temperature too high", model: "mock/yes", opts: &Options{Temperature: 2.5}, wantMsg: "temperature 2.5 is outside [0, 2]"},
		{name: "temperature NaN", model: "mock/yes", opts: &Options{Temperature: math.NaN()}, wantMsg: "temperature NaN is outside"},
		{name: "mock needs nothing", model: "mock/yes", opts: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.model, tc.opts)
			if tc.wantErr != nil || tc.wantMsg != "" {
				if err == nil {
					t.Fatalf("New succeeded, want error %v %q", tc.wantErr, tc.wantMsg)
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Errorf("error %v is not %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantMsg) {
					t.Errorf("error %q does not contain %q", err, tc.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ep endpoint
			switch c := c.(type) {
			case *openAIClient:
				ep = c.ep
				if got := ep.header.Get("Authorization"); got != tc.wantKey {
					t.Errorf("Authorization %q, want %q", got, tc.wantKey)
				}
			case *anthropicClient:
				ep = c.ep
				if got := ep.header.Get("x-api-key"); got != tc.wantKey {
					t.Errorf("x-api-key %q, want %q", got, tc.wantKey)
				}
			case *mockClient:
				return
			}
			if ep.url != tc.wantURL {
				t.Errorf("endpoint %q, want %q", ep.url, tc.wantURL)
			}
		})
	}
}

// expiringCtx is a context whose deadline passes when the test says so, as
// a kernel clock's step timeout does: no real time is involved.
type expiringCtx struct {
	context.Context
	done chan struct{}
}

func newExpiringCtx() *expiringCtx {
	return &expiringCtx{Context: context.Background(), done: make(chan struct{})}
}

func (c *expiringCtx) expire()               { close(c.done) }
func (c *expiringCtx) Done() <-chan struct{} { return c.done }
func (c *expiringCtx) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// Ensure that a step timeout set through ctx (by the kernel's clock) aborts
// the HTTP request on both sides and is not reported as retryable.
func TestContextTimeoutCancelsRequest(t *testing.T) {
	for _, model := range []string{"openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest", "ollama/llama3.2"} {
		t.Run(model, func(t *testing.T) {
			arrived, serverSawCancel := make(chan struct{}), make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// The server watches for a client hang-up only once the
				// body has been read.
				io.Copy(io.Discard, r.Body)
				close(arrived)
				<-r.Context().Done()
				close(serverSawCancel)
			}))
			defer srv.Close()
			c, err := New(model, &Options{BaseURL: srv.URL, APIKey: "k", Getenv: env()})
			if err != nil {
				t.Fatal(err)
			}
			ctx := newExpiringCtx()
			go func() {
				<-arrived
				ctx.expire()
			}()
			_, err = c.Complete(ctx, kernel.LLMRequest{Prompt: "p"})
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("error %v, want context.DeadlineExceeded", err)
			}
			if IsRetryable(err) {
				t.Errorf("IsRetryable(%v) = true for an expired ctx", err)
			}
			<-serverSawCancel // the provider saw the request go away
		})
	}
}

// Ensure that a network failure (nothing listening) is a retryable APIError
// with status 0 that keeps the transport error.
func TestNetworkErrorIsRetryable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	for _, model := range []string{"openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest"} {
		t.Run(model, func(t *testing.T) {
			c, err := New(model, &Options{BaseURL: url, APIKey: "k", Getenv: env()})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Complete(context.Background(), kernel.LLMRequest{Prompt: "p"})
			var ae *APIError
			if !errors.As(err, &ae) || ae.Status != 0 || ae.Err == nil {
				t.Fatalf("error %v, want *APIError with status 0 and a transport error", err)
			}
			if !IsRetryable(err) {
				t.Errorf("IsRetryable(%v) = false for a refused connection", err)
			}
			if !strings.HasPrefix(err.Error(), strings.SplitN(model, "/", 2)[0]+": request: ") {
				t.Errorf("error %q does not name the provider and operation", err)
			}
		})
	}
}

// Ensure that APIError.Retryable classes statuses as the provider SDKs do.
func TestAPIErrorRetryable(t *testing.T) {
	tests := []struct {
		name string
		err  *APIError
		want bool
	}{
		{name: "408", err: &APIError{Status: 408}, want: true},
		{name: "409", err: &APIError{Status: 409}, want: true},
		{name: "429", err: &APIError{Status: 429}, want: true},
		{name: "500", err: &APIError{Status: 500}, want: true},
		{name: "529", err: &APIError{Status: 529}, want: true},
		{name: "400", err: &APIError{Status: 400}, want: false},
		{name: "401", err: &APIError{Status: 401}, want: false},
		{name: "403", err: &APIError{Status: 403}, want: false},
		{name: "404", err: &APIError{Status: 404}, want: false},
		{name: "network", err: &APIError{Err: errors.New("connection reset")}, want: true},
		{name: "cancelled", err: &APIError{Err: context.Canceled}, want: false},
		{name: "no status no error", err: &APIError{}, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Retryable(); got != tc.want {
				t.Errorf("Retryable() = %v, want %v", got, tc.want)
			}
			if got := IsRetryable(wrap(tc.err)); got != tc.want {
				t.Errorf("IsRetryable(wrapped) = %v, want %v", got, tc.want)
			}
		})
	}
}

func wrap(err error) error { return errors.Join(errors.New("step classify"), err) }

// Ensure that capBody never splits a UTF-8 rune and marks what it cut.
func TestCapBody(t *testing.T) {
	tests := []struct {
		name string
		in   string
		n    int
		want string
	}{
		{name: "short", in: " {} \n", n: 10, want: "{}"},
		{name: "ascii cut", in: "abcdef", n: 3, want: "abc…(truncated)"},
		{name: "cut inside a rune", in: "ab€cd", n: 4, want: "ab…(truncated)"},
		{name: "cut after a rune", in: "ab€cd", n: 5, want: "ab€…(truncated)"},
		{name: "invalid bytes before the cut are kept", in: "\xffabc", n: 2, want: "\xffa…(truncated)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := capBody([]byte(tc.in), tc.n); got != tc.want {
				t.Errorf("capBody(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
			}
		})
	}
}

// Ensure that the built-in price table is positive where set, that unknown
// models cost nothing, and that DefaultPrices hands out a copy.
func TestPrices(t *testing.T) {
	for m, p := range DefaultPrices() {
		if _, err := ParseModel(m); err != nil {
			t.Errorf("price key %q: %v", m, err)
		}
		if p.InputPerMTok <= 0 || p.OutputPerMTok <= 0 {
			t.Errorf("price of %q is %+v", m, p)
		}
	}
	d := DefaultPrices()
	delete(d, "openai/gpt-4o-mini")
	if _, ok := DefaultPrices()["openai/gpt-4o-mini"]; !ok {
		t.Error("DefaultPrices returned a shared map")
	}
	tests := []struct {
		name      string
		model     string
		overrides map[string]Price
		want      float64
	}{
		{name: "known", model: "openai/gpt-4o-mini", want: (1e6*0.15 + 2e6*0.60) / 1e6},
		{name: "unknown", model: "openai/my-finetune", want: 0},
		{name: "ollama", model: "ollama/llama3.2", want: 0},
		{name: "override adds a model", model: "ollama/llama3.2", overrides: map[string]Price{"ollama/llama3.2": {1, 1}}, want: 3},
		{name: "override zeroes a model", model: "openai/gpt-4o-mini", overrides: map[string]Price{"openai/gpt-4o-mini": {}}, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := priceFor(tc.model, tc.overrides).cost(kernel.Usage{PromptTokens: 1e6, CompletionTokens: 2e6})
			if math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("cost %v, want %v", got, tc.want)
			}
		})
	}
}

// BenchmarkHTTPClients measures one completion through each hand-written
// client against a loopback stand-in: the client's own cost (encode, one
// keep-alive request, capped read, decode) without a model's latency.
func BenchmarkHTTPClients(b *testing.B) {
	for _, tc := range []struct{ model, fixture string }{
		{"openai/gpt-4o-mini", "openai_chat_completion.json"},
		{"anthropic/claude-3-5-haiku-latest", "anthropic_message.json"},
	} {
		b.Run(strings.SplitN(tc.model, "/", 2)[0], func(b *testing.B) {
			body := fixture(b, tc.fixture)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/json")
				w.Write(body)
			}))
			defer srv.Close()
			c, err := New(tc.model, &Options{BaseURL: srv.URL, APIKey: "k", Getenv: env()})
			if err != nil {
				b.Fatal(err)
			}
			req := kernel.LLMRequest{System: "Reply with one word.", Prompt: "Is this a valid refund request? Reply 'yes' or 'no'.\nRequest: broken toaster"}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Complete(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
