package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/runtime/runtimetest"
	"github.com/nanovm/nano-vm-mcp/tools"
	wasmtools "github.com/nanovm/nano-vm-mcp/wasm-tools"
)

// Ensure the runtime protects every file it keeps beside the database:
// even the operator's own registration (the CLI path) cannot mount the
// database's directory, the vault key, the compilation cache, the socket
// or its lock, while an unrelated folder mounts.
func TestServerFilesCannotBeMounted(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "nano.db")
	cache := filepath.Join(t.TempDir(), "cache")
	free := t.TempDir()
	rt := openRuntime(t, runtime.Config{DBPath: db, CacheDir: cache, NoBundledTools: true})
	mod := testModules(t)["fs_escape"]
	manifest := func(host string) []byte { return mountManifest(t, mod, host, false) }
	tests := []struct{ name, host, how, file string }{
		{"database's directory", dir, "contains", db},
		{"the database", db, "is", db},
		{"the vault key", db + ".vault-key", "is", db + ".vault-key"},
		{"the socket", db + ".sock", "is", db + ".sock"},
		{"the election lock", db + ".sock.lock", "is", db + ".sock.lock"},
		{"the operator token", db + ".operator-token", "is", db + ".operator-token"},
		{"the compilation cache", cache, "is", cache},
		{"inside the compilation cache", filepath.Join(cache, "x"), "lies inside", cache},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rt.RegisterToolLocal(context.Background(), manifest(tt.host), mod.Wasm)
			want := `mount /data: mount refused: host_path "` + tt.host + `" ` + tt.how + ` the server's own file "` + tt.file + `"`
			if !errors.Is(err, tools.ErrMountRefused) || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v\nwant it to say %s", err, want)
			}
		})
	}
	if _, err := rt.RegisterToolLocal(context.Background(), manifest(free), mod.Wasm); err != nil {
		t.Fatalf("an unrelated folder: %v", err)
	}
	if _, err := os.Stat(db); err != nil {
		t.Fatal(err)
	}
}

