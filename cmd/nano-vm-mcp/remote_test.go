package main

import (
	"context"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// shortDB is a database path short enough for its socket (about 104
// bytes at most).
func shortDB(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "b.db")
}

// Ensure every CLI command works beside a running stdio server (the real
// binary, the database's primary), through its operator channel, with
// the output it prints on a database it opens itself: tool add registers
// as the operator (the server's own client cannot remove the tool), and
// run, trace, secret, audit and idempotency see the server's database.
func TestCLIBesideServer(t *testing.T) {
	t.Setenv("NANO_VM_MCP_VAULT_KEY", hex.EncodeToString(testVaultKey))
	db := shortDB(t)
	p := startStdio(t, "primary", db, "2025-06-18")
	d := []string{"--db", db, "--cache-dir", sharedCache}
	cli := func(stdin string, args ...string) string {
		t.Helper()
		code, out, errOut := runCLI(t, stdin, append(args, d...)...)
		if code != 0 {
			t.Fatalf("%v beside the server: exit %d\nstdout:\n%s\nstderr:\n%s\nserver:\n%s", args, code, out, errOut, p.stderr)
		}
		return out
	}
	m := bundledModule(t, "validate_amount")
	dir := t.TempDir()
	if err := writeToolDir(dir, m.Manifest, m.Wasm, "tool.wasm"); err != nil {
		t.Fatal(err)
	}

	if out := cli("", "tool", "add", dir); !regexp.MustCompile(`^registered validate_amount@sha256:[0-9a-f]{64}\n$`).MatchString(out) {
		t.Fatalf("tool add: %q", out)
	}
	got := p.mustCall(t, "get_tool", map[string]any{"name": "validate_amount"})
	if got["source"] != "operator" {
		t.Fatalf("the server's client sees the tool with source %v, want operator: %v", got["source"], got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := p.callTool(ctx, "remove_tool", map[string]any{"name": "validate_amount"}); err == nil {
		t.Fatal("the server's MCP client removed the operator's tool")
	}
	if out := cli("", "tool", "ls"); !regexp.MustCompile(`(?m)^NAME\s+MODULE\s+REGISTERED\nvalidate_amount\s+sha256:[0-9a-f]{16}\s+\d{4}-`).MatchString(out) {
		t.Fatalf("tool ls: %q", out)
	}
	if out := cli("", "tool", "show", "validate_amount"); !strings.Contains(out, `"source": "operator"`) {
		t.Fatalf("tool show: %q", out)
	}

	prog := filepath.Join(dir, "p.json")
	if err := os.WriteFile(prog, []byte(`{"name":"beside","steps":[{"id":"v","type":"tool","tool":"validate_amount","args":{"amount":10}}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ran := cli("", "run", prog)
	id := regexp.MustCompile(`^beside  SUCCESS  1 step\(s\)  [0-9.]+ ms  trace (\S+)\n`).FindStringSubmatch(ran)
	if id == nil || !strings.Contains(ran, "\naudit: ") || !strings.Contains(ran, "chain verified") {
		t.Fatalf("run: %q", ran)
	}
	if out := cli("", "trace", "ls"); !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(id[1]) + `\s+beside\s+success\s`).MatchString(out) {
		t.Fatalf("trace ls: %q", out)
	}
	if out := cli("", "trace", "show", id[1]); out != ran {
		t.Fatalf("trace show differs from what run printed:\nrun:\n%s\ntrace show:\n%s", ran, out)
	}
	traces := p.mustCall(t, "list_traces", map[string]any{})
	if !strings.Contains(mustJSON(traces), id[1]) {
		t.Fatalf("the server's client does not see the CLI's run: %v", traces)
	}

	if out := cli("s3cret\n", "secret", "put", "api_key"); out != "vault://secret/api_key\n" {
		t.Fatalf("secret put: %q", out)
	}
	if out := cli("", "secret", "ls"); !regexp.MustCompile(`(?m)^vault://secret/api_key\s+stored\s`).MatchString(out) {
		t.Fatalf("secret ls: %q", out)
	}
	if out := cli("", "audit", "verify"); !regexp.MustCompile(`^audit chain verified: \d+ envelope\(s\), \d+ record\(s\), head seq \d+ hash [0-9a-f]+\n$`).MatchString(out) {
		t.Fatalf("audit verify: %q", out)
	}
	if out := cli("", "secret", "erase", "api_key"); !strings.HasPrefix(out, "erased api_key: value destroyed") {
		t.Fatalf("secret erase: %q", out)
	}
	if out := cli("", "idempotency", "ls"); !strings.HasPrefix(out, "KEY") {
		t.Fatalf("idempotency ls: %q", out)
	}
	if code, _, errOut := runCLI(t, "", append([]string{"idempotency", "rm", "nope"}, d...)...); code != 1 || !strings.Contains(errOut, "no key") {
		t.Fatalf("idempotency rm of a missing key: exit %d: %s", code, errOut)
	}
	if out := cli("", "tool", "rm", "validate_amount"); !strings.HasPrefix(out, "removed validate_amount") {
		t.Fatalf("tool rm: %q", out)
	}
	if code, _, errOut := runCLI(t, "", append([]string{"tool", "show", "validate_amount"}, d...)...); code != 1 || !strings.Contains(errOut, "validate_amount") {
		t.Fatalf("tool show after rm: exit %d: %s", code, errOut)
	}
	// A run that fails on the primary fails here as it would locally:
	// exit 3 (ran, failed) or 1 (refused), naming the tool.
	if code, _, errOut := runCLI(t, "", append([]string{"run", prog}, d...)...); (code != 3 && code != 1) || !strings.Contains(errOut, `"validate_amount"`) {
		t.Fatalf("run of a removed tool: exit %d: %s", code, errOut)
	}
	if !p.isPrimary() {
		t.Fatalf("the server is not the primary:\n%s", p.stderr)
	}
}

// Ensure CLI commands work beside an HTTP server too: it serves the
// database's socket, so tool ls, run and trace ls go through it, and a
// stdio server started on the same database forwards to it.
func TestCLIBesideHTTPServer(t *testing.T) {
	db := shortDB(t)
	_, stop := startHTTP(t, db, "k")
	defer stop()
	t.Setenv("NANO_VM_MCP_VAULT_KEY", hex.EncodeToString(testVaultKey))
	code, out, errOut := runCLI(t, "", "tool", "ls", "--db", db, "--cache-dir", sharedCache)
	if code != 0 || !strings.Contains(out, "validate_amount") {
		t.Fatalf("tool ls beside an HTTP server: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "", "run", example("payment_pipeline", "program.json"), "--input", example("payment_pipeline", "input.json"), "--db", db, "--cache-dir", sharedCache)
	if code != 0 || !strings.Contains(out, "SUCCESS") || !strings.Contains(out, "chain verified") {
		t.Fatalf("run beside an HTTP server: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, "", "trace", "ls", "--db", db, "--cache-dir", sharedCache); code != 0 || !strings.Contains(out, "payment_pipeline") {
		t.Fatalf("trace ls beside an HTTP server: exit %d\n%s\n%s", code, out, errOut)
	}
	// A stdio server on the same database forwards its client to it.
	c := stdioClient(t, db)
	defer c.Close()
	if list := callTool(t, c, "list_traces", map[string]any{}, false); len(list["traces"].([]any)) != 1 {
		t.Fatalf("list_traces through a stdio server beside the HTTP one: %v", list)
	}
}

// Ensure a database held by a CLI command (no server) is refused naming
// the holder's pid and command line.
func TestCLIBesideCLI(t *testing.T) {
	db := shortDB(t)
	holder := exec.Command(binary, "secret", "put", "x", "--db", db, "--no-bundled-tools", "--cache-dir", sharedCache)
	holder.Env = append(os.Environ(), "NANO_VM_MCP_VAULT_KEY="+hex.EncodeToString(testVaultKey))
	holdIn, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { holdIn.Close(); holder.Wait() }()
	if !waitFile(db, 30*time.Second) {
		t.Fatal("the holder never opened the database")
	}
	t.Setenv("NANO_VM_MCP_VAULT_KEY", hex.EncodeToString(testVaultKey))
	code, _, errOut := runCLI(t, "", "trace", "ls", "--db", db, "--cache-dir", sharedCache)
	if code != 1 {
		t.Fatalf("trace ls on a held database: exit %d", code)
	}
	for _, want := range []string{"pid " + strconv.Itoa(holder.Process.Pid), "secret put x", "locked"} {
		if !strings.Contains(errOut, want) {
			t.Fatalf("the message lacks %q: %s", want, errOut)
		}
	}
}

// Ensure a token file a dead primary left behind, with no socket, does
// not stop the CLI opening the free database itself.
func TestCLIStaleOperatorToken(t *testing.T) {
	t.Setenv("NANO_VM_MCP_VAULT_KEY", hex.EncodeToString(testVaultKey))
	db := shortDB(t)
	if err := os.WriteFile(db+".operator-token", []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "", "tool", "ls", "--db", db, "--cache-dir", sharedCache, "--no-bundled-tools")
	if code != 0 || !strings.HasPrefix(out, "NAME") {
		t.Fatalf("tool ls beside a stale token: exit %d: %s%s", code, out, errOut)
	}
}
