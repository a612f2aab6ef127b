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

// Ensure the retry decision: list and read methods, read-only and
// idempotent tools, and runs with an idempotency key are sent again;
// anything else is not.
func TestRetryable(t *testing.T) {
	p := retryPolicy{safeTools: map[string]bool{}}
	p.learnTools(json.RawMessage(`{"tools":[
		{"name":"get_trace","annotations":{"readOnlyHint":true}},
		{"name":"register_tool","annotations":{"readOnlyHint":false,"idempotentHint":true}},
		{"name":"resume_program","annotations":{"readOnlyHint":false,"idempotentHint":false}}]}`))
	tests := []struct {
		name string
		msg  string
		want bool
	}{
		{name: "tools/list", msg: `{"id":1,"method":"tools/list"}`, want: true},
		{name: "resources/read", msg: `{"id":1,"method":"resources/read","params":{"uri":"x"}}`, want: true},
		{name: "read-only tool", msg: `{"id":1,"method":"tools/call","params":{"name":"get_trace","arguments":{"trace_id":"t"}}}`, want: true},
		{name: "idempotent tool", msg: `{"id":1,"method":"tools/call","params":{"name":"register_tool","arguments":{}}}`, want: true},
		{name: "run with a key", msg: `{"id":1,"method":"tools/call","params":{"name":"run_program","arguments":{"idempotency_key":"k"}}}`, want: true},
		{name: "run without a key", msg: `{"id":1,"method":"tools/call","params":{"name":"run_program","arguments":{}}}`, want: false},
		{name: "registered tool with a _meta key", msg: `{"id":1,"method":"tools/call","params":{"name":"echo","arguments":{"x":1},"_meta":{"nanovm/idempotency_key":"k"}}}`, want: true},
		{name: "registered tool with its own idempotency_key argument", msg: `{"id":1,"method":"tools/call","params":{"name":"echo","arguments":{"idempotency_key":"k"}}}`, want: false},
		{name: "registered tool without a key", msg: `{"id":1,"method":"tools/call","params":{"name":"echo","arguments":{"idempotency":"k"}}}`, want: false},
		{name: "run with an empty key", msg: `{"id":1,"method":"tools/call","params":{"name":"run_program","arguments":{"idempotency_key":""}}}`, want: false},
		{name: "non-idempotent tool", msg: `{"id":1,"method":"tools/call","params":{"name":"resume_program","arguments":{}}}`, want: false},
		{name: "unknown tool", msg: `{"id":1,"method":"tools/call","params":{"name":"nope"}}`, want: false},
		{name: "unknown method", msg: `{"id":1,"method":"tasks/cancel"}`, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := parseEnvelope([]byte(tc.msg))
			if err != nil {
				t.Fatal(err)
			}
			if got := p.retryable(e); got != tc.want {
				t.Fatalf("retryable = %v, want %v", got, tc.want)
			}
		})
	}
}

// fakePrimary is the test's side of an upstream connection: it reads the
// forwarder's lines and answers what the test tells it to.
type fakePrimary struct {
	conn  net.Conn
	lines *bufio.Scanner
}

