package tools

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/internal/toolrecord"
	"github.com/nanovm/nano-vm-mcp/tools/internal/wasmbin"
)

// registerPlugin registers the named test plugin through RegisterPlugin,
// its manifest edited by edit.
func registerPlugin(t *testing.T, r *Registry, name string, edit func(*Manifest)) ([]toolrecord.Record, error) {
	t.Helper()
	m, wasm := editedModule(t, name, edit)
	if !r.IsPlugin(wasm) {
		t.Fatalf("%s: IsPlugin = false", name)
	}
	return r.RegisterPlugin(context.Background(), toolrecord.SourceOperator, m, wasm)
}

func names(recs []toolrecord.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Name)
	}
	return out
}

// TestExtismPluginShapes registers a hyper-mcp v1 and a v2 plugin, checks
// that each described tool became a registry entry sharing the module, and
// calls each: the plugin receives its shape's input under the tool's name.
func TestExtismPluginShapes(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	cases := []struct {
		plugin    string
		tools     []string
		call      string
		wantInput map[string]any
		wantLog   string
	}{
		{
			plugin: "extism_v1", tools: []string{"echo_v1"}, call: "echo_v1",
			wantInput: map[string]any{"params": map[string]any{"name": "echo_v1", "arguments": map[string]any{"msg": "hi"}}},
			wantLog:   "info: v1 call\n",
		},
		{
			plugin: "extism_v2", tools: []string{"echo_v2", "fetch_v2"}, call: "echo_v2",
			wantInput: map[string]any{
				"request": map[string]any{"name": "echo_v2", "arguments": map[string]any{"msg": "hi"}},
				"context": map[string]any{"id": "exec-1", "_meta": map[string]any{}},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.plugin, func(t *testing.T) {
			recs, err := registerPlugin(t, r, tc.plugin, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := names(recs); !reflect.DeepEqual(got, tc.tools) {
				t.Fatalf("registered %v, want %v", got, tc.tools)
			}
			for _, rec := range recs {
				if rec.ModuleSHA256 != recs[0].ModuleSHA256 {
					t.Errorf("%s: module %s, want the shared %s", rec.Name, rec.ModuleSHA256, recs[0].ModuleSHA256)
				}
			}
			tool, err := r.Resolve(ctx, tc.call)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(tool.Manifest.Description, "hyper-mcp") {
				t.Errorf("description %q not taken from the plugin", tool.Manifest.Description)
			}
			res, err := r.Call(ctx, tc.call, CallRequest{TraceID: "exec-1", Args: map[string]any{"msg": "hi"}})
			if err != nil {
				t.Fatalf("call: %v (log %q)", err, res.Log)
			}
			want := map[string]any{"plugin": strings.TrimPrefix(tc.plugin, "extism_"), "input": tc.wantInput}
			if !reflect.DeepEqual(res.Output, want) {
				t.Errorf("output %#v\nwant %#v", res.Output, want)
			}
			if res.Log != tc.wantLog {
				t.Errorf("log %q, want %q", res.Log, tc.wantLog)
			}
		})
	}
	// The described input schema is the tool's: v1's echo_v1 needs msg.
	if _, err := r.Call(ctx, "echo_v1", CallRequest{Args: map[string]any{}}); !errors.Is(err, ErrInvalidArgs) {
		t.Errorf("echo_v1 without msg: %v, want ErrInvalidArgs", err)
	}
	// Vars live for one call: the v2 plugin fails if a var from the call
	// before is still there.
	if _, err := r.Call(ctx, "echo_v2", CallRequest{}); err != nil {
		t.Errorf("second call of echo_v2: %v", err)
	}
}

// TestExtismUngrantedRefused: an import from extism:host/user is refused
// at registration, named, even when everything else is granted; an
// extism:host/env function outside the grant is refused naming the
// capability that would grant it. Nothing is registered.
func TestExtismUngrantedRefused(t *testing.T) {
	cases := []struct {
		name      string
		edit      func(*Manifest)
		want      []string
		wantNotIn string
	}{
		{name: "nothing granted", want: []string{
			"import extism:host/user.create_message is not offered",
			"import extism:host/env.http_request needs capability nanovm:http, not granted",
		}},
		{name: "http granted", edit: func(m *Manifest) {
			m.Capabilities = []string{string(CapHTTP)}
			m.AllowedHosts = []string{"127.0.0.1"}
		}, want: []string{"import extism:host/user.create_message is not offered"}, wantNotIn: "http_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRegistry(t)
			_, err := registerPlugin(t, r, "extism_ungranted", tc.edit)
			if !errors.Is(err, ErrImportNotGranted) {
				t.Fatalf("err = %v, want ErrImportNotGranted", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if tc.wantNotIn != "" && strings.Contains(err.Error(), tc.wantNotIn) {
				t.Errorf("error %q names %q, which was granted", err, tc.wantNotIn)
			}
			if recs, _ := r.List(context.Background()); len(recs) != 0 {
				t.Errorf("registered %v after a refusal", names(recs))
			}
		})
	}
	// A plain registration (RegisterAs) of a plugin goes through gate A too.
	r := newRegistry(t)
	mod := modules(t)["extism_ungranted"]
	m, _ := ParseManifest(mod.Manifest)
	if _, err := r.Register(context.Background(), m, mod.Wasm); !errors.Is(err, ErrImportNotGranted) {
		t.Errorf("Register: %v, want ErrImportNotGranted", err)
	}
}

// TestExtismLogNeedsGrant: the v1 plugin imports log_info, which is
// nanovm:log's: without it, registration is refused naming the import.
func TestExtismLogNeedsGrant(t *testing.T) {
	r := newRegistry(t)
	_, err := registerPlugin(t, r, "extism_v1", func(m *Manifest) { m.Capabilities = nil })
	if !errors.Is(err, ErrImportNotGranted) || !strings.Contains(err.Error(), "extism:host/env.log_info needs capability nanovm:log") {
		t.Fatalf("err = %v, want log_info refused for nanovm:log", err)
	}
}

// TestExtismHTTPAllowedHosts: http_request reaches a loopback server on
// the allowed host:port and is refused, naming the host, for another port
// and for another host; a redirect out of the allowed hosts is refused.
func TestExtismHTTPAllowedHosts(t *testing.T) {
	var hits int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "http://localhost:1/elsewhere", http.StatusFound)
			return
		}
		hits++
		fmt.Fprint(w, `{"content":[{"type":"text","text":"from server"}],"structuredContent":{"path":"`+r.URL.Path+`"}}`)
	}))
	defer srv.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the other server was reached")
	}))
	defer other.Close()
	u, _ := url.Parse(srv.URL)
	ou, _ := url.Parse(other.URL)

	cases := []struct {
		name    string
		request string
		want    any
		wantErr string
	}{
		{name: "allowed", request: srv.URL + "/ok", want: map[string]any{"path": "/ok"}},
		{name: "other port", request: other.URL + "/x", wantErr: "http_request to " + ou.Host + " refused"},
		{name: "other host", request: "http://localhost:" + u.Port() + "/x", wantErr: "http_request to localhost:" + u.Port() + " refused"},
		{name: "redirect out", request: srv.URL + "/redirect", wantErr: "a redirect left allowed_hosts"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRegistry(t)
			_, err := registerPlugin(t, r, "extism_v2", func(m *Manifest) {
				m.AllowedHosts = []string{u.Host}
				m.Config = map[string]string{"request": `{"url":"` + tc.request + `","method":"GET"}`}
			})
			if err != nil {
				t.Fatal(err)
			}
			res, err := r.Call(context.Background(), "fetch_v2", CallRequest{})
			if tc.wantErr != "" {
				if !errors.Is(err, ErrCapabilityDenied) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want ErrCapabilityDenied saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("call: %v (log %q)", err, res.Log)
			}
			if !reflect.DeepEqual(res.Output, tc.want) {
				t.Errorf("output %#v, want %#v", res.Output, tc.want)
			}
		})
	}
	if hits != 1 {
		t.Errorf("the allowed server answered %d requests, want 1", hits)
	}
}