// mountManifest is mod's manifest with one mount of host at /data,
// read-only when ro.
func mountManifest(t *testing.T, mod wasmtools.Module, host string, ro bool) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(mod.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	m["mounts"] = []map[string]any{{"host_path": host, "guest_path": "/data", "read_only": ro}}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tree lists every path under dir with its size and, for a symlink, its
// target (bbolt rewrites the database in place, so contents are not kept).
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		v := fi.Mode().String()
		if fi.Mode()&fs.ModeSymlink != 0 {
			dst, _ := os.Readlink(p)
			v += " -> " + dst
		} else if fi.Mode().IsRegular() && !strings.HasSuffix(p, ".db") && !strings.HasSuffix(p, ".db.journal") {
			// The store's own files (the database and its journal)
			// change with every run: their modes are compared.
			b, _ := os.ReadFile(p)
			v += " " + string(b)
		}
		out[p] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Ensure an operator tool from the tools folder, granted a writable mount
// under no policy file, is run by programs only inside that mount: every
// escape a program's arguments can make the guest try (through symlinks
// the operator left there, ones it makes, hard links, renames) leaves the
// server's own files and everything outside the mount as they were, while
// honest use of the mount works.
func TestOperatorMountHoldsAgainstPrograms(t *testing.T) {
	base := t.TempDir()
	state, data, outside, toolsDir := filepath.Join(base, "state"), filepath.Join(base, "data"), filepath.Join(base, "outside"), filepath.Join(base, "tools")
	for _, d := range []string{state, data, outside, filepath.Join(toolsDir, "fs_escape")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("top secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Symlinks the operator left in the data folder, leading to the
	// server's state and elsewhere.
	for link, target := range map[string]string{"st": "../state", "out": outside} {
		if err := os.Symlink(target, filepath.Join(data, link)); err != nil {
			t.Fatal(err)
		}
	}
	mod := testModules(t)["fs_escape"]
	mb := mountManifest(t, mod, data, false)
	if err := os.WriteFile(filepath.Join(toolsDir, "fs_escape", "manifest.json"), mb, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(toolsDir, "fs_escape", "fs_escape.wasm"), mod.Wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(state, "nano.db")
	// The key file the runtime would create without a configured key.
	if err := os.WriteFile(db+".vault-key", runtimetest.VaultKey, 0o600); err != nil {
		t.Fatal(err)
	}
	rt := openRuntime(t, runtime.Config{DBPath: db, ToolsDir: toolsDir, NoBundledTools: true})
	ctx := context.Background()
	run := func(args map[string]any) *runtime.RunResult {
		t.Helper()
		a, _ := json.Marshal(args)
		prog := fmt.Sprintf(`{"steps":[{"id":"fs","type":"tool","tool":"fs_escape","args":%s,"is_terminal":true}]}`, a)
		res, err := rt.RunProgram(ctx, runtime.RunRequest{Program: json.RawMessage(prog)})
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return res
	}
	if res := run(map[string]any{"op": "write", "path": "/data/ok.txt", "data": "fine"}); res.Status != "success" {
		t.Fatalf("honest write: %+v", res)
	}
	if res := run(map[string]any{"path": "/data/ok.txt"}); res.Status != "success" || !strings.Contains(fmt.Sprint(res.FinalOutput), "fine") {
		t.Fatalf("honest read: %+v", res)
	}
	stateBefore, outsideBefore := tree(t, state), tree(t, outside)
	key := db + ".vault-key"
	for _, args := range []map[string]any{
		{"path": "/data/st/nano.db.vault-key"},
		{"path": "/data/st/nano.db"},
		{"path": "/data/out/secret.txt"},
		{"op": "write", "path": "/data/st/planted", "data": "x"},
		{"op": "write", "path": "/data/out/secret.txt", "data": "x"},
		{"op": "unlink", "path": "/data/st/nano.db.vault-key"},
		{"op": "truncate", "path": "/data/st/nano.db"},
		{"op": "rename", "target": "/data/st/nano.db.vault-key", "path": "/data/key"},
		{"op": "link", "target": "/data/st/nano.db.vault-key", "path": "/data/key"},
		{"op": "symlink", "target": "../state", "path": "/data/mine"},
		{"op": "symlink", "target": state, "path": "/data/mine"},
		{"path": "/data/mine/nano.db.vault-key"},
		{"path": "/data/../state/nano.db.vault-key"},
		{"path": key},
		{"op": "list", "path": "/data/st"},
	} {
		res := run(args)
		if res.Status == "success" {
			t.Errorf("%v: succeeded: %v", args, res.FinalOutput)
		}
	}
	if after := tree(t, state); !equalTrees(after, stateBefore) {
		t.Fatalf("the server's directory changed:\nbefore %v\nafter  %v", stateBefore, after)
	}
	if after := tree(t, outside); !equalTrees(after, outsideBefore) {
		t.Fatalf("outside the mount changed:\nbefore %v\nafter  %v", outsideBefore, after)
	}
	if _, err := os.Lstat(filepath.Join(data, "key")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a name for the vault key appeared in the mount: %v", err)
	}
}

func equalTrees(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Ensure no tool may mount the operator's trust anchors writable: the
// policy file and the tools folder decide, at the next start, which tools
// run as the operator's and with what. A writable mount covering either
// would let any client, through that tool, write itself an operator tool
// (any mount, any secret) or a permissive policy. Read-only mounts of them
// (a tool reading a data file shipped in its own folder) stay allowed.
func TestTrustAnchorsCannotBeMountedWritable(t *testing.T) {
	base := t.TempDir()
	toolsDir, confDir := filepath.Join(base, "tools"), filepath.Join(base, "conf")
	for _, d := range []string{filepath.Join(toolsDir, "x"), confDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	policy := filepath.Join(confDir, "policy.json")
	if err := os.WriteFile(policy, []byte(`{"policy_id":"p","version":"1","tool_capabilities":{"fs_escape":["wasi:fs"]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	free := filepath.Join(base, "free")
	if err := os.Mkdir(free, 0o755); err != nil {
		t.Fatal(err)
	}
	rt := openRuntime(t, runtime.Config{DBPath: filepath.Join(t.TempDir(), "nano.db"), PolicyPath: policy, ToolsDir: toolsDir, NoBundledTools: true})
	mod := testModules(t)["fs_escape"]
	manifest := func(host string, ro bool) []byte { return mountManifest(t, mod, host, ro) }
	tests := []struct {
		name, host, how, file string
		readOnly, ok          bool
	}{
		{name: "the tools folder", host: toolsDir, how: "is", file: toolsDir},
		{name: "a folder containing both", host: base, how: "contains", file: policy},
		{name: "a tool's own folder", host: filepath.Join(toolsDir, "x"), how: "lies inside", file: toolsDir},
		{name: "the policy's folder", host: confDir, how: "contains", file: policy},
		{name: "the tools folder read-only", host: toolsDir, readOnly: true, ok: true},
		{name: "the policy's folder read-only", host: confDir, readOnly: true, ok: true},
		{name: "an unrelated folder", host: free, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rt.RegisterToolLocal(context.Background(), manifest(tt.host, tt.readOnly), mod.Wasm)
			if tt.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			want := `mount /data: mount refused: host_path "` + tt.host + `" ` + tt.how + ` the operator's configuration "` + tt.file + `"`
			if !errors.Is(err, tools.ErrMountRefused) || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v\nwant it to say %s", err, want)
			}
		})
	}
}

// Ensure the operator's env file, which may hold NANO_VM_MCP_VAULT_KEY and
// NANO_VM_MCP_API_KEY, can never be mounted, even read-only: a tool
// reading it would hold the key that decrypts every secret.
func TestEnvFileCannotBeMounted(t *testing.T) {
	conf := t.TempDir()
	envFile := filepath.Join(conf, "nano.env")
	if err := os.WriteFile(envFile, []byte("NANO_VM_MCP_VAULT_KEY=x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rt := openRuntime(t, runtime.Config{DBPath: filepath.Join(t.TempDir(), "nano.db"), EnvFile: envFile, NoBundledTools: true})
	mod := testModules(t)["fs_escape"]
	_, err := rt.RegisterToolLocal(context.Background(), mountManifest(t, mod, conf, true), mod.Wasm)
	want := `host_path "` + conf + `" contains the server's own file "` + envFile + `"`
	if !errors.Is(err, tools.ErrMountRefused) || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v\nwant it to say %s", err, want)
	}
}
