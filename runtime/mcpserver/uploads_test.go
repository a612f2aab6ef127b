package mcpserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"

	"github.com/nanovm/nano-vm-mcp/kernel/kerneltest"
	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/tools"
)

// uploadServer is a Server whose uploads stage in a folder the test
// reads, on a clock the test moves.
type uploadServer struct {
	s     *Server
	dir   string
	clock *kerneltest.ManualClock
}

// staged lists the files in the staging folder.
func (u *uploadServer) staged(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(u.dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func newUploadServer(t *testing.T, cfg runtime.Config, tweak func(*Options)) *uploadServer {
	t.Helper()
	u := &uploadServer{dir: t.TempDir() + "/uploads", clock: kerneltest.NewManualClock()}
	opts := DefaultOptions()
	opts.UploadDir = u.dir
	opts.Now = u.clock.Now
	if tweak != nil {
		tweak(opts)
	}
	u.s = newServerConfig(t, cfg, opts)
	return u
}

// uploadAll sends wasm in chunks of size bytes and returns the upload id.
func uploadAll(t *testing.T, s *Server, c *client.Client, wasm []byte, size int) string {
	t.Helper()
	id := ""
	for off := 0; ; off += size {
		end := min(off+size, len(wasm))
		args := map[string]any{"offset": off, "data": base64.StdEncoding.EncodeToString(wasm[off:end])}
		if id != "" {
			args["upload_id"] = id
		}
		last := end == len(wasm)
		if last {
			sum := sha256.Sum256(wasm)
			args["done"], args["sha256"] = true, hex.EncodeToString(sum[:])
		}
		out := ok(t, s, "upload_module", call(t, c, "upload_module", args))
		id, _ = out["upload_id"].(string)
		if out["received_bytes"] != float64(end) || out["done"] != last {
			t.Fatalf("chunk at %d: %v", off, out)
		}
		if last {
			return id
		}
	}
}

// Ensure a module uploaded in chunks registers through module_upload
// with the same checks and source as an inline upload, runs, and leaves
// no staged file; its upload id then ends.
func TestUploadModuleRegisters(t *testing.T) {
	u := newUploadServer(t, runtime.Config{}, nil)
	c, _ := inProcess(t, u.s)
	echo := testTool(t, "raw_echo")
	id := uploadAll(t, u.s, c, echo.Wasm, 97)
	if len(u.staged(t)) != 1 {
		t.Fatalf("staged files while the upload is open: %v", u.staged(t))
	}
	reg := ok(t, u.s, "register_tool", call(t, c, "register_tool", map[string]any{"name": "raw_echo", "manifest": string(echo.Manifest), "module_upload": id}))
	sum := sha256.Sum256(echo.Wasm)
	if reg["module_sha256"] != hex.EncodeToString(sum[:]) || reg["source"] != "upload" {
		t.Fatalf("register_tool: %v", reg)
	}
	if files := u.staged(t); len(files) != 0 {
		t.Fatalf("staged files left after registration: %v", files)
	}
	run := ok(t, u.s, "run_program", call(t, c, "run_program", map[string]any{
		"program": `{"steps":[{"id":"e","type":"tool","tool":"raw_echo","args":{"raw":"$p"},"is_terminal":true}]}`,
		"input":   map[string]any{"p": `{"ok":true}`},
	}))
	if run["status"] != "success" || fmt.Sprint(run["final_output"]) != "map[ok:true]" {
		t.Fatalf("run: %v", run)
	}
	e := toolErr(t, "register_tool", call(t, c, "register_tool", map[string]any{"name": "raw_echo", "manifest": string(echo.Manifest), "module_upload": id}))
	if e["error"] != "not_found" || !strings.Contains(fmt.Sprint(e["message"]), "it was registered") {
		t.Fatalf("registering the id again: %v", e)
	}
}

// Ensure a chunked upload holds only what the uploads grant: a module
// importing an ungranted capability is refused at register_tool exactly
// as inline, and the upload stays for a corrected retry.
func TestUploadModulePolicy(t *testing.T) {
	u := newUploadServer(t, runtime.Config{}, nil)
	c, _ := inProcess(t, u.s)
	httpTool := testTool(t, "http_get")
	id := uploadAll(t, u.s, c, httpTool.Wasm, 4096)
	e := toolErr(t, "register_tool", call(t, c, "register_tool", map[string]any{"name": "http_get", "manifest": string(httpTool.Manifest), "module_upload": id}))
	inline := toolErr(t, "register_tool", call(t, c, "register_tool", map[string]any{"name": "http_get", "manifest": string(httpTool.Manifest), "wasm_base64": base64.StdEncoding.EncodeToString(httpTool.Wasm)}))
	if e["error"] != "capability_denied" || e["error"] != inline["error"] || e["message"] != inline["message"] {
		t.Fatalf("chunked %v, inline %v", e, inline)
	}
	if len(u.staged(t)) != 1 {
		t.Fatalf("a refused registration dropped the upload: %v", u.staged(t))
	}
}

// Ensure every hostile or mistaken chunk is refused naming what and why:
// another session's upload id, offset gaps and repeats, a module over
// the ceiling (the upload is then discarded), too many uploads in one
// session, the server-wide staging bound, a chunk over 1 MiB, a wrong
// sha256, an unfinished upload registered, malformed and unknown ids.
func TestUploadModuleRefusals(t *testing.T) {
	cfg := runtime.Config{ModuleLimits: tools.ModuleLimits{ModuleBytes: 3000}}
	u := newUploadServer(t, cfg, func(o *Options) { o.MaxStagedUploadBytes = 4000 })
	a, _ := inProcess(t, u.s)
	b, _ := inProcess(t, u.s)
	start := func(c *client.Client, n int) string {
		t.Helper()
		out := ok(t, u.s, "upload_module", call(t, c, "upload_module", map[string]any{"offset": 0, "data": base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, n))}))
		return out["upload_id"].(string)
	}
	idA := start(a, 1000)
	b64 := func(n int) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, n)) }
	echo := testTool(t, "raw_echo")
	tests := []struct {
		name string
		c    *client.Client
		tool string
		args map[string]any
		code string
		want string
	}{
		{"another session's id", b, "upload_module", map[string]any{"upload_id": idA, "offset": 1000, "data": b64(10)}, "not_found", "bound to the MCP session that started it"},
		{"another session registers it", b, "register_tool", map[string]any{"name": "x", "manifest": "{}", "module_upload": idA}, "not_found", "in this session"},
		{"offset gap", a, "upload_module", map[string]any{"upload_id": idA, "offset": 1500, "data": b64(10)}, "invalid_argument", "send the chunk at offset 1000"},
		{"offset repeated", a, "upload_module", map[string]any{"upload_id": idA, "offset": 0, "data": b64(10)}, "invalid_argument", "has 1000 bytes"},
		{"new upload not at 0", a, "upload_module", map[string]any{"offset": 5, "data": b64(10)}, "invalid_argument", "starts at offset 0"},
		{"no offset", a, "upload_module", map[string]any{"data": b64(10)}, "invalid_argument", `"offset" is required`},
		{"negative offset", a, "upload_module", map[string]any{"upload_id": idA, "offset": -1, "data": b64(10)}, "invalid_argument", "negative"},
		{"no data", a, "upload_module", map[string]any{"upload_id": idA, "offset": 1000}, "invalid_argument", `"data" is required`},
		{"chunk over 1 MiB", a, "upload_module", map[string]any{"upload_id": idA, "offset": 1000, "data": b64(MaxChunkBytes + 1)}, codeUploadLimit, "over the 1048576-byte limit of one chunk"},
		{"not base64", a, "upload_module", map[string]any{"upload_id": idA, "offset": 1000, "data": "!!!!"}, "invalid_argument", `"data"`},
		{"malformed id", a, "upload_module", map[string]any{"upload_id": "../../etc/passwd", "offset": 0, "data": b64(1)}, "invalid_argument", "is not an upload id"},
		{"unknown id", a, "upload_module", map[string]any{"upload_id": "up_" + strings.Repeat("0", 32), "offset": 0, "data": b64(1)}, "not_found", "no upload"},
		{"first chunk over the module ceiling", b, "upload_module", map[string]any{"offset": 0, "data": b64(3001)}, codeUploadLimit, "ceiling on one module"},
		{"unfinished registered", a, "register_tool", map[string]any{"name": "x", "manifest": "{}", "module_upload": idA}, "invalid_argument", "is not finished: it has 1000 bytes"},
		{"both module forms", a, "register_tool", map[string]any{"name": "x", "manifest": "{}", "module_upload": idA, "wasm_base64": "AGFzbQEAAAA="}, "invalid_argument", "both given"},
		{"neither module form", a, "register_tool", map[string]any{"name": "x", "manifest": "{}"}, "invalid_argument", `"module_upload" (an upload_module upload_id) is required`},
		{"wasm_base64 not a string", a, "register_tool", map[string]any{"name": "raw_echo", "manifest": string(echo.Manifest), "wasm_base64": 7}, "invalid_argument", `"wasm_base64": expected a string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := toolErr(t, tt.tool, call(t, tt.c, tt.tool, tt.args))
			if e["error"] != tt.code || !strings.Contains(fmt.Sprint(e["message"]), tt.want) {
				t.Fatalf("got %v, want %s naming %q", e, tt.code, tt.want)
			}
		})
	}
	// The refusals above left A's upload as it was.
	ok(t, u.s, "upload_module", call(t, a, "upload_module", map[string]any{"upload_id": idA, "offset": 1000, "data": b64(1000)}))

	t.Run("staged bytes of all uploads", func(t *testing.T) {
		// A holds 2000 bytes, B 1900: 600 more would make 4500, over the
		// 4000-byte bound on all staged uploads.
		idB := start(b, 1000)
		ok(t, u.s, "upload_module", call(t, b, "upload_module", map[string]any{"upload_id": idB, "offset": 1000, "data": b64(900)}))
		e := toolErr(t, "upload_module", call(t, b, "upload_module", map[string]any{"upload_id": idB, "offset": 1900, "data": b64(600)}))
		if e["error"] != codeUploadLimit || !strings.Contains(fmt.Sprint(e["message"]), "bound on all staged uploads") {
			t.Fatalf("over the staging bound: %v", e)
		}
	})
	t.Run("uploads per session", func(t *testing.T) {
		start(b, 1) // B's second
		e := toolErr(t, "upload_module", call(t, b, "upload_module", map[string]any{"offset": 0, "data": b64(1)}))
		if e["error"] != codeUploadLimit || !strings.Contains(fmt.Sprint(e["message"]), "2 uploads open") {
			t.Fatalf("third upload: %v", e)
		}
	})
	t.Run("over the module ceiling discards", func(t *testing.T) {
		before := len(u.staged(t))
		e := toolErr(t, "upload_module", call(t, a, "upload_module", map[string]any{"upload_id": idA, "offset": 2000, "data": b64(1001)}))
		if e["error"] != codeUploadLimit || !strings.Contains(fmt.Sprint(e["message"]), "over the 3000-byte ceiling on one module (--max-module-bytes); the upload is discarded") {
			t.Fatalf("over the ceiling: %v", e)
		}
		if n := len(u.staged(t)); n != before-1 {
			t.Fatalf("staged files %d, want %d: the discarded upload's file stayed", n, before-1)
		}
		e = toolErr(t, "upload_module", call(t, a, "upload_module", map[string]any{"upload_id": idA, "offset": 2000, "data": b64(1)}))
		if e["error"] != "not_found" || !strings.Contains(fmt.Sprint(e["message"]), "went over the module size ceiling") {
			t.Fatalf("chunk after the discard: %v", e)
		}
	})
	t.Run("wrong sha256 discards", func(t *testing.T) {
		id := start(a, 10)
		e := toolErr(t, "upload_module", call(t, a, "upload_module", map[string]any{"upload_id": id, "offset": 10, "data": "", "done": true, "sha256": strings.Repeat("ab", 32)}))
		if e["error"] != "invalid_argument" || !strings.Contains(fmt.Sprint(e["message"]), "the upload is discarded") {
			t.Fatalf("wrong sha256: %v", e)
		}
	})
}

// Ensure an upload that is never finished expires after the TTL without
// a chunk: its staged file is removed and a late chunk is told it
// expired; an upload that keeps receiving chunks does not expire.
func TestUploadModuleExpires(t *testing.T) {
	u := newUploadServer(t, runtime.Config{}, func(o *Options) { o.UploadTTL = time.Minute })
	c, _ := inProcess(t, u.s)
	first := ok(t, u.s, "upload_module", call(t, c, "upload_module", map[string]any{"offset": 0, "data": "AGFzbQ=="}))
	idle := first["upload_id"].(string)
	busy := ok(t, u.s, "upload_module", call(t, c, "upload_module", map[string]any{"offset": 0, "data": "AGFzbQ=="}))["upload_id"].(string)
	if n := len(u.staged(t)); n != 2 {
		t.Fatalf("%d staged files, want 2", n)
	}
	u.clock.Advance(40 * time.Second)
	ok(t, u.s, "upload_module", call(t, c, "upload_module", map[string]any{"upload_id": busy, "offset": 4, "data": "AQAAAA=="}))
	u.clock.Advance(40 * time.Second) // idle: 80 s without a chunk; busy: 40 s
	e := toolErr(t, "upload_module", call(t, c, "upload_module", map[string]any{"upload_id": idle, "offset": 4, "data": "AQAAAA=="}))
	if e["error"] != "not_found" || !strings.Contains(fmt.Sprint(e["message"]), "expired") {
		t.Fatalf("late chunk: %v", e)
	}
	if n := len(u.staged(t)); n != 1 {
		t.Fatalf("%d staged files after the expiry, want 1 (the busy upload's)", n)
	}
	ok(t, u.s, "upload_module", call(t, c, "upload_module", map[string]any{"upload_id": busy, "offset": 8, "data": "", "done": true}))
	// Shutdown removes what is still staged.
	if err := u.s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if files := u.staged(t); len(files) != 0 {
		t.Fatalf("staged files after Shutdown: %v", files)
	}
}

// Ensure upload_module is hidden with register_tool when the operator
// switched uploads off.
func TestUploadModuleHiddenWithoutUploads(t *testing.T) {
	opts := DefaultOptions()
	opts.AllowToolUpload = false
	s := newServer(t, opts)
	for _, d := range s.defs {
		if d.name == "upload_module" || d.name == "register_tool" {
			t.Fatalf("%s is listed with uploads off", d.name)
		}
	}
}

// decodeBase64Whole is the reference decodeBase64 is held to: each
// encoding tried on the whole text.
func decodeBase64Whole(s string) ([]byte, bool) {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}

// Ensure decodeBase64, which decodes piecewise into one buffer, accepts
// exactly what a whole-text decode accepts, with the same bytes: each
// alphabet, padded or not, with line breaks, across piece boundaries,
// and refuses padding inside the text.
func TestDecodeBase64(t *testing.T) {
	big := bytes.Repeat([]byte{0xfb, 0xff, 0x01}, 70_000) // over several 64 KiB pieces
	std := base64.StdEncoding.EncodeToString(big)
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"std", base64.StdEncoding.EncodeToString([]byte("hello!?")), true},
		{"raw std", base64.RawStdEncoding.EncodeToString([]byte("hello!?")), true},
		{"url", base64.URLEncoding.EncodeToString([]byte{0xfb, 0xff, 0xfe}), true},
		{"raw url", base64.RawURLEncoding.EncodeToString([]byte{0xfb, 0xff, 0xfe, 1}), true},
		{"big std", std, true},
		{"big url", base64.URLEncoding.EncodeToString(big), true},
		{"big raw, odd length", base64.RawStdEncoding.EncodeToString(big[:len(big)-1]), true},
		{"line breaks", strings.ReplaceAll(std[:400], "A", "A\n"), true},
		{"padding at a piece boundary", base64.StdEncoding.EncodeToString(big[:65536/4*3-1]) + std, false},
		{"padding inside", "AA==AAAA", false},
		{"not base64", "#$%^", false},
		{"mixed alphabets", "ab+_", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeBase64(tt.in)
			want, wantOK := decodeBase64Whole(tt.in)
			if (err == nil) != tt.ok || wantOK != tt.ok {
				t.Fatalf("err %v, want ok %v (whole-text decode ok %v)", err, tt.ok, wantOK)
			}
			if !bytes.Equal(got, want) || cap(got) != len(got) {
				t.Fatalf("decoded %d bytes (cap %d), whole-text decode %d", len(got), cap(got), len(want))
			}
		})
	}
}

// FuzzDecodeBase64 holds decodeBase64 to the whole-text decode on any
// input.
func FuzzDecodeBase64(f *testing.F) {
	f.Add("AGFzbQEAAAA=")
	f.Add("AGFzbQEAAAA")
	f.Add("-_-_")
	f.Add("AA==AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := decodeBase64(s)
		want, ok := decodeBase64Whole(s)
		if (err == nil) != ok || !bytes.Equal(got, want) {
			t.Fatalf("%q: got %x (%v), whole-text decode %x (%v)", s, got, err, want, ok)
		}
	})
}

// BenchmarkRegisterBigModule registers a 20 MB module through the MCP
// server's message handler, as a wire message arrives (mcp-go's parse
// included, the transport's read not), inline and in chunks. It is the
// harness behind the copy chain in .rationale/mcp.md: run it with
// -benchmem -memprofile and read the profile with
// `go tool pprof -sample_index=alloc_space`.
func BenchmarkRegisterBigModule(b *testing.B) {
	echo := testTool(b, "raw_echo")
	pad := make([]byte, 20_000_000-len(echo.Wasm)-16)
	for _, mode := range []string{"inline", "chunked"} {
		b.Run(mode, func(b *testing.B) {
			s := newServer(b, nil)
			for i := range b.N {
				// A distinct module each time, so each is stored and compiled.
				wasm := append(bytes.Clone(echo.Wasm), customSection(fmt.Sprint("pad", i), pad)...)
				var id string
				if mode == "chunked" {
					for off := 0; off < len(wasm); off += MaxChunkBytes {
						end := min(off+MaxChunkBytes, len(wasm))
						args := map[string]any{"offset": off, "data": base64.StdEncoding.EncodeToString(wasm[off:end]), "done": end == len(wasm)}
						if id != "" {
							args["upload_id"] = id
						}
						out := handleCall(b, s, "upload_module", args)
						id, _ = out["upload_id"].(string)
					}
				}
				args := map[string]any{"name": fmt.Sprint("big", i), "manifest": string(echo.Manifest)}
				if mode == "chunked" {
					args["module_upload"] = id
				} else {
					args["wasm_base64"] = base64.StdEncoding.EncodeToString(wasm)
				}
				var m map[string]any
				_ = json.Unmarshal(echo.Manifest, &m)
				m["name"] = args["name"]
				mj, _ := json.Marshal(m)
				args["manifest"] = string(mj)
				if out := handleCall(b, s, "register_tool", args); out["module_sha256"] == nil {
					b.Fatalf("register_tool: %v", out)
				}
			}
		})
	}
}

// customSection is a custom section named name holding data.
func customSection(name string, data []byte) []byte {
	body := binary.AppendUvarint(nil, uint64(len(name)))
	body = append(body, name...)
	body = append(body, data...)
	return append(binary.AppendUvarint([]byte{0}, uint64(len(body))), body...)
}

// handleCall sends a tools/call as one JSON-RPC message to the server's
// message handler, as a transport does, and returns the result's JSON.
func handleCall(tb testing.TB, s *Server, name string, args map[string]any) map[string]any {
	tb.Helper()
	line, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": map[string]any{"name": name, "arguments": args}})
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := json.Marshal(s.MCP().HandleMessage(context.Background(), line))
	if err != nil {
		tb.Fatal(err)
	}
	var r struct {
		Result struct {
			Content []struct{ Text string } `json:"content"`
			IsError bool                    `json:"isError"`
		} `json:"result"`
	}
	if err := json.Unmarshal(resp, &r); err != nil || len(r.Result.Content) == 0 || r.Result.IsError {
		tb.Fatalf("%s: %.500s", name, resp)
	}
	var out map[string]any
	_ = json.Unmarshal([]byte(r.Result.Content[0].Text), &out)
	return out
}

// Ensure a server removes, at start, the staged files a killed server
// left that are older than the uploads' time limit, and keeps a fresh
// one and any file not named as a staged upload.
func TestUploadLeftoversRemoved(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	files := map[string]time.Time{
		"up-old.part":   now.Add(-2 * DefaultUploadTTL),
		"up-fresh.part": now.Add(-time.Second),
		"notes.txt":     now.Add(-48 * time.Hour),
	}
	for name, mtime := range files {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	opts := DefaultOptions()
	opts.UploadDir, opts.Now = dir, func() time.Time { return now }
	newServerConfig(t, runtime.Config{}, opts)
	var left []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		left = append(left, e.Name())
	}
	if strings.Join(left, ",") != "notes.txt,up-fresh.part" {
		t.Fatalf("left %v, want notes.txt and up-fresh.part", left)
	}
}
