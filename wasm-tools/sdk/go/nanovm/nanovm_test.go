package nanovm

import (
	"errors"
	"strings"
	"testing"
)

// Ensure Run maps arguments, results and errors to the ABI's JSON.
func TestRun(t *testing.T) {
	tests := []struct {
		name, in, want string
		fn             func(map[string]any) (any, error)
	}{
		{name: "echo", in: `{"a":1}`, want: `{"a":1}`, fn: func(a map[string]any) (any, error) { return a, nil }},
		{name: "empty stdin", in: ``, want: `{}`, fn: func(a map[string]any) (any, error) { return a, nil }},
		{name: "error", in: `{}`, want: `{"error":"boom"}`, fn: func(map[string]any) (any, error) { return nil, errors.New("boom") }},
		{name: "bad json", in: `{`, want: `{"error":"decode arguments: unexpected EOF"}`, fn: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			if code := run(strings.NewReader(tt.in), &out, tt.fn); code != 0 {
				t.Fatalf("exit %d", code)
			}
			if got := strings.TrimSpace(out.String()); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
	if _, err := Secret("vault://secret/x"); !errors.Is(err, ErrNoHost) {
		t.Fatalf("Secret off-host = %v", err)
	}
	if _, err := State(); !errors.Is(err, ErrNoHost) {
		t.Fatalf("State off-host = %v", err)
	}
	if _, err := StateJSON(); !errors.Is(err, ErrNoHost) {
		t.Fatalf("StateJSON off-host = %v", err)
	}
}
