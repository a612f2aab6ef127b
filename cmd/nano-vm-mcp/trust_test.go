package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"

	wasmtools "github.com/nanovm/nano-vm-mcp/wasm-tools"
)

// letters returns n random lowercase letters: a marker no projection
// (which masks digits and e-mail addresses) would hide.
func letters(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'a' + b[i]%26
	}
	return string(b)
}

// attacker is an MCP client of a real server process that keeps every
// answer it gets, to search them afterwards.
type attacker struct {
	t      *testing.T
	c      *client.Client
	stderr *syncBuffer
	seen   strings.Builder
}

// startAttacker starts the binary with env and args as a stdio MCP
// server, its stderr kept for failure messages, and returns an attacker
// whose initialized client is closed when the test ends.
func startAttacker(t *testing.T, env []string, args ...string) *attacker {
	t.Helper()
	p := launchStdio(t, stdioLaunch{name: "attacker", env: env, args: args})
	return &attacker{t: t, c: p.c, stderr: p.stderr}
}

// call calls a tool and returns its text and whether it was a tool error.
func (a *attacker) call(name string, args map[string]any) (map[string]any, bool) {
	a.t.Helper()
	ans, err := callObject(a.c, name, args, time.Minute)
	if err != nil {
		a.t.Fatalf("%s: %v\nstderr:\n%s", name, err, a.stderr)
	}
	fmt.Fprintf(&a.seen, "%s %v -> %s\n", name, args["name"], ans.text)
	return ans.obj, ans.isError
}

func (a *attacker) mustFail(name string, args map[string]any, why string) {
	a.t.Helper()
	if out, isErr := a.call(name, args); !isErr {
		a.t.Fatalf("%s (%s) was accepted: %v", name, why, out)
	}
}

func (a *attacker) mustSucceed(name string, args map[string]any) map[string]any {
	a.t.Helper()
	out, isErr := a.call(name, args)
	if isErr {
		a.t.Fatalf("%s: %v", name, out)
	}
	return out
}

// upload is register_tool's arguments for test module under name with
// its manifest edited.
func uploadArgs(t *testing.T, mods map[string]wasmtools.Module, module, name string, edit func(map[string]any)) map[string]any {
	t.Helper()
	return uploadOf(name, mods[module].Wasm, editedManifest(t, mods[module], name, edit))
}

func mountOf(host string, ro bool, caps ...string) func(map[string]any) {
	return func(m map[string]any) {
		m["mounts"] = []any{map[string]any{"host_path": host, "guest_path": "/data", "read_only": ro}}
		if len(caps) > 0 {
			m["capabilities"] = caps
		}
	}
}

