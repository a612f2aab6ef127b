package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Ensure `run` prints a warning for a $reference that matches nothing and
// still runs the program, and `run --strict` refuses it before anything
// runs, naming the reference.
func TestRunStrict(t *testing.T) {
	t.Setenv("NANO_VM_MCP_VAULT_KEY", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	dir := t.TempDir()
	prog := filepath.Join(dir, "typo.json")
	if err := os.WriteFile(prog, []byte(`{"name":"typo","steps":[{"id":"validate","type":"tool","tool":"validate_amount","args":{"amount":"$amout"}}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	common := []string{"--input", `{"amount":5}`, "--db", filepath.Join(dir, "nano.db"), "--cache-dir", sharedCache}
	code, out, errOut := runCLI(t, "", append([]string{"run", prog}, common...)...)
	if !strings.Contains(errOut, `warning: step "validate": args.amount: $amout matches no input key`) || !strings.Contains(out, "typo  ") {
		t.Fatalf("run: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "", append([]string{"run", prog, "--strict"}, common...)...)
	if code == 0 || !strings.Contains(errOut, "strict") || !strings.Contains(errOut, "$amout") || strings.Contains(out, "typo  ") {
		t.Fatalf("run --strict: exit %d\n%s\n%s", code, out, errOut)
	}
}
