package mcpserver

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/runtime"
)

// Ensure program and input are accepted as objects or as strings holding
// one, and everything else is refused naming the argument.
func TestObjectArg(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		want    string
		wantErr string
	}{
		{name: "absent", raw: ``, want: ``},
		{name: "null", raw: `null`, want: ``},
		{name: "object", raw: `{"a":1}`, want: `{"a":1}`},
		{name: "stringified", raw: `"{\"a\":1}"`, want: `{"a":1}`},
		{name: "stringified with space", raw: `"  {\"a\":1} "`, want: `{"a":1}`},
		{name: "string not object", raw: `"steps"`, wantErr: "does not start with '{'"},
		{name: "broken string", raw: `"{\"a\":"`, wantErr: "not valid JSON"},
		{name: "array", raw: `[1]`, wantErr: "got an array"},
		{name: "number", raw: `3`, wantErr: "got a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := objectArg("program", json.RawMessage(tt.raw))
			if tt.wantErr != "" {
				if e, ok := runtime.AsError(err); !ok || e.Code != runtime.CodeInvalidArgument || !strings.Contains(e.Message, tt.wantErr) || !strings.Contains(e.Message, `"program"`) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %s %v, want %s", got, err, tt.want)
			}
		})
	}
}

// FuzzDecodeArgs ensures the argument decoder never panics and every
// refusal is an invalid_argument error.
func FuzzDecodeArgs(f *testing.F) {
	for _, seed := range []string{`{}`, `{"program":{"steps":[]},"input":"{}"}`, `{"trace_id":1}`, `{"x":1}`, `[1]`, `null`, `{"limit":1.5}`, `{"program":"{"}`, `{} {}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var a runArgs
		if err := decodeArgsJSON(raw, &a); err != nil {
			if e, ok := runtime.AsError(err); !ok || e.Code != runtime.CodeInvalidArgument {
				t.Fatalf("decode error is not invalid_argument: %v", err)
			}
			return
		}
		if _, err := objectArg("program", a.Program); err != nil {
			if _, ok := runtime.AsError(err); !ok {
				t.Fatalf("objectArg: %v", err)
			}
		}
		if _, err := objectMap("input", a.Input); err != nil {
			if _, ok := runtime.AsError(err); !ok {
				t.Fatalf("objectMap: %v", err)
			}
		}
		var tr traceArgs
		_ = decodeArgsJSON(raw, &tr)
	})
}
