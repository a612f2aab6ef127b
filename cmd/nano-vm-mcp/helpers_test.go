package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	wasmtools "github.com/nanovm/nano-vm-mcp/wasm-tools"
)

// Helpers the package's tests share: the test and bundled modules, the
// arguments that upload one, a tools-folder entry, and a finished run of
// the binary's exit status.

// allModules maps every bundled and test module by name.
func allModules(t *testing.T) map[string]wasmtools.Module {
	t.Helper()
	mods, err := wasmtools.All()
	if err != nil {
		t.Fatal(err)
	}
	return mods
}

// bundledModule is one of the bundled tools' manifest and module.
func bundledModule(t *testing.T, name string) wasmtools.Module {
	t.Helper()
	return moduleFrom(t, wasmtools.Bundled, "bundled tool", name)
}

// testModule is one of the test tools' (wasm-tools/testtools) manifest
// and module.
func testModule(t *testing.T, name string) wasmtools.Module {
	t.Helper()
	return moduleFrom(t, wasmtools.TestTools, "test module", name)
}

// moduleFrom is the module named name in list, a what.
func moduleFrom(t *testing.T, list func() ([]wasmtools.Module, error), what, name string) wasmtools.Module {
	t.Helper()
	m, err := findModule(list, what, name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// findModule is moduleFrom for a caller without a *testing.T.
func findModule(list func() ([]wasmtools.Module, error), what, name string) (wasmtools.Module, error) {
	mods, err := list()
	if err != nil {
		return wasmtools.Module{}, err
	}
	for _, m := range mods {
		if m.Name == name {
			return m, nil
		}
	}
	return wasmtools.Module{}, fmt.Errorf("no %s %s", what, name)
}

// editedManifest is m's manifest as a JSON object, renamed to name
// (unless "") and then changed by edit (when not nil).
func editedManifest(t *testing.T, m wasmtools.Module, name string, edit func(map[string]any)) map[string]any {
	t.Helper()
	var man map[string]any
	if err := json.Unmarshal(m.Manifest, &man); err != nil {
		t.Fatalf("manifest of %s: %v", m.Name, err)
	}
	if name != "" {
		man["name"] = name
	}
	if edit != nil {
		edit(man)
	}
	return man
}

// uploadOf is register_tool's arguments uploading wasm as name with
// manifest, which is sent as given (a JSON text or an object).
func uploadOf(name string, wasm []byte, manifest any) map[string]any {
	return map[string]any{"name": name, "wasm_base64": base64.StdEncoding.EncodeToString(wasm), "manifest": manifest}
}

// writeToolDir writes a tools-folder entry: dir (created) holding
// manifest.json and, unless wasmName is "", the module as wasmName.
func writeToolDir(dir string, manifest, wasm []byte, wasmName string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), manifest, 0o644); err != nil {
		return err
	}
	if wasmName == "" {
		return nil
	}
	return os.WriteFile(filepath.Join(dir, wasmName), wasm, 0o644)
}

// runToExit runs cmd to its end and returns its exit status; a command
// that could not run at all fails the test.
func runToExit(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	return cmd.ProcessState.ExitCode()
}

// killCounter is the HTTP server the http_get tool calls in the crash
// tests: it answers {"ok":true}, counts the calls by path and in all,
// and on the killAt-th call in all (1-based; 0 never) SIGKILLs victim
// and waits for it to be gone before it answers, so the call in flight
// never gets its answer. Tests set its fields under mu.
type killCounter struct {
	mu     sync.Mutex
	hits   map[string]int
	total  int
	killAt int
	victim *os.Process
	first  chan struct{} // closed on the first call, when set
	killed chan struct{} // closed after the kill, when set
}

func (c *killCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.hits[r.URL.Path]++
	c.total++
	if c.total == 1 && c.first != nil {
		close(c.first)
	}
	if c.killAt > 0 && c.total == c.killAt && c.victim != nil {
		c.victim.Signal(syscall.SIGKILL)
		c.victim.Wait()
		if c.killed != nil {
			close(c.killed)
		}
	}
	c.mu.Unlock()
	w.Write([]byte(`{"ok":true}`))
}
