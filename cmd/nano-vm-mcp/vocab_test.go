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

// Ensure audit verify names the run with --trace, still takes --execution
// (its deprecated alias) with a one-line note on stderr, and refuses the
// two when they differ.
func TestAuditVerifyTraceFlag(t *testing.T) {
	d := dbArgs(t)
	_, id := runPayment(t, d)
	const note = "--execution is deprecated"
	tests := []struct {
		name     string
		args     []string
		code     int
		want     string // in stdout when code is 0, else in stderr
		wantNote bool
	}{
		{name: "--trace", args: []string{"--trace", id[1]}, want: "audit chain verified: 4 envelope(s)"},
		{name: "--execution, the deprecated alias", args: []string{"--execution", id[1]}, want: "audit chain verified: 4 envelope(s)", wantNote: true},
		{name: "both, equal", args: []string{"--trace", id[1], "--execution", id[1]}, want: "audit chain verified: 4 envelope(s)", wantNote: true},
		{name: "both, different", args: []string{"--trace", id[1], "--execution", "other"}, code: 2, want: "(its deprecated alias) differ: give only --trace", wantNote: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, "", append(append([]string{"audit", "verify"}, tt.args...), d...)...)
			got := out
			if tt.code != 0 {
				got = errOut
			}
			if code != tt.code || !strings.Contains(got, tt.want) || strings.Contains(errOut, note) != tt.wantNote {
				t.Fatalf("exit %d, want %d and %q (note %v)\nstdout: %s\nstderr: %s", code, tt.code, tt.want, tt.wantNote, out, errOut)
			}
			if tt.wantNote && strings.Count(errOut, note) != 1 {
				t.Fatalf("the deprecation note is not said once:\n%s", errOut)
			}
		})
	}
}
