package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"

	"go.opentelemetry.io/otel/propagation"
)

// traceContext propagates the W3C traceparent and tracestate headers.
var traceContext propagation.TraceContext

// endpoint is one provider URL with the headers every request carries.
type endpoint struct {
	provider string
	url      string
	header   http.Header
	client   *http.Client
	maxBytes int64
}

// post sends body as JSON and returns the 2xx response body. A non-2xx
// answer or a network failure is an *APIError; a ctx that ended is reported
// as such (errors.Is(err, context.DeadlineExceeded) holds) and is not
// retryable.
func (e *endpoint) post(ctx context.Context, body any) ([]byte, error) {
	payload, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("%s: encode request: %w", e.provider, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(payload))
	if err != nil {
		return nil, fmt.Errorf("%s: build request: %w", e.provider, err)
	}
	req.Header = e.header.Clone()
	// W3C trace context: the provider's side of the call joins the trace
	// of the llm step (its span is in ctx when tracing is on; without one
	// nothing is added).
	traceContext.Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := e.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			// The caller's deadline, not the provider, ended the call.
			return nil, fmt.Errorf("%s: %w", e.provider, err)
		}
		return nil, &APIError{Provider: e.provider, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody+1))
		return nil, &APIError{Provider: e.provider, Status: resp.StatusCode, Body: capBody(raw, maxErrorBody)}
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, e.maxBytes+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: read response: %w", e.provider, err)
		}
		return nil, &APIError{Provider: e.provider, Status: 0, Err: fmt.Errorf("read response: %w", err)}
	}
	if int64(len(raw)) > e.maxBytes {
		return nil, fmt.Errorf("%s: %w: more than %d bytes", e.provider, ErrResponseTooLarge, e.maxBytes)
	}
	return raw, nil
}

// capBody returns raw as a string of at most n bytes, cut on a rune
// boundary and marked when cut.
func capBody(raw []byte, n int) string {
	if len(raw) <= n {
		return string(bytes.TrimSpace(raw))
	}
	raw = raw[:n]
	// Drop a rune the cut split in two, looking back at most one rune.
	for i := len(raw); i > 0 && i > len(raw)-utf8.UTFMax; i-- {
		if utf8.RuneStart(raw[i-1]) {
			if !utf8.FullRune(raw[i-1:]) {
				raw = raw[:i-1]
			}
			break
		}
	}
	return string(raw) + "…(truncated)"
}

// badResponse wraps ErrBadResponse with what was wrong and the start of the
// body, so a proxy's HTML error page is recognisable in the message.
func badResponse(provider string, raw []byte, format string, args ...any) error {
	return fmt.Errorf("%s: %w: %s (body starts %q)", provider, ErrBadResponse, fmt.Sprintf(format, args...), capBody(raw, 120))
}
