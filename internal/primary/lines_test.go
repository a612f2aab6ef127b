package primary

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// withMaxLine lowers the line limit for one test.
func withMaxLine(t *testing.T, n int) {
	t.Helper()
	old := lineLimit.Load()
	lineLimit.Store(int64(n))
	t.Cleanup(func() { lineLimit.Store(old) })
}

// Ensure a session over a real socket answers an oversized message and a
// malformed one with JSON-RPC errors under their ids, then serves the
// next request on the same connection.
func TestServeConnOversized(t *testing.T) {
	withMaxLine(t, 4096)
	db := dbPath(t)
	b, err := openFunc(db)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	srvConn, cliConn := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- serveConn(context.Background(), b.MCP, srvConn, "t", true, nil, discard) }()
	rd := bufio.NewReader(cliConn)
	send := func(s string) {
		t.Helper()
		go cliConn.Write([]byte(s + "\n"))
	}
	recv := func() map[string]any {
		t.Helper()
		cliConn.SetReadDeadline(time.Now().Add(30 * time.Second))
		line, err := rd.ReadBytes('\n')
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	errCode := func(m map[string]any) float64 {
		e, _ := m["error"].(map[string]any)
		c, _ := e["code"].(float64)
		return c
	}
	send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"s":"` + strings.Repeat("a", 10000) + `"}}}`)
	if m := recv(); errCode(m) != -32600 || m["id"] != float64(1) {
		t.Fatalf("oversized: %v", m)
	}
	send(`{"jsonrpc":"2.0","id":2,"method":`)
	if m := recv(); errCode(m) != -32700 || m["id"] != float64(2) {
		t.Fatalf("malformed: %v", m)
	}
	send(`[1]`)
	if m := recv(); errCode(m) != -32600 || m["id"] != nil {
		t.Fatalf("not an object: %v", m)
	}
	send(`{"jsonrpc":"2.0","id":3,"method":"ping"}`)
	if m := recv(); m["id"] != float64(3) || m["error"] != nil {
		t.Fatalf("ping after the bad messages: %v", m)
	}
	cliConn.Close()
	if err := <-done; err != nil {
		t.Fatalf("serveConn: %v", err)
	}
	_ = io.EOF
}
