package csdk

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/tools"
)

// needClang skips the test when clang cannot build wasm32-wasi here; the
// .wasm-free part of the repo must test without a toolchain.
func needClang(t *testing.T) {
	t.Helper()
	if missing := MissingToolchain(); missing != "" {
		t.Skip(missing + ": C SDK build not tested")
	}
}

// bigData is a tool holding 32 KiB of static data beside nanovm.h's own
// 32 KiB of buffers: more than one 64 KiB page with the stack.
const bigData = `#include "nanovm.h"
static const unsigned char table[32768] = {1, 2, 3};
int nv_main(nv_str in) {
	(void)in;
	int sum = 0;
	for (int i = 0; i < (int)sizeof table; i++) sum += table[i];
	nv_out("{\"sum\":"); nv_out_int(sum); nv_out("}");
	return 0;
}
`

// deepStack recurses as deep as its argument says, with a frame the
// optimiser cannot fold away (256 bytes, indexed by the depth).
const deepStack = `#include "nanovm.h"
static int down(int n) {
	volatile unsigned char frame[256];
	frame[n & 255] = (unsigned char)n;
	if (n == 0) return 0;
	int r = down(n - 1); /* frame lives across the call: no tail call */
	return r + frame[n & 255] % 2;
}
int nv_main(nv_str in) {
	nv_str v; double depth;
	if (!nv_get(in, "depth", &v) || !nv_number(v, &depth)) return nv_error("depth must be a number");
	nv_out("{\"r\":"); nv_out_int(down((int)depth)); nv_out("}");
	return 0;
}
`

// build writes src to dir/name.c and runs nanovm-cc on it.
func build(t *testing.T, dir, name, src string, extra ...string) ([]byte, string, error) {
	t.Helper()
	c := filepath.Join(dir, name+".c")
	if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name+".wasm")
	cmd := exec.Command("bash", append([]string{"nanovm-cc", c, "-o", out}, extra...)...)
	log, err := cmd.CombinedOutput()
	if err != nil {
		return nil, string(log), err
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return wasm, string(log), nil
}

// call registers wasm under name with isolation and calls it once.
func call(t *testing.T, name, isolation string, wasm []byte, args map[string]any) (tools.CallResult, error) {
	t.Helper()
	ctx := context.Background()
	h, err := tools.NewHost(ctx, tools.HostOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(ctx) })
	reg := tools.NewRegistry(h, tools.NewMemoryStore(), tools.RegistryOptions{})
	m, err := tools.ParseManifest([]byte(`{"name":"` + name + `","version":"1.0.0","input_schema":{"type":"object"},"isolation":"` + isolation + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Register(ctx, m, wasm); err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	return reg.Call(ctx, name, tools.CallRequest{Args: args})
}

// Ensure a tool with 32 KiB of static data builds with nanovm-cc and runs
// in both isolation modes, where the formerly documented
// --initial-memory=65536 refuses to link it.
func TestStaticDataBuildsAndRuns(t *testing.T) {
	needClang(t)
	dir := t.TempDir()
	_, log, err := build(t, dir, "big_old", bigData, "-Wl,-z,stack-size=8192", "-Wl,--initial-memory=65536")
	if err == nil || !strings.Contains(log, "initial memory too small") {
		t.Fatalf("old flags: err %v, log %s; want the linker's initial memory error", err, log)
	}
	wasm, log, err := build(t, dir, "big", bigData)
	if err != nil {
		t.Fatalf("nanovm-cc: %v\n%s", err, log)
	}
	for _, iso := range []string{tools.IsolationFresh, tools.IsolationPool} {
		res, err := call(t, "big", iso, wasm, nil)
		if err != nil {
			t.Fatalf("%s: %v", iso, err)
		}
		if got, ok := res.Output.(map[string]any); !ok || got["sum"] != float64(6) {
			t.Fatalf("%s: output %#v, want sum 6", iso, res.Output)
		}
	}
}

// Ensure the stack holds a deep honest recursion and an overflowing one
// traps rather than overwriting the tool's data and answering.
func TestStackOverflowTraps(t *testing.T) {
	needClang(t)
	wasm, log, err := build(t, t.TempDir(), "deep", deepStack)
	if err != nil {
		t.Fatalf("nanovm-cc: %v\n%s", err, log)
	}
	tests := []struct {
		name    string
		depth   float64
		want    float64
		wantErr string
	}{
		{name: "fits in 64 KiB", depth: 200, want: 100},
		// About 76 KiB of frames. With the stack after the data (no
		// --stack-first) this ran on through the static data, silently,
		// and answered.
		{name: "overflows a little", depth: 280, wantErr: "out of bounds memory access"},
		{name: "overflows a lot", depth: 100000, wantErr: "out of bounds memory access"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := call(t, "deep", tools.IsolationFresh, wasm, map[string]any{"depth": tt.depth})
			if tt.wantErr == "" {
				if got, ok := res.Output.(map[string]any); err != nil || !ok || got["r"] != tt.want {
					t.Fatalf("depth %v: %#v, %v; want r %v", tt.depth, res.Output, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("depth %v: err %v, output %#v; want %q", tt.depth, err, res.Output, tt.wantErr)
			}
		})
	}
}
