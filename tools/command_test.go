package tools

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nanovm/nano-vm-mcp/internal/toolrecord"
)

// Ensure the command section is validated strictly at registration: every
// template must name a declared string argument, every mode and exit code
// must be known, argv is bounded, and a pooled tool cannot template argv.
func TestCommandManifestValidation(t *testing.T) {
	const schema = `"input_schema": {"type": "object", "properties": {"f": {"type": "string"}, "n": {"type": "number"}, "any": {}, "either": {"type": ["string", "null"]}}}`
	tests := []struct {
		name     string
		command  string
		extra    string // more manifest fields
		noSchema bool
		wantErr  string // "" means valid
	}{
		{name: "minimal", command: `{}`},
		{name: "full", command: `{"argv": ["-c", "{f}", "{{f}}"], "stdin": "{any}", "stdout": "json_lines", "exit_codes": {"0": "success", "1": "success", "5": "error"}}`},
		{name: "type list with string", command: `{"argv": ["{either}"]}`},
		{name: "stdin none", command: `{"stdin": "none", "stdout": "text"}`},
		{name: "fixed argv pooled", command: `{"argv": ["-x"]}`, extra: `, "isolation": "pool"`},
		{name: "undeclared argument", command: `{"argv": ["{g}"]}`, wantErr: `command.argv[0] names argument "g", which input_schema.properties does not declare`},
		{name: "no input schema", command: `{"argv": ["{f}"]}`, noSchema: true, wantErr: `command.argv[0] names argument "f", but the manifest has no input_schema declaring it`},
		{name: "stdin undeclared", command: `{"stdin": "{g}"}`, wantErr: `command.stdin names argument "g", which input_schema.properties does not declare`},
		{name: "not a string", command: `{"argv": ["-a", "{n}"]}`, wantErr: `command.argv[1] names argument "n", whose schema does not admit a string`},
		{name: "stdin takes any value", command: `{"stdin": "{n}"}`},
		{name: "bad stdin", command: `{"stdin": "raw"}`, wantErr: `command.stdin must be "json", "none" or {argument}, not "raw"`},
		{name: "bad stdout", command: `{"stdout": "yaml"}`, wantErr: `command.stdout must be "json", "json_lines" or "text", not "yaml"`},
		{name: "leading zero code", command: `{"exit_codes": {"05": "error"}}`, wantErr: `command.exit_codes: key "05" must be an exit code 0..255 in decimal`},
		{name: "code too large", command: `{"exit_codes": {"256": "error"}}`, wantErr: `key "256" must be an exit code 0..255`},
		{name: "negative code", command: `{"exit_codes": {"-1": "error"}}`, wantErr: `key "-1" must be an exit code 0..255`},
		{name: "unknown meaning", command: `{"exit_codes": {"1": "retry"}}`, wantErr: `command.exit_codes["1"] must be "success" or "error", not "retry"`},
		{name: "zero is success", command: `{"exit_codes": {"0": "error"}}`, wantErr: `exit code 0 is always a success`},
		{name: "NUL in argv", command: `{"argv": ["a\u0000b"]}`, wantErr: `command.argv[0] holds a NUL byte`},
		{name: "too many entries", command: `{"argv": [` + strings.Repeat(`"x",`, MaxArgvEntries) + `"x"]}`, wantErr: `command.argv has 65 entries, more than 64`},
		{name: "argv too large", command: `{"argv": ["` + strings.Repeat("x", MaxArgvBytes) + `"]}`, wantErr: `command.argv is 131077 bytes, more than 131072`},
		{name: "templated argv pooled", command: `{"argv": ["{f}"]}`, extra: `, "isolation": "pool"`, wantErr: `command.argv takes arguments, which a pooled instance cannot`},
		{name: "unknown field", command: `{"args": ["x"]}`, wantErr: `unknown field "args"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := `{"name": "cmd", "command": ` + tt.command + tt.extra
			if !tt.noSchema {
				doc += ", " + schema
			}
			doc += "}"
			m, err := ParseManifest([]byte(doc))
			if !failedKind(t, err, ErrInvalidManifest, tt.wantErr) && m.Command == nil {
				t.Fatal("command section lost")
			}
		})
	}
}

// Ensure a manifest without a command section keeps its canonical form
// and hash: the new field adds nothing to existing versions.
func TestCommandSectionAbsentKeepsHash(t *testing.T) {
	m, err := ParseManifest([]byte(`{"name": "a", "capabilities": []}`))
	if err != nil {
		t.Fatal(err)
	}
	canon, _, err := m.canonical()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(canon), "command") {
		t.Fatalf("canonical manifest %s mentions command", canon)
	}
}

// jqHost is one host for every test of jq, never closed: jq is 6.5 MB of
// Go, which takes seconds to compile, over a minute under -race on a busy
// machine (past the default compile deadline), so it is compiled once.
var jqHost = sync.OnceValue(func() *Host {
	h, err := NewHost(context.Background(), HostOptions{ModuleLimits: ModuleLimits{CompileTimeout: time.Hour}})
	if err != nil {
		panic(err)
	}
	return h
})

// jqRegistry returns a registry on jqHost with the named modules
// registered unchanged.
func jqRegistry(t testing.TB, names ...string) *Registry {
	t.Helper()
	r := NewRegistry(jqHost(), NewMemoryStore(), RegistryOptions{})
	for _, n := range names {
		register(t, r, n, nil)
	}
	return r
}

// jqCall calls tool with filter and input through the registry.
func jqCall(r *Registry, tool, filter, input string) (CallResult, error) {
	return r.Call(context.Background(), tool, CallRequest{Args: map[string]any{"filter": filter, "input": input}})
}

// Ensure the bundled jq tool, a Go WASI command called through its
// manifest's command section, runs filters through the registry: the
// filter on argv, the input on stdin, every result in order; a bad
// filter or bad input is a tool error quoting jq; limits still hold.
func TestBundledJQ(t *testing.T) {
	r := jqRegistry(t, "jq")
	// A small jq whose memory and stdout are the bounds that act; its
	// timeout is generous so that a slow machine (-race) still reaches them.
	register(t, r, "jq", func(m *Manifest) {
		m.Name = "jq_small"
		m.Limits = Limits{MemoryMiB: 32, StdoutBytes: 4096, TimeoutMS: 240000}
	})
	results := func(vs ...any) any { return map[string]any{"results": append([]any{}, vs...)} }
	tests := []struct {
		name          string
		tool          string
		filter, input string
		want          any
		wantErr       string
		wantIs        error
		wantCode      uint32 // with wantIs ErrToolFailed
	}{
		{name: "field", filter: ".a", input: `{"a":1}`, want: results(1.0)},
		{name: "several results", filter: ".[] | . * 2", input: `[1, 2, 3]`, want: results(2.0, 4.0, 6.0)},
		{name: "several inputs", filter: ".a", input: "{\"a\":\"x\"}\n{\"a\":[true]} {\"a\":null}", want: results("x", []any{true}, nil)},
		{name: "no result", filter: "empty", input: `1`, want: results()},
		{name: "empty input", filter: ".", input: ``, want: results()},
		{name: "object built", filter: `{b: .a, n: (.a | length)}`, input: `{"a":"hé"}`, want: results(map[string]any{"b": "hé", "n": 2.0})},
		{name: "shell text stays one argument", filter: `"a b; $(rm -rf /) 'x'"`, input: `null`, want: results("a b; $(rm -rf /) 'x'")},
		{name: "input as a value", filter: ".a[1]", input: "\x00value", want: results("y")},
		{name: "inputs builtin", filter: `[., input]`, input: `1 2`, want: results([]any{1.0, 2.0})},
		{name: "bad filter", filter: ".a |", input: `{}`, wantIs: ErrToolFailed, wantCode: 3, wantErr: `tool "jq": jq: error: the filter does not parse: unexpected EOF`},
		{name: "runtime error", filter: ".a", input: `[1]`, wantIs: ErrToolFailed, wantCode: 5, wantErr: `tool "jq": jq: error: expected an object but got: array ([1])`},
		{name: "bad input", filter: ".", input: `{"a":`, wantIs: ErrToolFailed, wantCode: 5, wantErr: `jq: error: bad input: unexpected EOF (exited with code 5)`},
		{name: "halt_error code", filter: `"stop\n" | halt_error(7)`, input: `null`, wantIs: &ExitError{}, wantErr: `tool "jq": exited with code 7: stop`},
		{name: "missing input", filter: ".", input: "\x00omit", wantIs: ErrInvalidArgs, wantErr: `missing property 'input'`},
		{name: "output cap", tool: "jq_small", filter: "range(100000)", input: `null`, wantIs: ErrOutputLimit},
		{name: "memory cap", tool: "jq_small", filter: `"x" * 100000000 | length`, input: `null`, wantIs: ErrMemoryLimit},
		{name: "huge input", tool: "jq_small", filter: "length", input: `"` + strings.Repeat("x", 40<<20) + `"`, wantIs: ErrMemoryLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tool := tt.tool
			if tool == "" {
				tool = "jq"
			}
			args := map[string]any{"filter": tt.filter, "input": tt.input}
			switch tt.input {
			case "\x00omit":
				delete(args, "input")
			case "\x00value":
				args["input"] = map[string]any{"a": []any{"x", "y"}}
			}
			res, err := r.Call(context.Background(), tool, CallRequest{Args: args})
			checkCall(t, res, err, tt.want, tt.wantIs, tt.wantCode, tt.wantErr)
		})
	}
}

// Ensure the command section's other modes work on real modules: fixed
// and escaped argv, stdin from JSON or nothing, text stdout with its exit
// code, exit codes listed as success or error, and the call-time checks
// of templated arguments.
func TestCommandModes(t *testing.T) {
	r := jqRegistry(t)
	// Each variant declares filter, input and raw without types or
	// requirements, so that the call-time checks are the ones that act.
	jq := func(name string, c Command) func(*Manifest) {
		return func(m *Manifest) {
			m.Name, m.Command, m.OutputSchema = name, &c, nil
			m.InputSchema = json.RawMessage(`{"type": "object", "properties": {"filter": {}, "input": {}, "raw": {}}}`)
		}
	}
	register(t, r, "jq", jq("jq_fixed", Command{Argv: []string{".filter"}}))
	register(t, r, "jq", jq("jq_fixed_lines", Command{Argv: []string{"-c", ".filter"}, Stdout: StdoutJSONLines}))
	register(t, r, "jq", jq("jq_escape", Command{Argv: []string{"-n", "{{a}}"}, Stdin: StdinNone, Stdout: StdoutJSONLines}))
	register(t, r, "jq", jq("jq_none", Command{Argv: []string{"."}, Stdin: StdinNone, Stdout: StdoutJSONLines}))
	register(t, r, "jq", jq("jq_raw", Command{Argv: []string{"-r", "{filter}"}, Stdin: "{input}", Stdout: StdoutText}))
	register(t, r, "jq", jq("jq_arg", Command{Argv: []string{"-n", "--arg", "v", "{filter}", "$v"}, Stdin: StdinNone, Stdout: StdoutJSONLines}))
	register(t, r, "exit3", jq("exit3_success", Command{Stdout: StdoutText, ExitCodes: map[string]string{"3": ExitSuccess}}))
	register(t, r, "exit3", jq("exit3_error", Command{ExitCodes: map[string]string{"3": ExitFailure}}))
	register(t, r, "exit3", jq("exit3_unlisted", Command{ExitCodes: map[string]string{"4": ExitFailure}}))
	register(t, r, "raw_echo", jq("raw_text", Command{Stdout: StdoutText}))
	register(t, r, "raw_echo", jq("raw_lines", Command{Stdout: StdoutJSONLines}))
	register(t, r, "raw_echo", jq("raw_json", Command{}))

	tests := []struct {
		name    string
		tool    string
		args    map[string]any
		want    any
		wantErr string
		wantIs  error
	}{
		{name: "fixed argv, JSON stdin, one JSON value", tool: "jq_fixed", args: map[string]any{"filter": "f", "input": "i"}, want: "f"},
		{name: "fixed argv, JSON lines", tool: "jq_fixed_lines", args: map[string]any{"filter": "f", "input": "i"}, want: map[string]any{"results": []any{"f"}}},
		{name: "escaped template is literal", tool: "jq_escape", args: map[string]any{"filter": "x", "input": "y"}, want: map[string]any{"results": []any{map[string]any{"a": nil}}}},
		{name: "stdin none", tool: "jq_none", args: map[string]any{"filter": "x", "input": "1"}, want: map[string]any{"results": []any{}}},
		{name: "text result", tool: "jq_raw", args: map[string]any{"filter": ".[]", "input": `["a b", "c\td"]`}, want: map[string]any{"stdout": "a b\nc\td\n", "exit_code": 0.0}},
		{name: "text must be UTF-8", tool: "jq_raw", args: map[string]any{"filter": `"//8=" | @base64d`, "input": "null"}, wantIs: ErrInvalidOutput, wantErr: "stdout is not UTF-8 text (byte 0)"},
		{name: "argument is one argv entry", tool: "jq_arg", args: map[string]any{"filter": "a b\n'c' \"d\" *", "input": ""}, want: map[string]any{"results": []any{"a b\n'c' \"d\" *"}}},
		{name: "empty argument", tool: "jq_arg", args: map[string]any{"filter": "", "input": ""}, want: map[string]any{"results": []any{""}}},
		{name: "missing argument", tool: "jq_arg", args: map[string]any{"input": ""}, wantIs: ErrInvalidArgs, wantErr: `tool "jq_arg": argument "filter" is missing: the tool's argv[4] takes it`},
		{name: "non-string argument", tool: "jq_arg", args: map[string]any{"filter": 5, "input": ""}, wantIs: ErrInvalidArgs, wantErr: `argument "filter" must be a string for the tool's argv[4], not a number`},
		{name: "stdin from a value", tool: "jq_raw", args: map[string]any{"filter": ".b[0]", "input": map[string]any{"b": []any{"v"}}}, want: map[string]any{"stdout": "v\n", "exit_code": 0.0}},
		{name: "stdin missing", tool: "jq_raw", args: map[string]any{"filter": "."}, wantIs: ErrInvalidArgs, wantErr: `argument "input" is missing: the tool's stdin takes it`},
		{name: "NUL argument", tool: "jq_arg", args: map[string]any{"filter": "a\x00b", "input": ""}, wantIs: ErrInvalidArgs, wantErr: `argument "filter" holds a NUL byte, which argv[4] cannot carry`},
		{name: "argv too large", tool: "jq_arg", args: map[string]any{"filter": strings.Repeat("x", MaxArgvBytes), "input": ""}, wantIs: ErrInvalidArgs, wantErr: "argv would be 131,094 bytes, more than 131,072 (MaxArgvBytes)"},
		{name: "exit code listed success", tool: "exit3_success", want: map[string]any{"stdout": "", "exit_code": 3.0}},
		{name: "exit code listed error", tool: "exit3_error", wantIs: ErrToolFailed, wantErr: `tool "exit3_error": giving up: 3 (exited with code 3)`},
		{name: "exit code unlisted", tool: "exit3_unlisted", wantIs: &ExitError{Code: 3}, wantErr: `tool "exit3_unlisted": exited with code 3: giving up: 3`},
		{name: "text keeps JSON-looking text", tool: "raw_text", args: map[string]any{"raw": `{"error": "x"}`}, want: map[string]any{"stdout": `{"error": "x"}`, "exit_code": 0.0}},
		{name: "json lines do not fail on error key", tool: "raw_lines", args: map[string]any{"raw": `{"error": "x"} 2`}, want: map[string]any{"results": []any{map[string]any{"error": "x"}, 2.0}}},
		{name: "json lines refuse garbage", tool: "raw_lines", args: map[string]any{"raw": "1\n{oops"}, wantIs: ErrInvalidOutput, wantErr: "stdout value 2 is not JSON"},
		{name: "json lines depth", tool: "raw_lines", args: map[string]any{"raw": strings.Repeat("[", 127) + strings.Repeat("]", 127)}, wantIs: ErrInvalidOutput, wantErr: "nesting depth"},
		{name: "json keeps the error convention", tool: "raw_json", args: map[string]any{"raw": `{"error": "x"}`}, wantIs: ErrToolFailed, wantErr: `tool "raw_json": x`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := r.Call(context.Background(), tt.tool, CallRequest{Args: tt.args})
			checkCall(t, res, err, tt.want, tt.wantIs, 0, tt.wantErr)
		})
	}
}

// Ensure an upload may use the command section and gains nothing by it:
// under the default upload grant it registers, holds only wasi:stdio and
// nanovm:log as asked, and runs as the section says.
func TestCommandUploadGrantsNothing(t *testing.T) {
	r := jqRegistry(t)
	mod := modules(t)["jq"]
	m, err := ParseManifest(mod.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	m.Name = "jq_upload"
	if _, err := r.RegisterAs(context.Background(), toolrecord.SourceUpload, m, mod.Wasm); err != nil {
		t.Fatal(err)
	}
	tool, err := r.Resolve(context.Background(), "jq_upload")
	if err != nil {
		t.Fatal(err)
	}
	if want := []Capability{CapStdio}; !reflect.DeepEqual(tool.Granted, want) {
		t.Fatalf("granted %v, want %v", tool.Granted, want)
	}
	res, err := jqCall(r, "jq_upload", ".a", `{"a":1}`)
	if err != nil || !reflect.DeepEqual(res.Output, map[string]any{"results": []any{1.0}}) {
		t.Fatalf("call: %v %#v", err, res.Output)
	}
	// An upload asking for more than its grant is still refused, command
	// section or not.
	m.Name, m.Capabilities = "jq_upload2", []string{string(CapHTTP)}
	if _, err := r.RegisterAs(context.Background(), toolrecord.SourceUpload, m, mod.Wasm); !errors.Is(err, ErrCapabilityDenied) {
		t.Fatalf("err = %v, want ErrCapabilityDenied", err)
	}
}

// FuzzDecodeLines checks that the json_lines reader never panics, and
// that whatever it accepts is {"results": [...]} within jsonlimit's
// limits, which encodes to JSON.
func FuzzDecodeLines(f *testing.F) {
	for _, s := range []string{"", "1\n2\n", `{"a":1}` + "\n", "[[[]]] \"x\"", "1 {", "\xff", "1e999", strings.Repeat("[", 200)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeLines(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidOutput) {
				t.Fatalf("error %v is not ErrInvalidOutput", err)
			}
			return
		}
		obj, ok := v.(map[string]any)
		if _, isList := obj["results"].([]any); !ok || !isList || len(obj) != 1 {
			t.Fatalf("decoded %#v", v)
		}
		if _, err := json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	})
}

// BenchmarkJQ measures the bundled jq tool, a Go WASI command run fresh
// per call: "compile" is one compilation of the module (no cache), "load
// from cache" is a new host reading the compiled code from a warm disk
// cache, and "call" is one call of {"filter": ".a", "input": "{\"a\":1}"}
// on a compiled tool.
func BenchmarkJQ(b *testing.B) {
	ctx := context.Background()
	wasm := modules(b)["jq"].Wasm
	slow := ModuleLimits{CompileTimeout: 10 * time.Minute}
	b.Run("compile", func(b *testing.B) {
		for b.Loop() {
			h := newHost(b, HostOptions{ModuleLimits: slow})
			if _, err := h.compile(ctx, wasm); err != nil {
				b.Fatal(err)
			}
			_ = h.Close(ctx)
		}
	})
	dir := b.TempDir()
	warm := newHost(b, HostOptions{CacheDir: dir, ModuleLimits: slow})
	if _, err := warm.compile(ctx, wasm); err != nil {
		b.Fatal(err)
	}
	b.Run("load from cache", func(b *testing.B) {
		for b.Loop() {
			h := newHost(b, HostOptions{CacheDir: dir, ModuleLimits: slow})
			if _, err := h.compile(ctx, wasm); err != nil {
				b.Fatal(err)
			}
			_ = h.Close(ctx)
		}
	})
	b.Run("call", func(b *testing.B) {
		r := NewRegistry(warm, NewMemoryStore(), RegistryOptions{})
		register(b, r, "jq", nil)
		tool, err := r.Resolve(ctx, "jq")
		if err != nil {
			b.Fatal(err)
		}
		args := map[string]any{"filter": ".a", "input": `{"a":1}`}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tool.Call(ctx, CallRequest{Args: args}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// checkCall checks one call's outcome: with wantIs, an error that is
// wantIs (for an *ExitError, a bare exit code, not ErrToolFailed, with
// its Code when that is not 0), exits with wantCode when that is not 0,
// and says wantErr; without, no error and the output want.
func checkCall(t *testing.T, res CallResult, err error, want any, wantIs error, wantCode uint32, wantErr string) {
	t.Helper()
	if wantIs != nil {
		var exit *ExitError
		if w, ok := wantIs.(*ExitError); ok {
			if !errors.As(err, &exit) || errors.Is(err, ErrToolFailed) || (w.Code != 0 && exit.Code != w.Code) {
				t.Fatalf("err = %v, want a bare exit code %d (0: any unlisted one)", err, w.Code)
			}
		} else if !errors.Is(err, wantIs) {
			t.Fatalf("err = %v, want %v", err, wantIs)
		}
		if wantCode != 0 && (!errors.As(err, &exit) || exit.Code != wantCode) {
			t.Fatalf("err = %v, want exit code %d", err, wantCode)
		}
		if !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("err = %v, want %q", err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatalf("err = %v (log %q)", err, res.Log)
	}
	if !reflect.DeepEqual(res.Output, want) {
		t.Fatalf("output = %#v, want %#v", res.Output, want)
	}
}
