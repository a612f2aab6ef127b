package primary

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// withOperator is openFunc with an operator handler that echoes the method
// and counts its calls; method "fail" fails with a coded error.
func withOperator(db string, calls *atomic.Int64) func(context.Context) (*Backend, error) {
	open := openFunc(db)
	return func(ctx context.Context) (*Backend, error) {
		b, err := open(ctx)
		if err != nil {
			return nil, err
		}
		b.Operator = func(ctx context.Context, method string, params json.RawMessage) (any, error) {
			calls.Add(1)
			if method == "fail" {
				return nil, &OperatorError{Code: "TOOL_NOT_FOUND", Message: "no tool x"}
			}
			return map[string]any{"method": method, "params": params}, nil
		}
		return b, nil
	}
}

// Ensure the CLI's operator session works: the token file is 0600 while
// the primary serves and gone after; requests reach the handler, and its
// coded errors come back coded.
func TestOperatorSession(t *testing.T) {
	db := dbPath(t)
	var calls atomic.Int64
	a := join(t, db, Options{Open: withOperator(db, &calls)})
	fi, err := os.Stat(OperatorTokenPath(db))
	if err != nil {
		t.Fatalf("no token file while serving: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := DialOperator(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Method string         `json:"method"`
		Params map[string]int `json:"params"`
	}
	if err := c.Call(ctx, "echo", map[string]int{"n": 7}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Method != "echo" || got.Params["n"] != 7 {
		t.Fatalf("echo: %+v", got)
	}
	err = c.Call(ctx, "fail", nil, nil)
	var oe *OperatorError
	if !errors.As(err, &oe) || oe.Code != "TOOL_NOT_FOUND" || oe.Message != "no tool x" {
		t.Fatalf("fail: %v, want the handler's coded error", err)
	}
	c.Close()
	if err := a.leave(); err != nil {
		t.Fatal(err)
	}
	a.done <- nil // for the cleanup
	if _, err := os.Stat(OperatorTokenPath(db)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("token file after the primary stopped: %v", err)
	}
	if _, err := DialOperator(ctx, db); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("DialOperator with no primary: %v, want fs.ErrNotExist", err)
	}
}

// rawLines sends lines on w and reads one answer per line from r.
func rawLines(t *testing.T, w io.Writer, r *bufio.Reader, lines ...string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range lines {
		if _, err := io.WriteString(w, l+"\n"); err != nil {
			t.Fatal(err)
		}
		b, err := r.ReadBytes('\n')
		if err != nil {
			t.Fatalf("after %s: %v", l, err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("answer %s: %v", b, err)
		}
		out = append(out, m)
	}
	return out
}

func errCode(m map[string]any) float64 {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(float64)
	return c
}

// Ensure no session becomes operator without the token as its first
// line: a socket connection or a forwarded client sending the hello with
// a wrong or missing token, or the right one after another message, is
// refused, and its operator requests reach nothing (method not found).
func TestOperatorHelloRefused(t *testing.T) {
	db := dbPath(t)
	var calls atomic.Int64
	join(t, db, Options{Open: withOperator(db, &calls)})
	token, err := os.ReadFile(OperatorTokenPath(db))
	if err != nil {
		t.Fatal(err)
	}
	hello := func(tok string) string {
		b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": OperatorHelloMethod, "params": map[string]string{"token": tok}})
		return string(b)
	}
	ping := `{"jsonrpc":"2.0","id":0,"method":"ping"}`
	opCall := `{"jsonrpc":"2.0","id":2,"method":"` + OperatorMethodPrefix + `echo","params":{}}`
	tests := []struct {
		name  string
		lines []string
	}{
		{"wrong token", []string{hello(strings.Repeat("0", len(token))), opCall}},
		{"missing token", []string{`{"jsonrpc":"2.0","id":1,"method":"` + OperatorHelloMethod + `"}`, opCall}},
		{"empty token", []string{hello(""), opCall}},
		{"right token, not first", []string{ping, hello(string(token)), opCall}},
		{"no hello", []string{opCall}},
	}
	for _, tt := range tests {
		for _, via := range []string{"socket", "forwarder"} {
			t.Run(tt.name+" via "+via, func(t *testing.T) {
				var w io.WriteCloser
				var r *bufio.Reader
				if via == "socket" {
					conn, err := net.Dial("unix", SocketPath(db))
					if err != nil {
						t.Fatal(err)
					}
					defer conn.Close()
					w, r = conn, bufio.NewReader(conn)
				} else {
					// A stdio process whose client writes these lines:
					// the forwarder sends them to the socket as they are.
					inR, inW := io.Pipe()
					outR, outW := io.Pipe()
					done := make(chan error, 1)
					go func() {
						done <- Serve(context.Background(), inR, outW, Options{DBPath: db, Open: withOperator(db, &calls), Logger: discard})
						outW.Close()
					}()
					defer func() { inW.Close(); io.Copy(io.Discard, outR); <-done }()
					w, r = inW, bufio.NewReader(outR)
				}
				before := calls.Load()
				answers := rawLines(t, w, r, tt.lines...)
				for i, l := range tt.lines {
					if strings.Contains(l, OperatorHelloMethod) && errCode(answers[i]) != codeOperatorRefused {
						t.Fatalf("hello answered %v, want a refusal (%d)", answers[i], codeOperatorRefused)
					}
				}
				last := answers[len(answers)-1]
				if errCode(last) != -32601 {
					t.Fatalf("operator request on an ordinary session answered %v, want method not found", last)
				}
				if calls.Load() != before {
					t.Fatal("the operator handler ran for an ordinary session")
				}
			})
		}
	}
	// The right token as the first line opens a session, via a forwarder too.
	conn, err := net.Dial("unix", SocketPath(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	answers := rawLines(t, conn, bufio.NewReader(conn), hello(string(token)), opCall)
	if answers[0]["result"] == nil || answers[1]["result"] == nil {
		t.Fatalf("the right token did not open an operator session: %v", answers)
	}
}
