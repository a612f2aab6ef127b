package tools

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/tools/internal/wasmbin/wasmtest"
)

// Ensure stdout that is not one JSON value is refused with an excerpt of
// what the tool printed, quoted so that binary garbage shows as escapes,
// where decoding stopped, and a hint when the bytes are not text.
func TestDecodeOutputShowsWhatWasPrinted(t *testing.T) {
	garbage := `{"result":"` + strings.Repeat("ok ", 100) + "\x00\x00\xff\xfe" + strings.Repeat("\x00", 300)
	tests := []struct {
		name, stdout string
		want         []string
		not          []string
	}{
		{name: "text", stdout: "hello world",
			want: []string{`stdout starts "hello world"`, "exactly one JSON value"}, not: []string{"not text"}},
		{name: "trailing garbage", stdout: "{\"a\":1}\x00\x00\x89",
			want: []string{"more than one JSON value", "the first ends at byte 7", `"{\"a\":1}\x00\x00\x89"`, "byte 7 is not text (0x00)", "stack overflow"}},
		{name: "two values", stdout: `{"a":1} {"b":2}`,
			want: []string{"more than one JSON value", `starts "{\"a\":1} {\"b\":2}"`}},
		{name: "garbage deep inside", stdout: garbage,
			want: []string{"invalid character '\\x00' in string literal", `starts "{\"result\":\"ok ok`, "(615 bytes in all)", `at byte 311 reads "\x00\x00\xff\xfe\x00`, "byte 311 is not text"}},
		{name: "cut short", stdout: `{"a":[1,2`,
			want: []string{"stdout is not JSON", `starts "{\"a\":[1,2"`}},
		{name: "over a limit", stdout: strings.Repeat("[", 200),
			want: []string{"nesting depth 129", `starts "[[[`, "(200 bytes in all)"}},
		// Flat objects, which decodeFlat reads without the check's pass
		// before it: a number over a limit is still refused.
		{name: "flat, a number too long", stdout: `{"id":"x","n":` + strings.Repeat("9", 101) + `}`,
			want: []string{"a number of 101 characters exceeds the limit of 100"}},
		{name: "flat, a number out of range", stdout: `{"n":1e400}`,
			want: []string{"number 1e400 is outside the range"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeOutput([]byte(tt.stdout))
			if !errors.Is(err, ErrInvalidOutput) {
				t.Fatalf("err = %v, want ErrInvalidOutput", err)
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(msg, w) {
					t.Errorf("error %q holds %q", msg, w)
				}
			}
			if len(msg) > 1_000 {
				t.Errorf("error of %d bytes", len(msg))
			}
		})
	}
}

// Ensure a real guest that prints valid JSON followed by what a C stack
// overflow leaves behind gets an error that shows those bytes.
func TestGuestGarbageShown(t *testing.T) {
	r := NewRegistry(newHost(t, HostOptions{}), NewMemoryStore(), RegistryOptions{})
	payload := "{\"ok\":true}\x00\x00\x00\x13\x07junk"
	m, err := ParseManifest([]byte(`{"name":"garbage","version":"1","description":"prints JSON and then garbage"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Register(context.Background(), m, printModule([]byte(payload))); err != nil {
		t.Fatal(err)
	}
	_, err = r.Call(context.Background(), "garbage", CallRequest{Args: map[string]any{}})
	if !errors.Is(err, ErrInvalidOutput) {
		t.Fatalf("err = %v, want ErrInvalidOutput", err)
	}
	for _, w := range []string{`"{\"ok\":true}\x00\x00\x00\x13\ajunk"`, "the first ends at byte 11", "byte 11 is not text (0x00)", "overwrote its own memory"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}

// printModule is a WASI command that writes out to stdout with one
// fd_write and exits: the module's bytes, encoded here so the test needs
// no toolchain.
func printModule(out []byte) []byte {
	w := wasmtest.Cat
	// Memory at 0: the iovec {16, len(out)}, then out at 16.
	data := w([]byte{16, 0, 0, 0}, le32(len(out)), make([]byte, 8), out)
	code := []byte{
		0x41, 0x01, // i32.const 1 (stdout)
		0x41, 0x00, // i32.const 0 (iovec)
		0x41, 0x01, // i32.const 1 (one iovec)
		0x41, 0x08, // i32.const 8 (bytes written)
		0x10, 0x00, // call fd_write
		0x1a, // drop
		0x0b, // end
	}
	i32 := []byte{wasmtest.I32}
	return wasmtest.Module(
		wasmtest.Section(wasmtest.SecType, wasmtest.Vec(wasmtest.FuncType(w(i32, i32, i32, i32), i32), wasmtest.FuncType(nil, nil))),
		wasmtest.Section(wasmtest.SecImport, wasmtest.Vec(wasmtest.ImportFunc("wasi_snapshot_preview1", "fd_write", 0))),
		wasmtest.Section(wasmtest.SecFunction, wasmtest.Vec(wasmtest.U32(1))),
		wasmtest.Section(wasmtest.SecMemory, wasmtest.Vec(wasmtest.Limits(1, -1))),
		wasmtest.Section(wasmtest.SecExport, wasmtest.Vec(wasmtest.Export("memory", 2, 0), wasmtest.Export("_start", 0, 1))),
		wasmtest.Section(wasmtest.SecCode, wasmtest.Vec(wasmtest.Body(nil, code))),
		wasmtest.Section(wasmtest.SecData, wasmtest.Vec(w([]byte{0x00, 0x41, 0x00, 0x0b}, wasmtest.U32(uint32(len(data))), data))),
	)
}

// le32 is n as four little-endian bytes.
func le32(n int) []byte { return []byte{byte(n), byte(n >> 8), byte(n >> 16), byte(n >> 24)} }

// Ensure a real Go guest built with the SDK gets named errors from the
// host's refusals: the text says what happened (not "status 1") and
// errors.Is matches the SDK's error.
func TestGoSDKNamedErrors(t *testing.T) {
	ctx := context.Background()
	g := testGrants{secrets: map[string][]string{"go_errors": {"alpha", "charlie"}}}
	r := NewRegistry(newHost(t, HostOptions{Secrets: probeSecrets}), NewMemoryStore(), RegistryOptions{Grants: g})
	register(t, r, "go_errors", nil)
	tests := []struct {
		name, ref, is, text string
	}{
		{name: "not granted", ref: "vault://secret/bravo", is: "ErrDenied", text: "nanovm secret_get: denied: this tool was not granted the capability, host or secret it asked for"},
		{name: "granted but absent", ref: "vault://secret/charlie", is: "ErrNotFound", text: "nanovm secret_get: not found: no such secret"},
		{name: "not a vault ref", ref: "alpha", is: "ErrInvalid", text: "nanovm secret_get: invalid request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := r.Call(ctx, "go_errors", CallRequest{Args: map[string]any{"ref": tt.ref}})
			if err != nil {
				t.Fatal(err)
			}
			out := res.Output.(map[string]any)
			if out["is"] != tt.is || out["error_text"] != tt.text {
				t.Fatalf("got %v, want is=%s text=%q", out, tt.is, tt.text)
			}
		})
	}
	res, err := r.Call(ctx, "go_errors", CallRequest{Args: map[string]any{"ref": "vault://secret/alpha"}})
	if err != nil || res.Output.(map[string]any)["resolved"] != true {
		t.Fatalf("granted secret: %v %v", res.Output, err)
	}
}
