package main

import (
	"strings"
	"testing"
)

// Ensure trace ls takes only the kernel's statuses and names them when it
// refuses one.
func TestTraceLsStatus(t *testing.T) {
	d := dbArgs(t)
	tests := []struct {
		name   string
		status string
		code   int
		want   string
	}{
		{name: "a kernel status", status: "suspended", code: 0, want: "TRACE"},
		{name: "not a status", status: "cancelled", code: 2, want: `--status "cancelled" is not one of running, success, failed, budget_exceeded, stalled, suspended`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, "", append([]string{"trace", "ls", "--status", tt.status}, d...)...)
			got := out
			if tt.code != 0 {
				got = errOut
			}
			if code != tt.code || !strings.Contains(got, tt.want) {
				t.Fatalf("exit %d, want %d and %q\nstdout: %s\nstderr: %s", code, tt.code, tt.want, out, errOut)
			}
		})
	}
}
