package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// syncBuffer is a bytes.Buffer safe for a child's stderr and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor reports whether the buffer holds want within 30 seconds. A
// child's stderr is copied by its own goroutine, so a line the process
// wrote before answering on stdout may reach the buffer after the answer.
func (s *syncBuffer) waitFor(want string) bool {
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(s.String(), want); {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// stdioProc is one `nano-vm-mcp --transport stdio` process with an MCP
// client on its pipes.
type stdioProc struct {
	name   string
	cmd    *exec.Cmd
	c      *client.Client
	stderr *syncBuffer
	// initTook is from process start to the initialize answer.
	initTook time.Duration
}

// waitFile reports whether path exists within the time given.
func waitFile(path string, within time.Duration) bool {
	for deadline := time.Now().Add(within); ; {
		if _, err := os.Stat(path); err == nil {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stdioLaunch says how to start the binary as a stdio MCP server.
type stdioLaunch struct {
	name string   // the client's name ("test-" added), also in failure messages
	dir  string   // the child's working folder; "" for the test's
	env  []string // the child's whole environment
	args []string
	// protocol is the version to initialize; "" for the latest.
	protocol string
	// onNotification, when set, sees every notification from the start.
	onNotification func(mcp.JSONRPCNotification)
}

// launchStdio starts the binary as l says, its stderr kept, and
// initializes an MCP session within a minute; the client is closed when
// the test ends.
func launchStdio(t *testing.T, l stdioLaunch) *stdioProc {
	t.Helper()
	p := &stdioProc{name: l.name, stderr: &syncBuffer{}}
	tr := transport.NewStdioWithOptions(binary, nil, l.args, transport.WithCommandFunc(
		func(_ context.Context, command string, _ []string, args []string) (*exec.Cmd, error) {
			p.cmd = exec.Command(command, args...)
			p.cmd.Dir, p.cmd.Env, p.cmd.Stderr = l.dir, l.env, p.stderr
			return p.cmd, nil
		}))
	p.c = client.NewClient(tr)
	if l.onNotification != nil {
		p.c.OnNotification(l.onNotification)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := p.c.Start(ctx); err != nil {
		t.Fatalf("%s: start: %v", l.name, err)
	}
	t.Cleanup(func() { p.c.Close() })
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = cmp.Or(l.protocol, mcp.LATEST_PROTOCOL_VERSION)
	init.Params.ClientInfo = mcp.Implementation{Name: "test-" + l.name, Version: "1"}
	if _, err := p.c.Initialize(ctx, init); err != nil {
		t.Fatalf("%s: initialize: %v\nstderr:\n%s", l.name, err, p.stderr)
	}
	p.initTook = time.Since(start)
	return p
}

// startStdio starts a stdio server on db, with extra flags, and
// initializes an MCP session in protocol.
func startStdio(t *testing.T, name, db, protocol string, extra ...string) *stdioProc {
	t.Helper()
	return launchStdio(t, stdioLaunch{
		name: name, protocol: protocol,
		env:  append(os.Environ(), "NANO_VM_MCP_VAULT_KEY="+hex.EncodeToString(testVaultKey)),
		args: append([]string{"--transport", "stdio", "--db", db, "--cache-dir", sharedCache, "--no-bundled-tools"}, extra...),
	})
}

// isPrimary reports whether the process logged that it serves the
// database; every process logs its role before its first answer.
func (p *stdioProc) isPrimary() bool {
	p.stderr.waitFor("role=")
	return strings.Contains(p.stderr.String(), "role=primary")
}

// callTool calls a tool and decodes its structured result; a tool error
// is returned as an error.
func (p *stdioProc) callTool(ctx context.Context, name string, args map[string]any) (map[string]any, error) {
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = args
	res, err := p.c.CallTool(ctx, req)
	if err != nil {
		return nil, err
	}
	if res.IsError {
		var text string
		for _, c := range res.Content {
			if tc, ok := c.(mcp.TextContent); ok {
				text += tc.Text
			}
		}
		return nil, fmt.Errorf("%s: tool error: %s", name, text)
	}
	b, _ := json.Marshal(res.StructuredContent)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("%s: decode %s: %w", name, b, err)
	}
	return out, nil
}

func (p *stdioProc) mustCall(t *testing.T, name string, args map[string]any) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := p.callTool(ctx, name, args)
	if err != nil {
		t.Fatalf("%s: %v\nstderr:\n%s", p.name, err, p.stderr)
	}
	return out
}

// gatedCounter counts requests per path; a path with a gate blocks until
// the gate is closed, so a test can hold a tool call in flight.
type gatedCounter struct {
	mu    sync.Mutex
	hits  map[string]int
	gates map[string]chan struct{}
	first map[string]chan struct{} // closed at a gated path's first hit
}

func (g *gatedCounter) gate(path string) (release func(), firstHit <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	gate, first := make(chan struct{}), make(chan struct{})
	g.gates[path], g.first[path] = gate, first
	return sync.OnceFunc(func() { close(gate) }), first
}

func (g *gatedCounter) count(path string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.hits[path]
}

func (g *gatedCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	g.hits[r.URL.Path]++
	gate, first := g.gates[r.URL.Path], g.first[r.URL.Path]
	if first != nil && g.hits[r.URL.Path] == 1 {
		close(first)
	}
	g.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
		}
	}
	w.Write([]byte(`{"ok":true}`))
}

// Ensure three stdio servers started side by side on one database share
// it (issue 8): all answer initialize promptly, a tool registered through
// one runs in a program started through another, the trace is readable
// through the third, one idempotency key used through two at once runs
// once; the socket is 0600; and after the primary is killed with SIGKILL
// the survivors keep serving, finish a run the dead primary had in
// flight, and the audit chain verifies.
func TestSharedStdioServers(t *testing.T) {
	tests := []struct {
		name     string
		protocol string
	}{
		// Claude Code and Claude Desktop today: a session set up by
		// initialize, which a takeover re-initializes on the new primary.
		{name: "initialize handshake", protocol: "2025-06-18"},
		// The stateless revision (server/discover): nothing to re-initialize.
		{name: "stateless protocol", protocol: mcp.LATEST_PROTOCOL_VERSION},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { testSharedStdioServers(t, tc.protocol) })
	}
}

func testSharedStdioServers(t *testing.T, protocol string) {
	cnt := &gatedCounter{hits: map[string]int{}, gates: map[string]chan struct{}{}, first: map[string]chan struct{}{}}
	hs := httptest.NewServer(cnt)
	defer hs.Close()
	u, _ := url.Parse(hs.URL)
	db := filepath.Join(t.TempDir(), "shared.db")
	// The client's http_get upload may reach the test server: the policy's
	// uploads entry grants it, as nothing grants an upload the network by
	// default.
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policy, fmt.Appendf(nil, "policy_id: shared-test\ntool_capabilities: {}\nuploads:\n  tools:\n    http_get: {capabilities: [\"nanovm:http\"], allowed_hosts: [%q]}\n", u.Host), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NANO_VM_MCP_POLICY", policy)

	// Three processes at once: one wins the database, two forward.
	procs := make([]*stdioProc, 3)
	var wg sync.WaitGroup
	for i := range procs {
		wg.Go(func() { procs[i] = startStdio(t, fmt.Sprintf("p%d", i+1), db, protocol) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// Close the clients together: a primary whose client left keeps
	// serving the others until they leave too.
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, p := range procs {
			wg.Go(func() { p.c.Close() })
		}
		wg.Wait()
	})
	primaries := 0
	for _, p := range procs {
		t.Logf("%s: initialize answered %v after start (primary: %v)", p.name, p.initTook, p.isPrimary())
		// The acceptance asks for one second; the bound is generous
		// because the machine is shared, and the numbers are logged.
		if p.initTook > 5*time.Second {
			t.Errorf("%s: initialize took %v", p.name, p.initTook)
		}
		if p.isPrimary() {
			primaries++
		}
	}
	if primaries != 1 {
		t.Fatalf("%d primaries, want 1", primaries)
	}

	// The socket and the election lock are for this user only.
	for _, f := range []string{db + ".sock", db + ".sock.lock"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, perm)
		}
	}
	if fi, _ := os.Stat(db + ".sock"); fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("%s is not a socket: %v", db+".sock", fi.Mode())
	}

	// A tool registered through the first runs in a program started
	// through the second; the trace is read through the third.
	httpGetArgs := httpGetUpload(t, "http://"+u.Host)
	procs[0].mustCall(t, "register_tool", httpGetArgs)
	prog := func(paths ...string) map[string]any {
		var steps []any
		for i, p := range paths {
			steps = append(steps, map[string]any{"id": fmt.Sprintf("s%d", i), "type": "tool", "tool": "http_get", "args": map[string]any{"url": hs.URL + p}})
		}
		return map[string]any{"name": "shared", "steps": steps}
	}
	run := procs[1].mustCall(t, "run_program", map[string]any{"program": prog("/one")})
	if run["status"] != "success" || cnt.count("/one") != 1 {
		t.Fatalf("run through p2: %v (hits %d)", run, cnt.count("/one"))
	}
	trace := procs[2].mustCall(t, "get_trace", map[string]any{"trace_id": run["trace_id"]})
	if steps, _ := trace["steps"].([]any); trace["trace_id"] != run["trace_id"] || trace["status"] != "success" || len(steps) != 1 {
		b, _ := json.Marshal(trace)
		t.Fatalf("trace through p3 does not show the run: %s", b)
	}

	// One idempotency key through two processes at once: one run.
	release, firstHit := cnt.gate("/idem")
	results := make([]map[string]any, 2)
	errs := make([]error, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i, p := range []*stdioProc{procs[0], procs[2]} {
		wg.Go(func() {
			results[i], errs[i] = p.callTool(ctx, "run_program", map[string]any{"program": prog("/idem"), "idempotency_key": "same-key"})
		})
	}
	select {
	case <-firstHit:
	case <-ctx.Done():
		t.Fatal("the idempotent run never reached its tool")
	}
	// Give the duplicate time to arrive while the first holds the key;
	// the assertion below holds however the two interleave.
	time.Sleep(300 * time.Millisecond)
	release()
	wg.Wait()
	for i := range errs {
		if errs[i] != nil {
			t.Fatalf("idempotent call %d: %v", i, errs[i])
		}
	}
	if n := cnt.count("/idem"); n != 1 || results[0]["trace_id"] != results[1]["trace_id"] {
		t.Fatalf("same key through two processes: %d runs, traces %v and %v", n, results[0]["trace_id"], results[1]["trace_id"])
	}
	t.Logf("stored-outcome flags: %v, %v", results[0]["stored_outcome"], results[1]["stored_outcome"])

	// SIGKILL the primary while it runs a survivor's program.
	var primary *stdioProc
	var survivors []*stdioProc
	for _, p := range procs {
		if p.isPrimary() {
			primary = p
		} else {
			survivors = append(survivors, p)
		}
	}
	releaseK, firstK := cnt.gate("/k1")
	type outcome struct {
		res map[string]any
		err error
	}
	inFlight := make(chan outcome, 1)
	go func() {
		res, err := survivors[0].callTool(ctx, "run_program", map[string]any{"program": prog("/k0", "/k1", "/k2"), "idempotency_key": "killed-key"})
		inFlight <- outcome{res, err}
	}()
	select {
	case <-firstK:
	case <-ctx.Done():
		t.Fatal("the run never reached its second step")
	}
	killed := time.Now()
	if err := primary.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	primary.cmd.Process.Wait()
	releaseK() // the dead primary's tool call; the new primary calls again

	// Every survivor answers again, after at most a short pause.
	for _, p := range survivors {
		var last error
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
			cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
			_, last = p.callTool(cctx, "list_traces", map[string]any{})
			ccancel()
			if last == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if last != nil {
			t.Fatalf("%s after the primary died: %v\nstderr:\n%s", p.name, last, p.stderr)
		}
		t.Logf("%s answers %v after the kill", p.name, time.Since(killed))
	}
	// The run in flight at the kill was sent again under its idempotency
	// key and continued from its last durable step.
	got := <-inFlight
	if got.err != nil {
		t.Fatalf("run in flight at the kill: %v\nstderr:\n%s\n---\n%s", got.err, survivors[0].stderr, survivors[1].stderr)
	}
	if got.res["status"] != "success" || got.res["steps"] != float64(3) {
		t.Fatalf("run in flight at the kill: %v", got.res)
	}
	if cnt.count("/k0") != 1 || cnt.count("/k2") != 1 || cnt.count("/k1") > 2 {
		t.Fatalf("steps ran k0=%d k1=%d k2=%d times", cnt.count("/k0"), cnt.count("/k1"), cnt.count("/k2"))
	}
	newPrimaries := 0
	for _, p := range survivors {
		if p.isPrimary() {
			newPrimaries++
		}
	}
	if newPrimaries != 1 {
		t.Fatalf("%d survivors took the database over, want 1", newPrimaries)
	}
	rep := survivors[1].mustCall(t, "verify_audit", map[string]any{})
	// Steps: /one, /idem, and the three of the killed run.
	if rep["ok"] != true || rep["checked"] != float64(5) {
		t.Fatalf("verify_audit after the kill: %v", rep)
	}
}

