package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildSkeleton runs the skeleton's own build.sh, as a user would.
func buildSkeleton(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command("sh", filepath.Join(dir, "build.sh"))
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, out)
	}
}

// addAndRun registers the tool folder in a new database and runs a
// one-step program calling it, through the CLI; it returns the run's
// final output.
func addAndRun(t *testing.T, name, dir string) any {
	t.Helper()
	db := []string{"--db", filepath.Join(t.TempDir(), "new.db"), "--cache-dir", sharedCache}
	code, out, errOut := runCLI(t, "", append([]string{"tool", "add", dir}, db...)...)
	if code != 0 || !strings.Contains(out, "registered "+name+"@sha256:") {
		t.Fatalf("tool add %s: exit %d\n%s\n%s", dir, code, out, errOut)
	}
	prog := filepath.Join(t.TempDir(), "program.json")
	step := map[string]any{"name": "greet", "steps": []any{
		map[string]any{"id": "greet", "type": "tool", "tool": name, "args": map[string]any{"name": "$who"}, "is_terminal": true},
	}}
	raw, _ := json.Marshal(step)
	if err := os.WriteFile(prog, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI(t, "", append([]string{"run", prog, "--input", `{"who":"ada \"the\" first"}`, "--json"}, db...)...)
	var res struct {
		Status      string `json:"status"`
		FinalOutput any    `json:"final_output"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Status != "success" {
		t.Fatalf("run: exit %d\n%s\n%s", code, out, errOut)
	}
	return res.FinalOutput
}

// wantGreeting is what both skeletons answer to {"name": `ada "the" first`}.
var wantGreeting = map[string]any{"greeting": `hello, ada "the" first`}

// Ensure `tool new --lang go` writes a tool that builds with its build.sh,
// passes its own tests, registers with `tool add` as written and runs.
func TestToolNewGo(t *testing.T) {
	t.Setenv("NANO_VM_MCP_VAULT_KEY", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	parent := t.TempDir()
	code, out, errOut := runCLI(t, "", "tool", "new", "hello_go", "--lang", "go", "--dir", parent)
	if code != 0 || !strings.Contains(out, "nano-vm-mcp tool add") {
		t.Fatalf("tool new: exit %d\n%s\n%s", code, out, errOut)
	}
	dir := filepath.Join(parent, "hello_go")
	for _, f := range []string{"main.go", "export_wasip1.go", "main_test.go", "go.mod", "manifest.json", "build.sh"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("tool new wrote no %s: %v", f, err)
		}
	}
	gomod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
	if !strings.Contains(string(gomod), "\nreplace "+goSDKModule+" => ") {
		t.Fatalf("go.mod has no replace line for the SDK in this checkout:\n%s", gomod)
	}
	test := exec.Command("go", "test", "./...")
	test.Dir, test.Env = dir, append(os.Environ(), "GOWORK=off")
	if out, err := test.CombinedOutput(); err != nil {
		t.Fatalf("the skeleton's own go test: %v\n%s", err, out)
	}
	buildSkeleton(t, dir)
	got := addAndRun(t, "hello_go", dir)
	if b, _ := json.Marshal(got); string(b) != mustJSON(wantGreeting) {
		t.Fatalf("final output %s, want %s", b, mustJSON(wantGreeting))
	}
}

// Ensure `tool new --lang c` writes a tool that builds with its build.sh
// (when clang can target wasm32-wasi here), registers and runs.
func TestToolNewC(t *testing.T) {
	t.Setenv("NANO_VM_MCP_VAULT_KEY", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	parent := t.TempDir()
	code, out, errOut := runCLI(t, "", "tool", "new", "hello_c", "--lang", "c", "--dir", parent)
	if code != 0 {
		t.Fatalf("tool new: exit %d\n%s\n%s", code, out, errOut)
	}
	dir := filepath.Join(parent, "hello_c")
	for _, f := range []string{"hello_c.c", "nanovm.h", "nanovm-cc", "manifest.json", "build.sh"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("tool new wrote no %s: %v", f, err)
		}
	}
	targets, err := exec.Command("clang", "--print-targets").Output()
	if err != nil || !strings.Contains(string(targets), "wasm32") {
		t.Skip("clang with the wasm32 target not installed (apt-get install clang lld wasi-libc): skeleton written, not built")
	}
	if _, err := os.Stat("/usr/lib/wasm32-wasi/libc.a"); err != nil {
		t.Skip("wasi-libc not installed (apt-get install wasi-libc): skeleton written, not built")
	}
	buildSkeleton(t, dir)
	got := addAndRun(t, "hello_c", dir)
	if b, _ := json.Marshal(got); string(b) != mustJSON(wantGreeting) {
		t.Fatalf("final output %s, want %s", b, mustJSON(wantGreeting))
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// Ensure `tool new` refuses what it cannot write, saying why, and never
// writes over a user's files.
func TestToolNewRefuses(t *testing.T) {
	parent := t.TempDir()
	taken := filepath.Join(parent, "taken")
	if err := os.MkdirAll(taken, 0o755); err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(taken, "manifest.json")
	if err := os.WriteFile(mine, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	notSDK := t.TempDir()
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{name: "no name", args: []string{"--lang", "go"}, wantCode: 2, wantErr: "one NAME, got 0"},
		{name: "two names", args: []string{"a", "b", "--lang", "go"}, wantCode: 2, wantErr: "one NAME, got 2"},
		{name: "no lang", args: []string{"x"}, wantCode: 2, wantErr: `--lang must be go or c, not ""`},
		{name: "unknown lang", args: []string{"x", "--lang", "rust"}, wantCode: 2, wantErr: `not "rust"`},
		{name: "bad name", args: []string{"Hello", "--lang", "c"}, wantCode: 2, wantErr: `NAME "Hello" must match ^[a-z]`},
		{name: "path as name", args: []string{"../x", "--lang", "c"}, wantCode: 2, wantErr: `NAME "../x" must match`},
		{name: "sdk for c", args: []string{"x", "--lang", "c", "--sdk", notSDK}, wantCode: 2, wantErr: "--sdk is for --lang go"},
		{name: "not the sdk", args: []string{"x", "--lang", "go", "--sdk", notSDK}, wantCode: 2, wantErr: "not the Go SDK folder"},
		{name: "files exist", args: []string{"taken", "--lang", "c"}, wantCode: 1, wantErr: "manifest.json: already exists (nothing written"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"tool", "new", "--dir", parent}, tt.args...)
			code, _, errOut := runCLI(t, "", args...)
			if code != tt.wantCode || !strings.Contains(errOut, tt.wantErr) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, errOut, tt.wantCode, tt.wantErr)
			}
		})
	}
	if got, _ := os.ReadFile(mine); string(got) != "mine" {
		t.Fatalf("the user's manifest.json was overwritten: %q", got)
	}
	if entries, _ := os.ReadDir(taken); len(entries) != 1 {
		t.Fatalf("tool new wrote into a folder it refused: %d entries", len(entries))
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 1 {
		t.Fatalf("a refused tool new created folders: %v", entries)
	}
}
