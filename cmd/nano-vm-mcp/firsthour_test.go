package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
)

// The first hour of a new user (issue 14): where the database goes, what
// the first run says, and a --db whose folder does not exist yet.

// userEnv is a clean user environment: HOME (and XDG_DATA_HOME when
// given), nothing of nano-vm-mcp's, so the defaults apply.
func userEnv(home, xdgData string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "NANO_VM_MCP_") || k == "HOME" || strings.HasPrefix(k, "XDG_") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "HOME="+home)
	if xdgData != "" {
		env = append(env, "XDG_DATA_HOME="+xdgData)
	}
	return env
}

// cli runs the binary in dir with env and returns its exit code and output.
func cli(t *testing.T, dir string, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir, cmd.Env = dir, env
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	code := runToExit(t, cmd)
	return code, out.String(), errb.String()
}

// stdioIn starts a stdio server in dir, as a client started from that
// folder would, initializes it, and returns the client and its stderr.
func stdioIn(t *testing.T, dir string, env []string, args ...string) (*client.Client, *syncBuffer) {
	t.Helper()
	p := launchStdio(t, stdioLaunch{name: "first-hour", dir: dir, env: env, args: args})
	return p.c, p.stderr
}

// toolText calls an MCP tool and returns its text.
func toolText(t *testing.T, c *client.Client, name string, args map[string]any) string {
	t.Helper()
	isErr, text, err := rawCall(c, name, args, time.Minute)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if isErr {
		t.Fatalf("%s: %s", name, text)
	}
	return text
}

// writeTool writes a tool folder: manifest.json naming the tool and the
// bundled validate_amount module under another file name.
func writeTool(t *testing.T, dir, name, wasmName string) {
	t.Helper()
	m := bundledModule(t, "validate_amount")
	data, _ := json.Marshal(editedManifest(t, m, name, nil))
	if err := writeToolDir(dir, data, m.Wasm, wasmName); err != nil {
		t.Fatal(err)
	}
}

// Ensure the default database is the user's, whatever the working folder:
// commands and stdio servers started from different folders (as Claude
// Code starts them) share one database in the per-user data folder, made
// 0700, and the first run says what it created; nothing lands in the
// working folders.
func TestDefaultDatabaseFollowsTheUser(t *testing.T) {
	for _, tt := range []struct {
		name string
		xdg  bool
	}{{name: "home", xdg: false}, {name: "XDG_DATA_HOME", xdg: true}} {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			home := filepath.Join(root, "home")
			dataDir := filepath.Join(home, ".local", "share", "nano-vm-mcp")
			xdg := ""
			if tt.xdg {
				xdg = filepath.Join(root, "xdg")
				dataDir = filepath.Join(xdg, "nano-vm-mcp")
			}
			env := userEnv(home, xdg)
			projA, projB, projC := filepath.Join(root, "a"), filepath.Join(root, "b"), filepath.Join(root, "c")
			for _, d := range []string{home, projA, projB, projC} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			writeTool(t, filepath.Join(projA, "mytool"), "first_hour_tool", "build.wasm")

			code, out, errOut := cli(t, projA, env, "tool", "add", "mytool", "--no-bundled-tools")
			if code != 0 || !strings.Contains(out, "registered first_hour_tool@") {
				t.Fatalf("tool add: exit %d\n%s\n%s", code, out, errOut)
			}
			db := filepath.Join(dataDir, "nano_vm_mcp.db")
			for _, want := range []string{
				"created folder " + dataDir + " (mode 0700)",
				"created database " + db,
				"created journal " + db + ".journal",
				"created vault key " + db + ".vault-key",
				"created compile cache " + db + ".wasm-cache",
			} {
				if !strings.Contains(errOut, want) {
					t.Errorf("first run's stderr lacks %q:\n%s", want, errOut)
				}
			}
			st, err := os.Stat(dataDir)
			if err != nil || st.Mode().Perm() != 0o700 {
				t.Fatalf("data folder: %v %v", st, err)
			}

			code, out, errOut = cli(t, projB, env, "tool", "ls", "--no-bundled-tools")
			if code != 0 || !strings.Contains(out, "first_hour_tool") || strings.Contains(errOut, "created") {
				t.Fatalf("tool ls from another folder: exit %d\n%s\n%s", code, out, errOut)
			}
			c, stderr := stdioIn(t, projC, env, "--no-bundled-tools")
			if text := toolText(t, c, "list_tools", map[string]any{}); !strings.Contains(text, "first_hour_tool") {
				t.Fatalf("stdio server started in a third folder does not see the tool: %s\nstderr:\n%s", text, stderr)
			}
			c.Close()
			for _, d := range []string{projA, projB, projC} {
				if m, _ := filepath.Glob(filepath.Join(d, "*.db*")); len(m) > 0 {
					t.Errorf("database files in the working folder %s: %v", d, m)
				}
			}
		})
	}
}

// Ensure the README's Claude Code line works on a fresh machine: a --db
// whose folder does not exist (~/.nano-vm-mcp/nano.db) is created, 0700,
// for a stdio server as for a command, "~/" expanded when no shell did;
// a folder that cannot be created fails saying what to do.
func TestDBFolderIsCreated(t *testing.T) {
	root := t.TempDir()
	home := filepath.Join(root, "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	env := userEnv(home, "")

	c, stderr := stdioIn(t, root, env, "--db", filepath.Join(home, ".nano-vm-mcp", "nano.db"), "--no-bundled-tools")
	toolText(t, c, "list_tools", map[string]any{})
	c.Close()
	st, err := os.Stat(filepath.Join(home, ".nano-vm-mcp"))
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("--db folder: %v %v\nstderr:\n%s", st, err, stderr)
	}
	if !strings.Contains(stderr.String(), "created database "+filepath.Join(home, ".nano-vm-mcp", "nano.db")) {
		t.Errorf("stdio server's first run does not say what it created:\n%s", stderr)
	}

	// "~/x/n.db" as a JSON client configuration passes it, unexpanded.
	code, _, errOut := cli(t, root, env, "secret", "ls", "--db", "~/deeper/still/n.db")
	if code != 0 {
		t.Fatalf("secret ls --db ~/…: exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(home, "deeper", "still", "n.db")); err != nil {
		t.Fatalf("~ not expanded: %v\n%s", err, errOut)
	}

	blocker := filepath.Join(root, "afile")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = cli(t, root, env, "trace", "ls", "--db", filepath.Join(blocker, "sub", "n.db"))
	if code != 1 || !strings.Contains(errOut, "create database folder") || !strings.Contains(errOut, "--db FILE or NANO_VM_MCP_DB") {
		t.Fatalf("uncreatable folder: exit %d: %s", code, errOut)
	}
}