func (p *fakePrimary) next(t *testing.T) envelope {
	t.Helper()
	if !p.lines.Scan() {
		t.Fatalf("upstream: no message: %v", p.lines.Err())
	}
	e, err := parseEnvelope(p.lines.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (p *fakePrimary) answer(t *testing.T, id json.RawMessage, result string) {
	t.Helper()
	if _, err := p.conn.Write([]byte(`{"jsonrpc":"2.0","id":` + string(id) + `,"result":` + result + "}\n")); err != nil {
		t.Fatal(err)
	}
}

// Ensure a takeover: the forwarder re-initializes the session: initialize
// again (its answer swallowed) and notifications/initialized to the new primary, resends a
// retryable request, and answers a non-retryable one with an error; the
// client sees exactly one answer per request.
func TestForwarderTakeover(t *testing.T) {
	ups := make(chan net.Conn, 2)
	connect := func(context.Context) (upstream, error) {
		c, s := net.Pipe()
		ups <- s
		return c, nil
	}
	clientR, toFwd := io.Pipe()
	fromFwd, clientW := io.Pipe()
	f := newForwarder(clientW, discard, connect)
	done := make(chan error, 1)
	go func() { done <- f.run(context.Background(), clientR) }()
	out := bufio.NewScanner(fromFwd)
	send := func(s string) {
		if _, err := toFwd.Write([]byte(s + "\n")); err != nil {
			t.Fatal(err)
		}
	}

	first := &fakePrimary{conn: <-ups}
	first.lines = bufio.NewScanner(first.conn)
	send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}`)
	e := first.next(t)
	first.answer(t, e.ID, `{"protocolVersion":"2025-06-18"}`)
	if !out.Scan() || !strings.Contains(out.Text(), `"id":0`) {
		t.Fatalf("initialize answer: %q", out.Text())
	}
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	first.next(t)
	send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run_program","arguments":{"idempotency_key":"k"}}}`)
	first.next(t)
	send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"run_program","arguments":{}}}`)
	first.next(t)
	first.conn.Close() // the primary dies with both in flight

	// The unsafe request is answered with an error at once.
	if !out.Scan() {
		t.Fatal(out.Err())
	}
	var lostAnswer struct {
		ID    json.RawMessage `json:"id"`
		Error struct {
			Code int `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(out.Bytes(), &lostAnswer); err != nil || string(lostAnswer.ID) != "2" || lostAnswer.Error.Code != codePrimaryLost {
		t.Fatalf("answer to the unsafe request: %s", out.Text())
	}

	second := &fakePrimary{conn: <-ups}
	second.lines = bufio.NewScanner(second.conn)
	reinit := second.next(t)
	if reinit.Method != "initialize" || !strings.HasPrefix(string(reinit.ID), `"nano-vm-mcp/reinit-`) {
		t.Fatalf("first message to the new primary: %+v", reinit)
	}
	second.answer(t, reinit.ID, `{"protocolVersion":"2025-06-18"}`)
	if e := second.next(t); e.Method != "notifications/initialized" {
		t.Fatalf("second message to the new primary: %+v", e)
	}
	retried := second.next(t)
	if string(retried.ID) != "1" || retried.Method != "tools/call" {
		t.Fatalf("retried request: %+v", retried)
	}
	second.answer(t, retried.ID, `{"content":[]}`)
	if !out.Scan() || !strings.HasPrefix(out.Text(), `{"jsonrpc":"2.0","id":1,"result"`) {
		t.Fatalf("answer to the retried request: %q", out.Text())
	}

	toFwd.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the forwarder did not stop when its client left")
	}
}

// FuzzParseEnvelope ensures the forwarder's decoder never panics, and that
// a re-initialize id it writes reads back.
func FuzzParseEnvelope(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run_program","arguments":{"idempotency_key":"k"}}}`,
		`{"jsonrpc":"2.0","id":"a","result":{"tools":[{"name":"x","annotations":{"readOnlyHint":true}}]}}`,
		`{"id":null,"method":"notifications/cancelled","params":{"requestId":3}}`,
		`[1,2]`, `"x"`, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := parseEnvelope(line)
		if err != nil {
			return
		}
		p := retryPolicy{safeTools: map[string]bool{}}
		p.retryable(e)
		p.learnTools(json.RawMessage(e.Result))
		_ = idKey(e.ID)
		out, err := withID(line, "nano-vm-mcp/reinit-1")
		if err != nil {
			return
		}
		back, err := parseEnvelope(out)
		if err != nil || idKey(back.ID) != `"nano-vm-mcp/reinit-1"` {
			t.Fatalf("withID(%q) = %q: %+v %v", line, out, back, err)
		}
	})
}
