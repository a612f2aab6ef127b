package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/nanovm/nano-vm-mcp/tools"
	wasmtools "github.com/nanovm/nano-vm-mcp/wasm-tools"
)

// mountTmpfs mounts a tmpfs of size bytes (ro when readOnly) on a fresh
// directory and unmounts it at cleanup. It skips the test, saying why,
// when not root.
func mountTmpfs(t *testing.T, size int, readOnly bool) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs (a small or read-only file system); run the tests as root to cover it")
	}
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := fmt.Sprintf("size=%d,mode=0755", size)
	if readOnly {
		opts += ",ro"
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s); skipping", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes a file in dir until the device is full, and returns
// its path (removing it frees the space).
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "fill")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			break
		}
	}
	// Whatever is left is smaller than a write: take it too.
	for {
		if _, err := f.Write(buf[:512]); err != nil {
			break
		}
	}
	return path
}

// runStart runs a command of the binary to its end and returns its exit
// code and stderr.
func runStart(t *testing.T, stdin string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = e2eEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	return runToExit(t, cmd), stderr.String()
}

// Ensure a read-only directory, a full disk, a database locked by another
// process and a truncated file are each reported at start for what they
// are, with the path, and never as a corrupt database when it is not.
func TestEnvironmentAtStart(t *testing.T) {
	t.Run("read-only", func(t *testing.T) {
		dir := mountTmpfs(t, 1<<20, true)
		db := filepath.Join(dir, "x.db")
		for _, args := range [][]string{{"--transport", "stdio", "--db", db}, {"trace", "ls", "--db", db}} {
			code, stderr := runStart(t, "", args...)
			if code == 0 || !strings.Contains(stderr, "not writable") || !strings.Contains(stderr, "read-only") || !strings.Contains(stderr, db) || strings.Contains(stderr, "corrupt") {
				t.Fatalf("%v: exit %d\n%s", args, code, stderr)
			}
		}
	})
	t.Run("read-only existing file", func(t *testing.T) {
		dir := mountTmpfs(t, 1<<20, false)
		db := filepath.Join(dir, "x.db")
		if code, stderr := runStart(t, "", "trace", "ls", "--db", db); code != 0 {
			t.Fatalf("create: %d %s", code, stderr)
		}
		if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
			t.Fatalf("remount ro: %v: %s", err, out)
		}
		code, stderr := runStart(t, "", "trace", "ls", "--db", db)
		if code == 0 || !strings.Contains(stderr, "not writable") || !strings.Contains(stderr, db) || strings.Contains(stderr, "corrupt") {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
	})
	t.Run("locked", func(t *testing.T) {
		db := filepath.Join(t.TempDir(), "x.db")
		bdb, err := bolt.Open(db, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer bdb.Close()
		code, stderr := runStart(t, "", "trace", "ls", "--db", db)
		if code == 0 || !strings.Contains(stderr, "locked by another process") || !strings.Contains(stderr, db) {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
	})
	t.Run("full", func(t *testing.T) {
		dir := mountTmpfs(t, 256<<10, false)
		fill := fillDisk(t, dir)
		db := filepath.Join(dir, "x.db")
		for _, args := range [][]string{{"--transport", "stdio", "--db", db}, {"trace", "ls", "--db", db}} {
			code, stderr := runStart(t, "", args...)
			if code == 0 || !strings.Contains(stderr, "disk full") || !strings.Contains(stderr, db) || strings.Contains(stderr, "corrupt") {
				t.Fatalf("%v: exit %d\n%s", args, code, stderr)
			}
		}
		// Nothing torn is left behind: with space freed, it starts.
		if err := os.Remove(fill); err != nil {
			t.Fatal(err)
		}
		if code, stderr := runStart(t, "", "trace", "ls", "--db", db); code != 0 {
			t.Fatalf("after freeing space: exit %d\n%s", code, stderr)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		db := filepath.Join(t.TempDir(), "x.db")
		if code, stderr := runStart(t, "", "trace", "ls", "--db", db); code != 0 {
			t.Fatalf("create: %d %s", code, stderr)
		}
		fi, err := os.Stat(db)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(db, fi.Size()/2); err != nil {
			t.Fatal(err)
		}
		code, stderr := runStart(t, "", "trace", "ls", "--db", db)
		if code == 0 || !strings.Contains(stderr, "truncated") || !strings.Contains(stderr, db) {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
	})
}

// Ensure a disk that fills mid-run says "disk full", commits nothing of
// the step, and leaves the run resumable: after space is freed the same
// request (idempotency key) finishes it, and the audit verifies. The disk
// fills while the run's second step waits on its HTTP call; its answer,
// or one of the next few, then cannot be committed.
func TestDiskFullMidRun(t *testing.T) {
	dir := mountTmpfs(t, 64<<20, false)
	db := filepath.Join(dir, "x.db")
	var fill atomic.Value
	hits := atomic.Int32{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The second step's call fills the disk, so the first step is
		// durable and the run stops mid-way.
		if hits.Add(1) == 2 {
			fill.Store(fillDisk(t, dir))
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, strings.Repeat("z", 8000))
	}))
	defer hs.Close()
	// Without the bundled tools the database holds few free pages to
	// absorb the steps after the disk fills.
	p := startRawStdio(t, db, "NANO_VM_MCP_POLICY="+uploadHTTPPolicy(t, hs.URL), "NANO_VM_MCP_NO_BUNDLED_TOOLS=1")
	httpGetArgs := httpGetUpload(t, hs.URL)
	if out, isErr := p.callRaw(1, "register_tool", httpGetArgs); isErr {
		t.Fatalf("register_tool: %v", out)
	}
	// The disk fills at the second step's call; the free pages inside the
	// database file take a few more steps; then a commit finds no space.
	var steps []any
	const n = 400
	for i := range n {
		steps = append(steps, map[string]any{"id": fmt.Sprintf("get%d", i), "type": "tool", "tool": "http_get", "args": map[string]any{"url": hs.URL + "/big"}})
	}
	prog := map[string]any{"name": "p", "steps": steps}
	out, isErr := p.callRaw(2, "run_program", map[string]any{"program": prog, "idempotency_key": "full-1"})
	t.Logf("run on a disk that fills: isErr=%v %v", isErr, out)
	if fill.Load() == nil {
		t.Fatal("the step never reached its HTTP call")
	}
	if steps, _ := out["steps"].(float64); !isErr || out["error"] != "disk_full" || !strings.Contains(fmt.Sprint(out["message"]), "disk full") || steps < 1 || steps >= n || out["trace_id"] == nil {
		t.Fatalf("the run does not say disk full: %v\nstderr:\n%s", out, p.stderr)
	}
	// Any other call that cannot store what it was asked to says so too.
	wasm, manifest := bigModule(t, 2<<20)
	if out, isErr := p.callRaw(5, "register_tool", uploadOf("raw_echo", wasm, manifest)); !isErr || out["error"] != "disk_full" {
		t.Fatalf("register_tool on a full disk: %v", out)
	}
	if err := os.Remove(fill.Load().(string)); err != nil {
		t.Fatal(err)
	}
	out, isErr = p.callRaw(3, "run_program", map[string]any{"program": prog, "idempotency_key": "full-1"})
	if isErr || out["status"] != "success" || out["steps"] != float64(n) {
		t.Fatalf("the same request after freeing space: %v\nstderr:\n%s", out, p.stderr)
	}
	if v, isErr := p.callRaw(4, "verify_audit", map[string]any{}); isErr || v["ok"] != true {
		t.Fatalf("verify_audit: %v", v)
	}
}

// uploadHTTPPolicy writes a policy whose uploads section grants an uploaded
// http_get the network to the test server at rawURL, as nothing grants an
// upload the network by default.
func uploadHTTPPolicy(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	// The bundled tools keep what their manifests ask, as without a
	// policy, so the database holds what it would otherwise.
	bundled, err := wasmtools.Bundled()
	if err != nil {
		t.Fatal(err)
	}
	var every []string
	for _, c := range tools.Capabilities() {
		every = append(every, strconv.Quote(string(c)))
	}
	doc := "policy_id: upload-http-test\ntool_capabilities:\n"
	for _, m := range bundled {
		doc += fmt.Sprintf("  %s: [%s]\n", m.Name, strings.Join(every, ", "))
	}
	doc += fmt.Sprintf("uploads:\n  tools:\n    http_get: {capabilities: [\"nanovm:http\"], allowed_hosts: [%q]}\n", u.Host)
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policy, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return policy
}

// httpGetManifest is the http_get test tool's manifest allowing host
// only, and its module.
func httpGetManifest(t *testing.T, host string) (map[string]any, []byte) {
	t.Helper()
	m := testModule(t, "http_get")
	return editedManifest(t, m, "", func(man map[string]any) { man["allowed_hosts"] = []string{host} }), m.Wasm
}

// httpGetUpload is register_tool's arguments for the http_get test tool,
// its manifest allowing the host of rawURL.
func httpGetUpload(t *testing.T, rawURL string) map[string]any {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	man, wasm := httpGetManifest(t, u.Host)
	return uploadOf("http_get", wasm, man)
}

// httpGetToolsDir is a tools folder holding http_get, allowed to reach
// host only.
func httpGetToolsDir(t *testing.T, host string) string {
	t.Helper()
	dir := t.TempDir()
	man, wasm := httpGetManifest(t, host)
	b, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeToolDir(filepath.Join(dir, "http_get"), b, wasm, "http_get.wasm"); err != nil {
		t.Fatal(err)
	}
	return dir
}