// TestExtismLimits: a plugin's kernel memory, linear memory and time are
// held to the tool's limits like any tool's.
func TestExtismLimits(t *testing.T) {
	cases := []struct {
		mode string
		edit func(*Manifest)
		want error
		say  string
	}{
		{mode: "a", want: ErrMemoryLimit, say: "extism kernel memory"},
		{mode: "g", want: ErrMemoryLimit, say: "memory limit 4 MiB exceeded"},
		{mode: "s", edit: func(m *Manifest) { m.Limits.TimeoutMS = 50 }, want: ErrTimeout},
	}
	for _, tc := range cases {
		t.Run(tc.mode, func(t *testing.T) {
			h := newHost(t, HostOptions{})
			r := NewRegistry(h, NewMemoryStore(), RegistryOptions{})
			if _, err := registerPlugin(t, r, "extism_hog", func(m *Manifest) {
				m.Config = map[string]string{"mode": tc.mode}
				if tc.edit != nil {
					tc.edit(m)
				}
			}); err != nil {
				t.Fatal(err)
			}
			_, err := r.Call(context.Background(), "hog", CallRequest{})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.say) {
				t.Fatalf("err = %v, want %v saying %q", err, tc.want, tc.say)
			}
			if used := h.budget.used.Load(); used != 0 {
				t.Errorf("budget holds %d bytes after the call", used)
			}
		})
	}
}

