package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	csdk "github.com/nanovm/nano-vm-mcp/wasm-tools/sdk/c"
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

// addAndTryRun registers the tool folder in a new database and runs a
// one-step program calling it, through the CLI, with --json.
func addAndTryRun(t *testing.T, name, dir string) (int, string, string) {
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
	if err := os.WriteFile(prog, []byte(mustJSON(step)), 0o644); err != nil {
		t.Fatal(err)
	}
	return runCLI(t, "", append([]string{"run", prog, "--input", `{"who":"ada \"the\" first"}`, "--json"}, db...)...)
}

// addAndRun is addAndTryRun for a run that must succeed; it returns the
// run's final output.
func addAndRun(t *testing.T, name, dir string) any {
	t.Helper()
	code, out, errOut := addAndTryRun(t, name, dir)
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
// passes its own tests, registers with `tool add` as written and runs;
// and that the host runs Go commands and reactors as docs/tool-abi.md says.
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

	// docs/tool-abi.md, "Entry points": the reactor also runs fresh; a
	// command runs fresh; pool refuses a command at registration; and a
	// command that also exports nanovm_call (this source without
	// -buildmode) registers for pool but traps there, its Go runtime never
	// started.
	reactor, err := os.ReadFile(filepath.Join(dir, "hello_go.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	exporting := goBuild(t, dir)
	plain := filepath.Join(t.TempDir(), "plain")
	if err := os.CopyFS(plain, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(plain, "export_wasip1.go")); err != nil {
		t.Fatal(err)
	}
	command := goBuild(t, plain)
	for _, tt := range []struct {
		name, isolation   string
		wasm              []byte
		wantAdd, wantCall string // the refusal of tool add, the run's error
	}{
		{name: "reactor fresh", isolation: "fresh", wasm: reactor},
		{name: "command fresh", isolation: "fresh", wasm: command},
		{name: "command pool", isolation: "pool", wasm: command, wantAdd: `isolation "pool" needs the module to export nanovm_call`},
		{name: "command exporting nanovm_call fresh", isolation: "fresh", wasm: exporting},
		{name: "command exporting nanovm_call pool", isolation: "pool", wasm: exporting, wantCall: "trapped: unreachable"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			variant := withIsolation(t, dir, tt.isolation, tt.wasm)
			switch {
			case tt.wantAdd != "":
				code, out, errOut := runCLI(t, "", "tool", "add", variant, "--db", filepath.Join(t.TempDir(), "new.db"), "--cache-dir", sharedCache)
				if code == 0 || !strings.Contains(errOut, tt.wantAdd) {
					t.Fatalf("tool add: exit %d\n%s\n%s\nwant the refusal %q", code, out, errOut, tt.wantAdd)
				}
			case tt.wantCall != "":
				code, out, errOut := addAndTryRun(t, "hello_go", variant)
				if code == 0 || !strings.Contains(out+errOut, tt.wantCall) {
					t.Fatalf("run: exit %d\n%s\n%s\nwant %q", code, out, errOut, tt.wantCall)
				}
			default:
				if b, _ := json.Marshal(addAndRun(t, "hello_go", variant)); string(b) != mustJSON(wantGreeting) {
					t.Fatalf("final output %s, want %s", b, mustJSON(wantGreeting))
				}
			}
		})
	}
}

// goBuild builds the Go package in dir for wasip1 without -buildmode: a
// WASI command.
func goBuild(t *testing.T, dir string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "command.wasm")
	build := exec.Command("go", "build", "-o", out, ".")
	build.Dir, build.Env = dir, append(os.Environ(), "GOWORK=off", "GOOS=wasip1", "GOARCH=wasm")
	if log, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build in %s: %v\n%s", dir, err, log)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

// withIsolation copies the tool in dir to a new folder of the same name
// with module wasm and the manifest's isolation set to isolation.
func withIsolation(t *testing.T, dir, isolation string, wasm []byte) string {
	t.Helper()
	name := filepath.Base(dir)
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m["isolation"] = isolation
	if isolation != "pool" {
		delete(m, "pool_size")
	}
	out := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "manifest.json"), []byte(mustJSON(m)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, name+".wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
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
	if missing := csdk.MissingToolchain(); missing != "" {
		t.Skip(missing + ": skeleton written, not built")
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
