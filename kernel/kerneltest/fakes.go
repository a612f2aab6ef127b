package kerneltest

import (
	"context"
	"fmt"
	"sync"

	"github.com/nanovm/nano-vm-mcp/kernel"
)

// ToolFunc implements one fake tool.
type ToolFunc func(ctx context.Context, call kernel.ToolCall) (any, error)

// Tools is a kernel.ToolExecutor over in-process functions. It records every
// call. Use it where the unit under test is the kernel, not the sandbox.
type Tools struct {
	Funcs map[string]ToolFunc

	mu    sync.Mutex
	calls []kernel.ToolCall
}

// Execute runs the named function, or fails with "tool not registered".
func (t *Tools) Execute(ctx context.Context, call kernel.ToolCall) (kernel.ToolResult, error) {
	t.mu.Lock()
	t.calls = append(t.calls, call)
	f, ok := t.Funcs[call.Tool]
	t.mu.Unlock()
	if !ok {
		return kernel.ToolResult{}, fmt.Errorf("tool %q not registered", call.Tool)
	}
	out, err := f(ctx, call)
	return kernel.ToolResult{Output: out}, err
}

// Calls returns the calls made so far, in order of arrival.
func (t *Tools) Calls() []kernel.ToolCall {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]kernel.ToolCall(nil), t.calls...)
}

// Const returns a tool that always answers v.
func Const(v any) ToolFunc {
	return func(context.Context, kernel.ToolCall) (any, error) { return v, nil }
}

// Echo returns a tool that answers its args.
func Echo() ToolFunc {
	return func(_ context.Context, c kernel.ToolCall) (any, error) { return c.Args, nil }
}

// FailTimes returns a tool that fails its first n calls, then answers v.
func FailTimes(n int, v any) ToolFunc {
	var mu sync.Mutex
	calls := 0
	return func(context.Context, kernel.ToolCall) (any, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls <= n {
			return nil, fmt.Errorf("transient failure %d", calls)
		}
		return v, nil
	}
}

// LLM is a kernel.LLMClient that answers from a script: Answers are
// returned in turn (the last repeats); each answer costs Usage. It records
// every request.
type LLM struct {
	Answers []string
	Usage   kernel.Usage
	// Err, when set, is returned instead of an answer.
	Err error

	mu       sync.Mutex
	n        int
	requests []kernel.LLMRequest
}

// Complete answers the next scripted answer.
func (l *LLM) Complete(ctx context.Context, req kernel.LLMRequest) (kernel.LLMResponse, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.requests = append(l.requests, req)
	if l.Err != nil {
		return kernel.LLMResponse{}, l.Err
	}
	if len(l.Answers) == 0 {
		return kernel.LLMResponse{}, fmt.Errorf("no scripted answer")
	}
	i := l.n
	if i >= len(l.Answers) {
		i = len(l.Answers) - 1
	}
	l.n++
	return kernel.LLMResponse{Text: l.Answers[i], Usage: l.Usage}, nil
}

// Requests returns the requests made so far.
func (l *LLM) Requests() []kernel.LLMRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]kernel.LLMRequest(nil), l.requests...)
}