// TestExtismNotAPlugin: RegisterPlugin refuses a module that is no Extism
// plugin, and a plugin's describe that names an invalid tool is refused.
func TestExtismNotAPlugin(t *testing.T) {
	r := newRegistry(t)
	mod := modules(t)["log_levels"]
	m, _ := ParseManifest(mod.Manifest)
	if r.IsPlugin(mod.Wasm) {
		t.Error("IsPlugin(log_levels) = true")
	}
	if _, err := r.RegisterPlugin(context.Background(), toolrecord.SourceOperator, m, mod.Wasm); !errors.Is(err, ErrInvalidModule) {
		t.Errorf("RegisterPlugin(log_levels): %v, want ErrInvalidModule", err)
	}
}

// TestExtismSignatures: gate A knows every extism:host/env function of
// Extism's go-sdk v1.7.1 (instantiateEnvModule), with the SDK's signature,
// and each in the capability the mapping gives it.
func TestExtismSignatures(t *testing.T) {
	const I, L = "i32", "i64"
	sdk := map[string]struct {
		params, results []string
		cap             Capability
	}{
		"alloc": {[]string{L}, []string{L}, CapStdio}, "free": {[]string{L}, nil, CapStdio},
		"load_u8": {[]string{L}, []string{I}, CapStdio}, "input_load_u8": {[]string{L}, []string{I}, CapStdio},
		"store_u64": {[]string{L, L}, nil, CapStdio}, "store_u8": {[]string{L, I}, nil, CapStdio},
		"input_set": {[]string{L, L}, nil, CapStdio}, "output_set": {[]string{L, L}, nil, CapStdio},
		"input_length": {nil, []string{L}, CapStdio}, "input_offset": {nil, []string{L}, CapStdio},
		"output_length": {nil, []string{L}, CapStdio}, "output_offset": {nil, []string{L}, CapStdio},
		"length": {[]string{L}, []string{L}, CapStdio}, "length_unsafe": {[]string{L}, []string{L}, CapStdio},
		"reset": {nil, nil, CapStdio}, "error_set": {[]string{L}, nil, CapStdio},
		"error_get": {nil, []string{L}, CapStdio}, "memory_bytes": {nil, []string{L}, CapStdio},
		"input_load_u64": {[]string{L}, []string{L}, CapStdio}, "load_u64": {[]string{L}, []string{L}, CapStdio},
		"config_get": {[]string{L}, []string{L}, CapStdio}, "var_get": {[]string{L}, []string{L}, CapStdio},
		"var_set": {[]string{L, L}, nil, CapStdio}, "get_log_level": {nil, []string{I}, CapStdio},
		"http_request": {[]string{L, L}, []string{L}, CapHTTP}, "http_status_code": {nil, []string{I}, CapHTTP},
		"http_headers": {nil, []string{L}, CapHTTP},
		"log_trace":    {[]string{L}, nil, CapLog}, "log_debug": {[]string{L}, nil, CapLog},
		"log_info": {[]string{L}, nil, CapLog}, "log_warn": {[]string{L}, nil, CapLog},
		"log_error": {[]string{L}, nil, CapLog},
	}
	h := newHost(t, HostOptions{})
	if len(extismFuncs) != len(sdk) {
		t.Errorf("%d extism functions, go-sdk has %d", len(extismFuncs), len(sdk))
	}
	for name, want := range sdk {
		imp := extismEnvModule + "." + name
		got, ok := h.hostSigs[imp]
		if !ok {
			t.Errorf("%s: not in the signature table", imp)
			continue
		}
		wantSig := fmt.Sprintf("(%s) -> (%s)", strings.Join(want.params, ", "), strings.Join(want.results, ", "))
		gotSig := fmt.Sprintf("(%s) -> (%s)", strings.Join(valNames(got.Params), ", "), strings.Join(valNames(got.Results), ", "))
		if gotSig != wantSig {
			t.Errorf("%s: %s, go-sdk has %s", imp, gotSig, wantSig)
		}
		if c := importCapability[imp]; c != want.cap {
			t.Errorf("%s: capability %s, want %s", imp, c, want.cap)
		}
	}
}

