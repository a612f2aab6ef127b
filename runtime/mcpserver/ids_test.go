package mcpserver

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/nanovm/nano-vm-mcp/runtime"
)

// lockedBuffer is a log buffer safe to write and read at once: its writes
// go through stdio's lineLocked, under the lock String takes.
type lockedBuffer struct {
	lineLocked
	b bytes.Buffer
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// notLogged fails tb if the log holds v; what names v in the failure.
func (l *lockedBuffer) notLogged(tb testing.TB, v, what string) {
	tb.Helper()
	if strings.Contains(l.String(), v) {
		tb.Fatalf("the log holds a long %s whole", what)
	}
}

// Ensure every id and key a client passes is checked against its limits:
// too long, or holding a control character, it is an invalid_argument
// error naming the argument and the limit, with the value clipped, and
// never an internal error; the log never holds the whole value.
func TestIDArgumentLimits(t *testing.T) {
	s, c, logs := loggedClient(t, &Options{AllowToolUpload: true})

	long := strings.Repeat("k", 5000)
	prog := `{"name":"p","steps":[{"id":"v","type":"tool","tool":"validate_amount","args":{"amount":1}}]}`
	tests := []struct {
		tool, arg string
		args      map[string]any
		limit     string
	}{
		{"run_program", "idempotency_key", map[string]any{"program": prog, "idempotency_key": long}, "255-byte"},
		{"run_program", "idempotency_key", map[string]any{"program": prog, "idempotency_key": "a\nb"}, "control character"},
		{"run_program", "save_as", map[string]any{"program": prog, "save_as": long}, "256-byte"},
		{"run_program", "save_as", map[string]any{"program": prog, "save_as": "x\x00y"}, "control character"},
		{"run_program", "program_id", map[string]any{"program_id": long}, "256-byte"},
		{"get_trace", "trace_id", map[string]any{"trace_id": long}, "256-byte"},
		{"resume_program", "trace_id", map[string]any{"trace_id": long, "payload": map[string]any{}}, "256-byte"},
		{"get_program", "program_id", map[string]any{"program_id": long}, "256-byte"},
		{"delete_program", "program_id", map[string]any{"program_id": long}, "256-byte"},
		{"get_tool", "name", map[string]any{"name": long}, "256-byte"},
		{"put_secret", "id", map[string]any{"id": long, "value": "v"}, "1..128"},
		{"put_secret", "id", map[string]any{"id": "a/b", "value": "v"}, "[A-Za-z0-9._-]"},
		{"verify_audit", "trace_id", map[string]any{"trace_id": long}, "256-byte"},
		{"verify_audit", "execution_id", map[string]any{"execution_id": long}, "256-byte"},
		{"list_traces", "cursor", map[string]any{"cursor": long}, "1024-byte"},
	}
	for _, tc := range tests {
		t.Run(tc.tool+"/"+tc.arg, func(t *testing.T) {
			found := false
			for _, d := range s.defs {
				found = found || d.name == tc.tool
			}
			if !found {
				t.Fatalf("no tool %s", tc.tool)
			}
			e := toolErr(t, tc.tool, call(t, c, tc.tool, tc.args))
			msg, _ := e["message"].(string)
			if e["error"] != "invalid_argument" || !strings.Contains(msg, `"`+tc.arg+`"`) || !strings.Contains(msg, tc.limit) {
				t.Fatalf("got %v", e)
			}
			if len(msg) > 400 {
				t.Fatalf("the message is %d bytes: the value was not clipped: %.200s", len(msg), msg)
			}
		})
	}
	logs.notLogged(t, long[:200], "value")
}

// Ensure the ids in resource URIs (nanovm://trace/{id}, program/{id},
// tool/{name}) are held to the same limits as the tools' arguments: past
// the limit, or with a control character, the read is refused naming the
// limit, with the value clipped, and neither the answer nor the log holds
// it whole. Before, the whole id came back in "no trace …".
func TestResourceIDLimits(t *testing.T) {
	_, c, logs := loggedClient(t, &Options{})
	long := strings.Repeat("k", 5000)
	for _, tc := range []struct{ uri, limit string }{
		{"nanovm://trace/" + long, "256-byte"},
		{"nanovm://program/" + long, "256-byte"},
		{"nanovm://tool/" + long, "256-byte"},
		{"nanovm://trace/a%01b", "control character"},
	} {
		t.Run(tc.uri[:min(len(tc.uri), 24)], func(t *testing.T) {
			_, err := c.ReadResource(context.Background(), mcp.ReadResourceRequest{Params: mcp.ReadResourceParams{URI: tc.uri}})
			if err == nil || !strings.Contains(err.Error(), tc.limit) {
				t.Fatalf("ReadResource = %v; want a refusal naming %q", err, tc.limit)
			}
			if len(err.Error()) > 400 {
				t.Fatalf("the error is %d bytes: the id was not clipped: %.200s", len(err.Error()), err)
			}
		})
	}
	logs.notLogged(t, long[:200], "id")
}

// Ensure an enumerated argument with a value outside its set (resume's
// source, list_traces' status) is refused quoting only an excerpt of it,
// as ids are: the refusal of a 1 MiB value stays short and the log never
// holds it whole. Before, the answer quoted 4 KiB of it.
func TestEnumArgumentClipped(t *testing.T) {
	_, c, logs := loggedClient(t, &Options{})
	long := strings.Repeat("S", 1<<20)
	for _, tc := range []struct {
		tool string
		args map[string]any
	}{
		{"resume_program", map[string]any{"trace_id": "t", "payload": map[string]any{}, "source": long}},
		{"list_traces", map[string]any{"status": long}},
	} {
		t.Run(tc.tool, func(t *testing.T) {
			e := toolErr(t, tc.tool, call(t, c, tc.tool, tc.args))
			msg, _ := e["message"].(string)
			if e["error"] != "invalid_argument" || !strings.Contains(msg, "is not one of") || len(msg) > 400 {
				t.Fatalf("got %d bytes: %.300v", len(msg), e)
			}
		})
	}
	logs.notLogged(t, long[:200], "value")
}

// loggedClient is an in-process client of New(opts) over a fresh runtime,
// the server's log kept at debug level in logs; the server is shut down
// when the test ends.
func loggedClient(tb testing.TB, opts *Options) (s *Server, c *client.Client, logs *lockedBuffer) {
	tb.Helper()
	logs = &lockedBuffer{}
	logs.w = &logs.b
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s = New(openRuntime(tb, runtime.Config{}), opts)
	tb.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	c, _ = inProcess(tb, s)
	return s, c, logs
}
