package llm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// ErrNoModel is returned when a program has llm steps but no model is
// configured. Its message names the variable to set.
var ErrNoModel = errors.New("llm steps need a model: set " + EnvModel +
	" (e.g. openai/gpt-4o-mini, anthropic/claude-3-5-haiku-latest, ollama/llama3.2, mock/yes)")

// ErrInvalidModel is returned when a model string is not provider/model
// with a known provider and a non-empty model.
var ErrInvalidModel = errors.New("invalid model")

// ErrMockSpec is returned when a mock/<spec> model string cannot be parsed.
var ErrMockSpec = errors.New("invalid mock spec")

// ErrNoAPIKey is returned by [New] when a provider's public endpoint is
// used without an API key.
var ErrNoAPIKey = errors.New("no API key")

// ErrResponseTooLarge is returned when a provider's response body exceeds
// Options.MaxResponseBytes.
var ErrResponseTooLarge = errors.New("response body too large")

// ErrBadResponse is returned when a provider answers 2xx with a body that is
// not the expected JSON shape (malformed JSON, no choices, no text).
var ErrBadResponse = errors.New("bad response")

// maxErrorBody caps how much of an error response is kept in an APIError:
// enough for any provider's JSON error object, small enough for a trace.
const maxErrorBody = 4 << 10

// APIError is a provider's non-2xx answer, or a network failure before any
// answer (Status 0, Err set).
type APIError struct {
	// Provider is the provider's name, e.g. "openai".
	Provider string
	// Status is the HTTP status code; 0 means no response arrived.
	Status int
	// Body is the response body, verbatim, capped at 4 KiB (a cut body
	// ends in "…(truncated)").
	Body string
	// Err is the transport error when Status is 0; nil otherwise.
	Err error
}

// Error formats the error as "openai: 429 Too Many Requests: {body}".
func (e *APIError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("%s: request: %v", e.Provider, e.Err)
	}
	s := fmt.Sprintf("%s: %d", e.Provider, e.Status)
	if text := statusText(e.Status); text != "" {
		s += " " + text
	}
	if e.Body != "" {
		s += ": " + e.Body
	}
	return s
}

// Unwrap returns the transport error, if any.
func (e *APIError) Unwrap() error { return e.Err }

// Retryable reports whether the same request may succeed later: a network
// failure, 408 Request Timeout, 409 Conflict, 429 Too Many Requests, or any
// 5xx (including Anthropic's 529 Overloaded). These are the statuses the
// providers' own SDKs retry.
func (e *APIError) Retryable() bool {
	switch {
	case e.Status == 0:
		return e.Err != nil && !errors.Is(e.Err, context.Canceled) && !errors.Is(e.Err, context.DeadlineExceeded)
	case e.Status == http.StatusRequestTimeout, e.Status == http.StatusConflict, e.Status == http.StatusTooManyRequests:
		return true
	default:
		return e.Status >= 500
	}
}

// IsRetryable reports whether err wraps an [*APIError] that is
// [APIError.Retryable]. A cancelled or expired ctx is not retryable: the
// caller gave up.
func IsRetryable(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Retryable()
}

// statusText is http.StatusText plus the providers' own codes.
func statusText(code int) string {
	if code == 529 {
		return "Overloaded" // Anthropic's API is temporarily overloaded
	}
	return http.StatusText(code)
}
