package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
)

// listChangedOf returns a channel receiving every tools/list_changed p's
// client gets from now on.
func listChangedOf(p *stdioProc) <-chan struct{} {
	ch := make(chan struct{}, 64)
	p.c.OnNotification(func(n mcp.JSONRPCNotification) {
		if n.Method == string(mcp.MethodNotificationToolsListChanged) {
			ch <- struct{}{}
		}
	})
	return ch
}

func awaitChange(t *testing.T, p *stdioProc, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: no notifications/tools/list_changed after %s\nstderr:\n%s", p.name, what, p.stderr)
	}
}

func listedNames(t *testing.T, p *stdioProc) map[string]bool {
	t.Helper()
	res, err := p.c.ListTools(context.Background(), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatalf("%s: tools/list: %v", p.name, err)
	}
	out := map[string]bool{}
	for _, tl := range res.Tools {
		out[tl.Name] = true
	}
	return out
}

// Ensure, over the real binary on stdio, two processes sharing one
// database: a tool registered through one process is announced by
// notifications/tools/list_changed to the other's client (forwarded
// sessions and the primary's own alike) and listed there; calling it
// directly through the other runs it with an audit verify_audit accepts,
// and an idempotency key in _meta returns the stored outcome across
// processes.
func TestSharedExposedTools(t *testing.T) {
	db := filepath.Join(t.TempDir(), "exposed.db")
	p1 := startStdio(t, "p1", db, "2025-06-18")
	p2 := startStdio(t, "p2", db, "2025-06-18")
	if p1.isPrimary() == p2.isPrimary() {
		t.Fatalf("want one primary: p1 %v, p2 %v", p1.isPrimary(), p2.isPrimary())
	}
	ch1, ch2 := listChangedOf(p1), listChangedOf(p2)
	if listedNames(t, p2)["echo_a"] {
		t.Fatal("echo_a listed before it is registered")
	}

	echo := testModule(t, "raw_echo")
	register := func(p *stdioProc, name string) {
		p.mustCall(t, "register_tool", uploadOf(name, echo.Wasm, editedManifest(t, echo, name, nil)))
	}

	register(p1, "echo_a")
	awaitChange(t, p2, ch2, "p1 registered echo_a")
	if !listedNames(t, p2)["echo_a"] {
		t.Fatal("p2 does not list echo_a after list_changed")
	}
	register(p2, "echo_b")
	awaitChange(t, p1, ch1, "p2 registered echo_b")
	if !listedNames(t, p1)["echo_b"] {
		t.Fatal("p1 does not list echo_b after list_changed")
	}

	out := p2.mustCall(t, "echo_a", map[string]any{"raw": `{"n":1}`})
	id, _ := out["trace_id"].(string)
	if b, _ := json.Marshal(out["output"]); id == "" || string(b) != `{"n":1}` {
		t.Fatalf("echo_a through p2: %v", out)
	}
	if v := p1.mustCall(t, "verify_audit", map[string]any{"trace_id": id}); v["ok"] != true {
		t.Fatalf("verify_audit: %v", v)
	}

	callKey := func(p *stdioProc) map[string]any {
		req := mcp.CallToolRequest{}
		req.Params.Name = "echo_b"
		req.Params.Arguments = map[string]any{"raw": `[1]`}
		req.Params.Meta = &mcp.Meta{AdditionalFields: map[string]any{"nanovm/idempotency_key": "k-1"}}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		res, err := p.c.CallTool(ctx, req)
		if err != nil || res.IsError {
			t.Fatalf("%s: echo_b: %v %+v", p.name, err, res)
		}
		b, _ := json.Marshal(res.StructuredContent)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return m
	}
	first, again := callKey(p1), callKey(p2)
	if first["trace_id"] != again["trace_id"] || again["stored_outcome"] != true {
		t.Fatalf("first %v, again %v", first, again)
	}

	p1.mustCall(t, "remove_tool", map[string]any{"name": "echo_a"})
	awaitChange(t, p2, ch2, "p1 removed echo_a")
	if listedNames(t, p2)["echo_a"] {
		t.Fatal("p2 still lists echo_a after its removal")
	}
}

// Ensure a bad --expose-tools or NANO_VM_MCP_EXPOSE_TOOLS stops serve at
// start, naming the flag and the value.
func TestExposeToolsFlagRefused(t *testing.T) {
	db := filepath.Join(t.TempDir(), "x.db")
	code, stderr := runStart(t, "", "serve", "--db", db, "--expose-tools", "a b")
	if code == 0 || !strings.Contains(stderr, "--expose-tools") || !strings.Contains(stderr, `"a b" is not a tool name`) {
		t.Fatalf("flag: exit %d\n%s", code, stderr)
	}
	t.Setenv("NANO_VM_MCP_EXPOSE_TOOLS", ",")
	code, stderr = runStart(t, "", "serve", "--db", db)
	if code == 0 || !strings.Contains(stderr, "NANO_VM_MCP_EXPOSE_TOOLS") || !strings.Contains(stderr, "names no tool") {
		t.Fatalf("env: exit %d\n%s", code, stderr)
	}
}