// Ensure a stdio server whose database is held by a process serving no
// socket exits with an error naming the database within seconds instead
// of hanging.
func TestSharedStdioLockedDatabase(t *testing.T) {
	db := filepath.Join(t.TempDir(), "held.db")
	// A long `run` would hold it the same way; holding it from a child
	// that reads stdin keeps the test free of timing.
	holder := exec.Command(binary, "secret", "put", "x", "--db", db, "--no-bundled-tools", "--cache-dir", sharedCache)
	holder.Env = append(os.Environ(), "NANO_VM_MCP_VAULT_KEY="+hex.EncodeToString(testVaultKey))
	holdIn, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	holdErr := &syncBuffer{}
	holder.Stderr = holdErr
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { holdIn.Close(); holder.Wait() }()
	// Wait until the holder has created the file; it locks it in the
	// same call, and the server waits out the store's 2 s lock timeout.
	if !waitFile(db, 30*time.Second) {
		t.Fatalf("the holder never opened %s: %s", db, holdErr)
	}

	start := time.Now()
	srv := exec.Command(binary, "--transport", "stdio", "--db", db, "--no-bundled-tools", "--cache-dir", sharedCache)
	srv.Env = holder.Env
	var stderr bytes.Buffer
	srv.Stderr = &stderr
	srv.Stdin = strings.NewReader("") // a client that sends nothing
	err = srv.Run()
	took := time.Since(start)
	t.Logf("locked database: exit after %v: %s", took, strings.TrimSpace(stderr.String()))
	if err == nil {
		t.Fatal("the server started on a held database")
	}
	if !strings.Contains(stderr.String(), db) || !strings.Contains(stderr.String(), "locked") {
		t.Fatalf("the error does not name the database and the lock: %s", stderr.String())
	}
	if took > 30*time.Second {
		t.Fatalf("took %v to give up", took)
	}
}
