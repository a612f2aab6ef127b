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

// Ensure every host status is a named error that errors.Is matches and
// whose message says what it means, not a bare number, and that an
// unknown status still names the operation.
func TestStatusErrors(t *testing.T) {
	tests := []struct {
		status uint32
		want   error
		text   string
	}{
		{StatusDenied, ErrDenied, "nanovm secret_get: denied: this tool was not granted"},
		{StatusTooSmall, ErrTooSmall, "nanovm secret_get: buffer too small"},
		{StatusNotFound, ErrNotFound, "nanovm secret_get: not found: no such secret"},
		{StatusInvalid, ErrInvalid, "nanovm secret_get: invalid request"},
		{StatusLimit, ErrLimit, "nanovm secret_get: limit reached"},
		{StatusIO, ErrIO, "nanovm secret_get: request failed"},
		{99, nil, "nanovm secret_get: unknown status 99"},
	}
	all := []error{ErrDenied, ErrTooSmall, ErrNotFound, ErrInvalid, ErrLimit, ErrIO}
	for _, tt := range tests {
		var err error = &StatusError{Op: "secret_get", Status: tt.status}
		if !strings.HasPrefix(err.Error(), tt.text) {
			t.Errorf("status %d: %q, want it to start %q", tt.status, err, tt.text)
		}
		for _, e := range all {
			if got := errors.Is(err, e); got != (e == tt.want) {
				t.Errorf("status %d: errors.Is(err, %v) = %v", tt.status, e, got)
			}
		}
		var se *StatusError
		if !errors.As(err, &se) || se.Status != tt.status {
			t.Errorf("status %d: errors.As = %+v", tt.status, se)
		}
	}
}
