package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// runCLI runs the command in-process and returns its exit code and output.
func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut strings.Builder
	code := run(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func example(name, file string) string { return filepath.Join("..", "..", "examples", name, file) }

// Ensure every example in examples/ runs as its README says.
func TestExamples(t *testing.T) {
	db := func(t *testing.T) []string {
		return []string{"--db", filepath.Join(t.TempDir(), "ex.db"), "--cache-dir", sharedCache}
	}
	t.Setenv("NANO_VM_MCP_VAULT_KEY", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")

	t.Run("payment_pipeline", func(t *testing.T) {
		args := append([]string{"run", example("payment_pipeline", "program.json"), "--input", example("payment_pipeline", "input.json"),
			"--policy", example("payment_pipeline", "policy.json")}, db(t)...)
		code, out, errOut := runCLI(t, "", args...)
		if code != 0 || !strings.Contains(out, "SUCCESS  4 step(s)") || !strings.Contains(out, "audit: 4 envelope(s), chain verified") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
	})
	t.Run("customer_refund", func(t *testing.T) {
		for _, tt := range []struct{ model, last string }{
			{"mock/map:broken=yes;default=no", "process_refund"},
			{"mock/no", "reject"},
		} {
			args := append([]string{"run", example("customer_refund", "program.json"), "--input", example("customer_refund", "input.json"),
				"--llm-model", tt.model}, db(t)...)
			code, out, errOut := runCLI(t, "", args...)
			if code != 0 || !strings.Contains(out, tt.last) {
				t.Fatalf("%s: exit %d\n%s\n%s", tt.model, code, out, errOut)
			}
		}
	})
	t.Run("momo_suspend", func(t *testing.T) {
		d := db(t)
		args := append([]string{"run", example("momo_suspend", "program.json"), "--input", example("momo_suspend", "input.json"), "--json"}, d...)
		code, out, errOut := runCLI(t, "", args...)
		var res struct {
			TraceID string `json:"trace_id"`
			Status  string `json:"status"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Status != "suspended" {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		args = append([]string{"resume", res.TraceID, "--source", "WEBHOOK", "--payload", `{"payment_status":"SUCCESS"}`}, d...)
		code, out, errOut = runCLI(t, "", args...)
		if code != 0 || !strings.Contains(out, "SUCCESS") || !strings.Contains(out, "notify_ok") {
			t.Fatalf("resume: exit %d\n%s\n%s", code, out, errOut)
		}
		code, _, errOut = runCLI(t, "", append([]string{"resume", res.TraceID, "--payload", `{}`}, d...)...)
		if code == 0 || !strings.Contains(errOut, "not_suspended") {
			t.Fatalf("second resume: exit %d %s", code, errOut)
		}
	})
}

// Ensure command-line mistakes exit 2 with a message saying what to do.
func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"run"}, {"tool", "paint"}, {"serve", "--transport", "carrier-pigeon"}, {"run", "x.json", "--input", "[1]"}} {
		code, _, errOut := runCLI(t, "", args...)
		if code != 2 || errOut == "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}
}

// Ensure secrets are read from stdin, listed without values and erased.
func TestSecretCommands(t *testing.T) {
	d := []string{"--db", filepath.Join(t.TempDir(), "s.db"), "--cache-dir", sharedCache}
	t.Setenv("NANO_VM_MCP_VAULT_KEY", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	code, out, errOut := runCLI(t, "hunter2\n", append([]string{"secret", "put", "db-pass"}, d...)...)
	if code != 0 || strings.TrimSpace(out) != "vault://secret/db-pass" {
		t.Fatalf("put: %d %q %q", code, out, errOut)
	}
	code, out, _ = runCLI(t, "", append([]string{"secret", "ls"}, d...)...)
	if code != 0 || strings.Contains(out, "hunter2") || !strings.Contains(out, "stored") {
		t.Fatalf("ls: %d %q", code, out)
	}
	code, out, _ = runCLI(t, "", append([]string{"secret", "erase", "db-pass"}, d...)...)
	if code != 0 || !strings.Contains(out, "erased db-pass") {
		t.Fatalf("erase: %d %q", code, out)
	}
	code, out, _ = runCLI(t, "", append([]string{"audit", "verify"}, d...)...)
	if code != 0 || !strings.Contains(out, "verified: 1 envelope") {
		t.Fatalf("verify: %d %q", code, out)
	}
}
