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

// Ensure an oversized line is skipped to its newline, reported with the
// id it carries wherever that id sits, and the lines after it are read.
func TestReadLinesOversized(t *testing.T) {
	withMaxLine(t, 64)
	big := strings.Repeat("x", 200)
	tests := []struct {
		name     string
		in       string
		dropTorn bool
		wantIDs  []string // ids of the oversized lines, "" for none
		wantOK   []string // the lines read
	}{
		{name: "id first", in: `{"jsonrpc":"2.0","id":7,"method":"m","params":{"s":"` + big + `"}}` + "\n" + `{"id":8}` + "\n",
			wantIDs: []string{"7"}, wantOK: []string{`{"id":8}`}},
		{name: "id last", in: `{"jsonrpc":"2.0","method":"m","params":{"s":"` + big + `","id":99},"id":"abc"}` + "\n" + `{"id":8}` + "\n",
			wantIDs: []string{`"abc"`}, wantOK: []string{`{"id":8}`}},
		{name: "id only nested", in: `{"method":"m","params":{"id":5,"s":"` + big + `"}}` + "\n",
			wantIDs: []string{""}},
		{name: "escaped quote in string", in: `{"method":"m","params":{"s":"\",\"id\":3,` + big + `"},"id":4}` + "\n",
			wantIDs: []string{"4"}},
		{name: "not json", in: big + "\n" + `{"id":1}` + "\n", wantIDs: []string{""}, wantOK: []string{`{"id":1}`}},
		{name: "object id refused", in: `{"id":{"a":1},"s":"` + big + `"}` + "\n", wantIDs: []string{""}},
		{name: "two in a row", in: `{"id":1,"s":"` + big + `"}` + "\n" + `{"id":2,"s":"` + big + `"}` + "\n" + "{}\n",
			wantIDs: []string{"1", "2"}, wantOK: []string{"{}"}},
		{name: "torn last line kept", in: `{"id":1,"s":"` + big + `"}`, wantIDs: []string{"1"}},
		{name: "torn last line dropped", in: `{"id":1,"s":"` + big + `"}`, dropTorn: true},
		{name: "exactly the limit", in: `{"id":1,"s":"` + strings.Repeat("y", 64-15) + `"}` + "\n", wantOK: []string{`{"id":1,"s":"` + strings.Repeat("y", 64-15) + `"}`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ids, ok []string
			err := readLines(strings.NewReader(tc.in), tc.dropTorn, func(l []byte) { ok = append(ok, string(l)) },
				func(o oversized) {
					ids = append(ids, string(o.id))
					if o.n <= int64(maxLine()) {
						t.Errorf("oversized line reported as %d bytes", o.n)
					}
				})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(ids, "|") != strings.Join(tc.wantIDs, "|") {
				t.Errorf("oversized ids %q, want %q", ids, tc.wantIDs)
			}
			if strings.Join(ok, "|") != strings.Join(tc.wantOK, "|") {
				t.Errorf("lines %q, want %q", ok, tc.wantOK)
			}
		})
	}
}

// Ensure the id of a message that does not parse is recovered when it
// can be.
func TestRecoverID(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"id":12,"method":}`, "12"},
		{`{"jsonrpc":"2.0","id":"x-1","method":"tools/call","params":{`, ""}, // id value never ended? it did: ends at ','
		{`[1,2]`, ""},
		{`{"id":null}`, ""},
		{`{"id":true,"x":1}`, ""},
		{`{"ID":1,"x":1}`, ""},
	}
	tests[1].want = `"x-1"`
	for _, tc := range tests {
		if got := string(recoverID([]byte(tc.in))); got != tc.want {
			t.Errorf("recoverID(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzIDScanner checks the id scanner never panics and that any id it
// reports is a JSON number or string.
func FuzzIDScanner(f *testing.F) {
	for _, s := range []string{`{"id":1}`, `{"a":"\"","id":"q"}`, `{"id":[1]}`, `}}{{`, `{"id":`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		id := recoverID(b)
		if id == nil {
			return
		}
		var v any
		if err := json.Unmarshal(id, &v); err != nil {
			t.Fatalf("id %q is not JSON: %v", id, err)
		}
		switch v.(type) {
		case string, float64:
		default:
			t.Fatalf("id %q is a %T", id, v)
		}
	})
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