// Ensure the acceptance point of issue 12: with uploads on, a tools folder
// giving an operator tool (scratch) a writable mount, and no policy file,
// no sequence of MCP calls a client makes reads or writes a host file
// outside scratch's mount or any of the server's own files. The server is
// the real binary; canaries beside the database and outside everything
// must never change nor reach any answer, trace or log, and neither may
// the vault key.
func TestUploadsCannotReachHostFiles(t *testing.T) {
	root := t.TempDir()
	dataDir, mnt, toolsDir := filepath.Join(root, "data"), filepath.Join(root, "mnt"), filepath.Join(root, "tools")
	for _, d := range []string{dataDir, mnt, filepath.Join(toolsDir, "scratch")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	db := filepath.Join(dataDir, "nano.db")
	canaryText, outsideText, insideText := "canary"+letters(t, 24), "outside"+letters(t, 24), "inside"+letters(t, 24)
	canary, outside := filepath.Join(dataDir, "canary.txt"), filepath.Join(root, "outside.txt")
	for path, text := range map[string]string{canary: canaryText, outside: outsideText, filepath.Join(mnt, "inside.txt"): insideText} {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mods := allModules(t)
	// The operator's scratch: fs_rw with a writable mount of mnt.
	smj, _ := json.Marshal(editedManifest(t, mods["fs_rw"], "scratch", mountOf(mnt, false)))
	if err := writeToolDir(filepath.Join(toolsDir, "scratch"), smj, mods["fs_rw"].Wasm, "scratch.wasm"); err != nil {
		t.Fatal(err)
	}

	// The real binary, no policy file, uploads on (the default), the vault
	// key in a file beside the database.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NANO_VM_MCP_") {
			env = append(env, kv)
		}
	}
	env = append(env, "NANO_VM_MCP_LOG_LEVEL=debug")
	a := startAttacker(t, env, "--transport", "stdio", "--db", db, "--tools-dir", toolsDir, "--cache-dir", sharedCache, "--no-bundled-tools")
	keyHex := strings.TrimSpace(readFile(t, db+".vault-key"))
	if len(keyHex) != 64 {
		t.Fatalf("vault key file holds %q", keyHex)
	}
	scratchTool := a.mustSucceed("get_tool", map[string]any{"name": "scratch"})
	if scratchTool["source"] != "operator" {
		t.Fatalf("scratch: %v", scratchTool)
	}
	scratchSHA := scratchTool["module_sha256"].(string)
	a.mustSucceed("put_secret", map[string]any{"id": "stripe", "value": "sk" + letters(t, 20)})

	// 1. Take scratch's name, or a new one, with a reach of its own.
	for _, host := range []string{"/", dataDir, root, mnt} {
		a.mustFail("register_tool", uploadArgs(t, mods, "fs_rw", "scratch", mountOf(host, false)), "replace scratch mounting "+host)
		a.mustFail("register_tool", uploadArgs(t, mods, "fs_rw", "evil", mountOf(host, false)), "new tool mounting "+host)
		a.mustFail("register_tool", uploadArgs(t, mods, "fs_rw", "evil", mountOf(host, true)), "new tool mounting "+host+" read-only")
	}
	a.mustFail("register_tool", uploadArgs(t, mods, "fs_rw", "scratch", nil), "replace scratch unchanged")
	a.mustFail("register_tool", uploadArgs(t, mods, "log_levels", "scratch", nil), "replace scratch with a harmless module")
	a.mustFail("register_tool", uploadArgs(t, mods, "fs_rw", "evil", func(m map[string]any) { delete(m, "capabilities") }), "import the filesystem without asking")
	a.mustFail("register_tool", uploadArgs(t, mods, "secret_echo", "evil", nil), "ask for secrets")
	a.mustFail("register_tool", uploadArgs(t, mods, "http_get", "evil", func(m map[string]any) { m["allowed_hosts"] = []any{"127.0.0.1"} }), "ask for the network")
	a.mustFail("register_tool", uploadArgs(t, mods, "fs_rw", "scratch@sha256:"+scratchSHA, mountOf("/", false)), "a pinned name")
	// 2. Remove scratch, then take the name.
	a.mustFail("remove_tool", map[string]any{"name": "scratch"}, "remove the operator's tool")
	a.mustFail("register_tool", uploadArgs(t, mods, "fs_rw", "scratch", mountOf("/", false)), "take scratch after a removal attempt")
	// 3. An upload of its own, then a second version reaching further,
	// then remove it and try again.
	a.mustSucceed("register_tool", uploadArgs(t, mods, "log_levels", "logger", nil))
	a.mustFail("register_tool", uploadArgs(t, mods, "fs_rw", "logger", mountOf("/", false)), "a new version of an upload mounting /")
	a.mustSucceed("remove_tool", map[string]any{"name": "logger"})
	a.mustFail("register_tool", uploadArgs(t, mods, "fs_rw", "logger", mountOf(dataDir, false)), "an upload re-registered after removal mounting the data dir")

	// 4. Programs: scratch can reach its mount and nothing else; pinned
	// refs name only the versions of that name.
	run := func(tool string, args map[string]any) map[string]any {
		t.Helper()
		prog, _ := json.Marshal(map[string]any{"steps": []any{map[string]any{"id": "s", "type": "tool", "tool": tool, "args": args, "output_key": "r"}}})
		out, _ := a.call("run_program", map[string]any{"program": string(prog)})
		if id, ok := out["trace_id"].(string); ok {
			a.call("get_trace", map[string]any{"trace_id": id})
		}
		return out
	}
	if out := run("scratch", map[string]any{"path": "/data/inside.txt"}); !strings.Contains(fmt.Sprint(out), insideText) {
		t.Fatalf("scratch cannot read its own mount, so the test proves nothing: %v", out)
	}
	if out := run("scratch", map[string]any{"path": "/data/written.txt", "write": "fine"}); out["status"] != "success" {
		t.Fatalf("scratch cannot write its own mount: %v", out)
	}
	paths := []string{
		"/data/../canary.txt", "/data/../data/canary.txt", "/data/../../data/canary.txt", "/data/../outside.txt",
		"/data/../data/nano.db.vault-key", "/data/../data/nano.db", "../data/canary.txt", "canary.txt",
		canary, outside, db + ".vault-key", "/proc/self/root" + canary, "/data/../../../../../../" + canary,
	}
	for _, ref := range []string{"scratch", "scratch@sha256:" + scratchSHA} {
		for _, p := range paths {
			run(ref, map[string]any{"path": p})
			run(ref, map[string]any{"path": p, "write": "pwned"})
		}
		run(ref, map[string]any{"path": "/data/../pwned.txt", "write": "pwned"})
	}
	for _, ref := range []string{"evil@sha256:" + scratchSHA, "logger@sha256:" + scratchSHA, "logger", "evil"} {
		if out := run(ref, map[string]any{"path": canary}); out["status"] == "success" {
			t.Fatalf("%s ran: %v", ref, out)
		}
	}
	a.call("list_tools", map[string]any{})
	a.call("list_traces", map[string]any{})
	a.call("verify_audit", map[string]any{})

	// Nothing outside the mount changed or was created, and no answer,
	// trace or log holds a canary or the vault key.
	if got := readFile(t, canary); got != canaryText {
		t.Fatalf("canary beside the database is now %q", got)
	}
	if got := readFile(t, outside); got != outsideText {
		t.Fatalf("canary outside everything is now %q", got)
	}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasPrefix(path, mnt+string(filepath.Separator)) {
			return nil
		}
		if strings.Contains(d.Name(), "pwned") {
			return fmt.Errorf("%s was created", path)
		}
		if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), "pwned") && !strings.HasSuffix(path, ".db") && !strings.HasSuffix(path, ".db.journal") {
			return fmt.Errorf("%s was written", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(readFile(t, db+".vault-key"), "pwned") {
		t.Fatal("vault key overwritten")
	}
	everything := a.seen.String() + a.stderr.String()
	for what, s := range map[string]string{"canary beside the database": canaryText, "canary outside": outsideText, "vault key": keyHex, "vault key (half)": keyHex[:32], "vault key (base64)": base64.StdEncoding.EncodeToString([]byte(keyHex))[:24]} {
		if strings.Contains(everything, s) {
			i := strings.Index(everything, s)
			t.Fatalf("the %s reached a client or the log: …%s…", what, everything[max(0, i-300):min(len(everything), i+100)])
		}
	}
	if hexKey, _ := hex.DecodeString(keyHex); len(hexKey) != 32 {
		t.Fatal("vault key is not 32 bytes")
	}
	// The server still serves.
	if v := a.mustSucceed("verify_audit", map[string]any{}); v["ok"] != true {
		t.Fatalf("verify_audit: %v", v)
	}
}