func valNames(ts []wasmbin.ValType) []string {
	var out []string
	for _, v := range ts {
		switch v {
		case wasmbin.I32:
			out = append(out, "i32")
		case wasmbin.I64:
			out = append(out, "i64")
		default:
			out = append(out, fmt.Sprint(v))
		}
	}
	return out
}

// TestExtismGateB: a plugin prepared past gate A (as if it had been
// admitted) still cannot link an extism:host/env function outside its
// set: the link set has no log_info, and the refusal names it. A function
// linked but not held by the call's own set refuses at call time.
func TestExtismGateB(t *testing.T) {
	h := newHost(t, HostOptions{})
	ctx := context.Background()
	m, cm := compiled(t, h, "extism_v1", func(m *Manifest) { m.Name = "echo_v1" })
	args := map[string]any{"msg": "x"}
	tool := prepared(t, h, m, cm, nil)
	_, err := tool.Call(ctx, CallRequest{Args: args})
	if !errors.Is(err, ErrImportNotGranted) || !strings.Contains(err.Error(), "extism:host/env.log_info needs capability nanovm:log") {
		t.Fatalf("unlinked: err = %v, want log_info refused", err)
	}
	tool = prepared(t, h, m, cm, []string{string(CapLog)})
	tool.caps = newCapSet(nil)
	_, err = tool.Call(ctx, CallRequest{Args: args})
	if !errors.Is(err, ErrTrap) || !strings.Contains(err.Error(), "log_info called outside a call that holds nanovm:log") {
		t.Fatalf("linked, not held: err = %v", err)
	}
}

// BenchmarkExtismCall is one call of the v1 echo plugin through the
// registry: a fresh instance, the kernel and the JSON both ways.
func BenchmarkExtismCall(b *testing.B) {
	ctx := context.Background()
	r := NewRegistry(newHost(b, HostOptions{}), NewMemoryStore(), RegistryOptions{})
	mod := modules(b)["extism_v1"]
	m, _ := ParseManifest(mod.Manifest)
	if _, err := r.RegisterPlugin(ctx, toolrecord.SourceOperator, m, mod.Wasm); err != nil {
		b.Fatal(err)
	}
	args := map[string]any{"msg": "hi"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Call(ctx, "echo_v1", CallRequest{Args: args}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestExtismOutputCap: a plugin's output (output_set) is held to the
// tool's stdout_bytes, at registration (describe) and in a call.
func TestExtismOutputCap(t *testing.T) {
	r := newRegistry(t)
	_, err := registerPlugin(t, r, "extism_v1", func(m *Manifest) { m.Limits.StdoutBytes = 64 })
	if !errors.Is(err, ErrOutputLimit) || !strings.Contains(err.Error(), "describe") {
		t.Fatalf("register under 64 bytes: %v, want describe's output refused", err)
	}
	if _, err := registerPlugin(t, r, "extism_v1", func(m *Manifest) { m.Limits.StdoutBytes = 200 }); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Call(context.Background(), "echo_v1", CallRequest{Args: map[string]any{"msg": "hi"}}); err != nil {
		t.Fatalf("small call: %v", err)
	}
	_, err = r.Call(context.Background(), "echo_v1", CallRequest{Args: map[string]any{"msg": strings.Repeat("x", 100)}})
	if !errors.Is(err, ErrOutputLimit) || !strings.Contains(err.Error(), "the limit is 200") {
		t.Fatalf("err = %v, want ErrOutputLimit at 200 bytes", err)
	}
}

// TestExtismClockRandom: a plugin's WASI clock and random source are the
// deterministic ones unless wasi:clock and wasi:random are granted.
func TestExtismClockRandom(t *testing.T) {
	call := func(caps ...string) string {
		t.Helper()
		r := newRegistry(t)
		if _, err := registerPlugin(t, r, "extism_hog", func(m *Manifest) {
			m.Config = map[string]string{"mode": "c"}
			m.Capabilities = caps
		}); err != nil {
			t.Fatal(err)
		}
		res, err := r.Call(context.Background(), "hog", CallRequest{})
		if err != nil {
			t.Fatal(err)
		}
		hex, _ := res.Output.(map[string]any)["hex"].(string)
		if len(hex) != 32 {
			t.Fatalf("output %v", res.Output)
		}
		return hex
	}
	a, b := call(), call()
	if a != b {
		t.Errorf("deterministic calls differ: %s, %s", a, b)
	}
	c := call(string(CapClock), string(CapRandom))
	if c[:16] == a[:16] || c[16:] == a[16:] {
		t.Errorf("with wasi:clock and wasi:random the clock or random bytes are still the fixed ones: %s vs %s", c, a)
	}
}
