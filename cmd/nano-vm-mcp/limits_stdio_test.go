package main

import (
	"bufio"
	"bytes"
	bin "encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rawStdio is a stdio server process spoken to in raw JSON-RPC lines, so
// a test can send what no well-behaved client library would.
type rawStdio struct {
	t      *testing.T
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	lines  chan []byte
	stderr *syncBuffer
}

func startRawStdio(t *testing.T, db string, extraEnv ...string) *rawStdio {
	t.Helper()
	p := &rawStdio{t: t, stderr: &syncBuffer{}, lines: make(chan []byte, 16)}
	p.cmd = exec.Command(binary, "--transport", "stdio", "--db", db, "--cache-dir", sharedCache)
	p.cmd.Env = append(append(os.Environ(), "NANO_VM_MCP_VAULT_KEY="+hex.EncodeToString(testVaultKey)), extraEnv...)
	p.cmd.Stderr = p.stderr
	var err error
	if p.in, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.lines)
		br := bufio.NewReaderSize(stdout, 1<<20)
		for {
			line, err := br.ReadBytes('\n')
			if len(bytes.TrimSpace(line)) > 0 {
				p.lines <- line
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		p.in.Close()
		done := make(chan struct{})
		go func() {
			if p.cmd.ProcessState == nil {
				p.cmd.Wait()
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			p.cmd.Process.Kill()
			<-done
		}
	})
	p.send(`{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	if r := p.recv("init"); r["error"] != nil {
		t.Fatalf("initialize: %v", r)
	}
	p.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	return p
}

func (p *rawStdio) send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.in, line+"\n"); err != nil {
		p.t.Fatalf("write to the server: %v\nstderr:\n%s", err, p.stderr)
	}
}

// recv returns the response with the given id (its JSON text as a
// string: `"x"` or `7`), skipping notifications.
func (p *rawStdio) recv(id any) map[string]any {
	p.t.Helper()
	want, _ := json.Marshal(id)
	timeout := time.After(120 * time.Second)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("the server closed stdout waiting for %s; exit %v\nstderr:\n%s", want, p.cmd.Wait(), p.stderr)
			}
			var m map[string]any
			if err := json.Unmarshal(line, &m); err != nil {
				p.t.Fatalf("server wrote a non-JSON line: %q", line)
			}
			got, _ := json.Marshal(m["id"])
			if _, isNote := m["method"]; !isNote && string(got) == string(want) {
				return m
			}
		case <-timeout:
			p.t.Fatalf("no response %s\nstderr:\n%s", want, p.stderr)
		}
	}
}

func rpcCode(m map[string]any) float64 {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(float64)
	return c
}

// callRaw sends a tools/call and returns its result's parsed text and
// whether it was a tool error.
func (p *rawStdio) callRaw(id int, name string, args any) (map[string]any, bool) {
	p.t.Helper()
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": map[string]any{"name": name, "arguments": args}})
	p.send(string(b))
	r := p.recv(id)
	res, ok := r["result"].(map[string]any)
	if !ok {
		p.t.Fatalf("%s: %v", name, r)
	}
	var out map[string]any
	content, _ := res["content"].([]any)
	if len(content) > 0 {
		text, _ := content[0].(map[string]any)["text"].(string)
		json.Unmarshal([]byte(text), &out)
	}
	isErr, _ := res["isError"].(bool)
	return out, isErr
}

// oversizedLines are the messages each stdio test sends before a good
// request: a 9 MiB request (under the limit: answered by the server), one
// over the 32 MiB limit with its id at the end (answered -32600 under that
// id), and a line that is not JSON (-32700).
func sendOversized(t *testing.T, p *rawStdio) {
	t.Helper()
	nine := strings.Repeat("a", 9<<20)
	p.send(`{"jsonrpc":"2.0","id":101,"method":"tools/call","params":{"name":"list_traces","arguments":{"padding":"` + nine + `"}}}`)
	if r := p.recv(101); r["result"] == nil && r["error"] == nil {
		t.Fatalf("9 MiB message: %v", r)
	}
	big := strings.Repeat("b", 33<<20)
	p.send(`{"jsonrpc":"2.0","method":"tools/call","params":{"name":"list_traces","arguments":{"padding":"` + big + `"}},"id":102}`)
	r := p.recv(102)
	if rpcCode(r) != -32600 || !strings.Contains(fmt.Sprint(r["error"]), "too large") {
		t.Fatalf("33 MiB message: %v", r)
	}
	p.send(`{"jsonrpc":"2.0","id":103,"method":"tools/call","params":`)
	if r := p.recv(103); rpcCode(r) != -32700 {
		t.Fatalf("malformed message: %v", r)
	}
}

// Ensure a stdio server answers a 9 MiB message, one over its limit and a
// malformed one, then a good request on the same connection — as the
// primary, and as a forwarder to it, while the primary's other client is
// served and no takeover happens.
func TestStdioOversizedMessages(t *testing.T) {
	db := filepath.Join(t.TempDir(), "big.db")
	a := startRawStdio(t, db)
	b := startRawStdio(t, db)
	if !b.stderr.waitFor("role=forwarder") {
		t.Fatalf("the second process is not a forwarder:\n%s", b.stderr)
	}
	for _, p := range []*rawStdio{a, b} {
		sendOversized(t, p)
		if _, isErr := p.callRaw(104, "list_traces", map[string]any{"limit": 1}); isErr {
			t.Fatal("list_traces after the bad messages failed")
		}
	}
	// A local process on the primary's socket gets the same answers.
	sock, err := net.Dial("unix", db+".sock")
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	sr := bufio.NewReaderSize(sock, 1<<16)
	sockSend := func(line string) {
		t.Helper()
		if _, err := io.WriteString(sock, line+"\n"); err != nil {
			t.Fatalf("write to the socket: %v", err)
		}
	}
	sockRecv := func() map[string]any {
		t.Helper()
		sock.SetReadDeadline(time.Now().Add(120 * time.Second))
		for {
			line, err := sr.ReadBytes('\n')
			if err != nil {
				t.Fatalf("read the socket: %v", err)
			}
			var m map[string]any
			if json.Unmarshal(line, &m) == nil && m["method"] == nil {
				return m
			}
		}
	}
	sockSend(`{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"sock","version":"1"}}}`)
	sockRecv()
	sockSend(`{"jsonrpc":"2.0","method":"ping","params":{"pad":"` + strings.Repeat("c", 33<<20) + `"},"id":201}`)
	if r := sockRecv(); rpcCode(r) != -32600 || r["id"] != float64(201) {
		t.Fatalf("33 MiB message on the socket: %v", r)
	}
	sockSend(`{"jsonrpc":"2.0","id":202,"method":"ping"}`)
	if r := sockRecv(); r["id"] != float64(202) || r["error"] != nil {
		t.Fatalf("ping on the socket after it: %v", r)
	}
	// Both still serve, each through the same primary as before.
	a.callRaw(105, "list_traces", map[string]any{"limit": 1})
	b.callRaw(105, "list_traces", map[string]any{"limit": 1})
	if strings.Contains(b.stderr.String(), "role=primary") {
		t.Fatalf("the forwarder took over: the primary went away\n%s", b.stderr)
	}
}

// bigModule returns a valid tool module grown to about size bytes by a
// custom section, which the runtime validates and skips.
func bigModule(t *testing.T, size int) (wasm []byte, manifest string) {
	t.Helper()
	m := testModule(t, "raw_echo")
	wasm, manifest = m.Wasm, string(m.Manifest)
	name := "padding"
	payload := size - len(wasm)
	body := bin.AppendUvarint([]byte{}, uint64(len(name)))
	body = append(body, name...)
	body = append(body, make([]byte, payload)...)
	sec := append([]byte{0}, bin.AppendUvarint(nil, uint64(len(body)))...)
	return append(append(bytes.Clone(wasm), sec...), body...), manifest
}

// Ensure a long idempotency key and a long save_as are refused with
// invalid_argument over MCP on the real binary, and the log does not
// hold them.
func TestLongKeyRefused(t *testing.T) {
	p := startRawStdio(t, filepath.Join(t.TempDir(), "keys.db"), "NANO_VM_MCP_LOG_LEVEL=debug")
	prog := `{"name":"p","steps":[{"id":"v","type":"tool","tool":"validate_amount","args":{"amount":1}}]}`
	long := strings.Repeat("K", 4000)
	for i, args := range []map[string]any{
		{"program": prog, "idempotency_key": long},
		{"program": prog, "save_as": long},
	} {
		out, isErr := p.callRaw(10+i, "run_program", args)
		if !isErr || out["error"] != "invalid_argument" || !strings.Contains(fmt.Sprint(out["message"]), "limit") {
			t.Fatalf("run_program %v: %v", i, out)
		}
	}
	if out, isErr := p.callRaw(20, "run_program", map[string]any{"program": prog, "idempotency_key": "fine-key"}); isErr || out["status"] != "success" {
		t.Fatalf("a good key after the long ones: %v", out)
	}
	if strings.Contains(p.stderr.String(), long[:100]) {
		t.Fatal("the log holds the long key")
	}
}
