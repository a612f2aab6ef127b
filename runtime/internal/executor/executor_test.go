package executor

import (
	"context"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/tools"
	wasmtools "github.com/nanovm/nano-vm-mcp/wasm-tools"
)

// cacheDir is the compilation cache the tests share (TestMain), so each
// module is compiled once per test binary.
var cacheDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nanovm-executor-cache")
	if err != nil {
		panic(err)
	}
	cacheDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// newRegistry registers every bundled tool and, from the test modules,
// state_echo. Nothing here is about compile deadlines, so compiling has
// an hour: under -race on a busy shared machine a bundled tool took more
// than the default minute, and the tests failed on the clock alone.
func newRegistry(t *testing.T) *tools.Registry {
	t.Helper()
	ctx := context.Background()
	h, err := tools.NewHost(ctx, tools.HostOptions{CacheDir: cacheDir, ModuleLimits: tools.ModuleLimits{CompileTimeout: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(ctx) })
	reg := tools.NewRegistry(h, tools.NewMemoryStore(), tools.RegistryOptions{})
	mods, err := wasmtools.Bundled()
	if err != nil {
		t.Fatal(err)
	}
	test, err := wasmtools.TestTools()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range test {
		if m.Name == "state_echo" {
			mods = append(mods, m)
		}
	}
	for _, m := range mods {
		if m.Name == "jq" {
			// 6.5 MB of Go that no test here calls: compiling it would
			// cost every test seconds, a minute under -race.
			continue
		}
		man, err := tools.ParseManifest(m.Manifest)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Register(ctx, man, m.Wasm); err != nil {
			t.Fatal(err)
		}
	}
	return reg
}

// Ensure the executor never forwards the kernel's full state: without a
// projection the tool sees {}, with one it sees exactly what the
// projection returned, asked under the bare tool name even when pinned.
func TestExecuteStateProjection(t *testing.T) {
	ctx := context.Background()
	reg := newRegistry(t)
	rec, err := reg.Get(ctx, "state_echo")
	if err != nil {
		t.Fatal(err)
	}
	full := map[string]any{"order_id": "o-1", "amount": 5.0, "card": "4242", "nested": map[string]any{"x": true}}
	var asked []string
	keep := func(keys ...string) ProjectFunc {
		return func(tool ToolID, state map[string]any) map[string]any {
			asked = append(asked, tool.Name)
			out := map[string]any{}
			for _, k := range keys {
				if v, ok := state[k]; ok {
					out[k] = v
				}
			}
			return out
		}
	}
	tests := []struct {
		name string
		opts []Option
		tool string
		want map[string]any
	}{
		{name: "no projection sees nothing", tool: "state_echo", want: map[string]any{}},
		{name: "projection", opts: []Option{WithProjection(keep("order_id", "nested"))}, tool: "state_echo",
			want: map[string]any{"order_id": "o-1", "nested": map[string]any{"x": true}}},
		{name: "pinned ref", opts: []Option{WithProjection(keep("amount"))}, tool: "state_echo@sha256:" + rec.ModuleSHA256,
			want: map[string]any{"amount": 5.0}},
		{name: "projection to nil", opts: []Option{WithProjection(func(ToolID, map[string]any) map[string]any { return nil })}, tool: "state_echo",
			want: map[string]any{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			asked = nil
			res, err := New(reg, tt.opts...).Execute(ctx, kernel.ToolCall{Tool: tt.tool, State: full})
			if err != nil {
				t.Fatal(err)
			}
			got := res.Output.(map[string]any)["state"]
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("tool saw %#v, want %#v", got, tt.want)
			}
			for _, a := range asked {
				if a != "state_echo" {
					t.Fatalf("projection asked for tool %q, want the bare name", a)
				}
			}
		})
	}
	if len(full) != 4 || full["card"] != "4242" {
		t.Fatalf("executor changed the kernel's state: %v", full)
	}
}

// Ensure the adapter passes PENDING through, returns provenance, and turns
// a tool error into a Go error.
func TestExecute(t *testing.T) {
	ctx := context.Background()
	reg := newRegistry(t)
	ex := New(reg)
	tests := []struct {
		name    string
		call    kernel.ToolCall
		want    any
		wantErr string
	}{
		{name: "pending", call: kernel.ToolCall{Tool: "poll"}, want: "PENDING"},
		{name: "success", call: kernel.ToolCall{Tool: "poll", Args: map[string]any{"status": "SUCCESS"}}, want: "SUCCESS"},
		{name: "tool error", call: kernel.ToolCall{Tool: "validate_amount", Args: map[string]any{"amount": -1}}, wantErr: "amount must be positive"},
		{name: "unknown tool", call: kernel.ToolCall{Tool: "nope"}, wantErr: "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := ex.Execute(ctx, tt.call)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := res.Output
			if m, ok := got.(map[string]any); ok {
				got = m["payment_status"]
			}
			if got != tt.want || res.Provenance == nil || len(res.Provenance.ModuleSHA256) != 64 {
				t.Fatalf("result = %+v", res)
			}
		})
	}
}
