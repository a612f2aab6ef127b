package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/runtime"
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
	var mod wasmtools.Module
	ms, err := wasmtools.TestTools()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Name == "fs_escape" {
			mod = m
		}
	}
	manifest := func(host string) []byte {
		var m map[string]any
		if err := json.Unmarshal(mod.Manifest, &m); err != nil {
			t.Fatal(err)
		}
		m["mounts"] = []map[string]any{{"host_path": host, "guest_path": "/data"}}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct{ name, host, how, file string }{
		{"database's directory", dir, "contains", db},
		{"the database", db, "is", db},
		{"the vault key", db + ".vault-key", "is", db + ".vault-key"},
		{"the socket", db + ".sock", "is", db + ".sock"},
		{"the election lock", db + ".sock.lock", "is", db + ".sock.lock"},
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
