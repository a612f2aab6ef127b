package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// uploadChunk is the chunk size the tests send: upload_module's largest.
const uploadChunk = 1 << 20

// Ensure a 20 MB module registers on the real binary over stdio and over
// Streamable HTTP, both inline (one register_tool message, inside the
// transports' 32 MiB message limits) and in chunks (upload_module, then
// register_tool's module_upload), and runs afterwards; a chunked upload
// leaves no staged file. The server's peak resident memory (VmHWM) after
// the registration is logged, not asserted: it depends on the machine's
// load and the garbage collector.
func TestUploadBigModule(t *testing.T) {
	wasm, manifest := bigModule(t, 20_000_000)
	sum := sha256.Sum256(wasm)
	wantSHA := hex.EncodeToString(sum[:])
	inline := base64.StdEncoding.EncodeToString(wasm)
	t.Logf("module %d bytes, base64 %d bytes", len(wasm), len(inline))
	for _, tr := range []string{"stdio", "http"} {
		for _, mode := range []string{"inline", "chunked"} {
			t.Run(tr+"/"+mode, func(t *testing.T) {
				db := filepath.Join(t.TempDir(), "big.db")
				var call func(name string, args map[string]any) (map[string]any, bool)
				var pid int
				if tr == "stdio" {
					p := startRawStdio(t, db)
					pid = p.cmd.Process.Pid
					id := 0
					call = func(name string, args map[string]any) (map[string]any, bool) {
						id++
						return p.callRaw(id, name, args)
					}
				} else {
					const key = "big-token"
					base, cmd, stop := startHTTPCmd(t, db, key)
					defer stop()
					pid = cmd.Process.Pid
					c := authedClient(t, base, key)
					call = func(name string, args map[string]any) (map[string]any, bool) {
						isErr, out := callAny(t, c, name, args)
						return out, isErr
					}
				}
				before := procStatusKiB(t, pid, "VmHWM")
				args := map[string]any{"name": "raw_echo", "manifest": manifest}
				if mode == "inline" {
					args["wasm_base64"] = inline
				} else {
					args["module_upload"] = uploadInChunks(t, call, wasm, wantSHA)
				}
				out, isErr := call("register_tool", args)
				if isErr || out["module_sha256"] != wantSHA || out["source"] != "upload" {
					t.Fatalf("register_tool: %v", out)
				}
				peak := procStatusKiB(t, pid, "VmHWM")
				t.Logf("%s %s: server VmHWM %d MiB after the registration (%d MiB before it)", tr, mode, peak>>10, before>>10)
				if files, _ := os.ReadDir(db + ".uploads"); len(files) != 0 {
					t.Fatalf("staged files left after the registration: %v", files)
				}
				run, isErr := call("run_program", map[string]any{"program": echoProgram("raw_echo"), "input": map[string]any{"payload": `{"big":true}`}})
				if isErr || run["status"] != "success" || fmt.Sprint(run["final_output"]) != "map[big:true]" {
					t.Fatalf("run_program with the big tool: %v", run)
				}
			})
		}
	}
}

// uploadInChunks sends wasm through upload_module and returns its
// upload id, checking each answer's running size and the final hash.
func uploadInChunks(t *testing.T, call func(string, map[string]any) (map[string]any, bool), wasm []byte, wantSHA string) string {
	t.Helper()
	id := ""
	for off := 0; ; off += uploadChunk {
		end := min(off+uploadChunk, len(wasm))
		args := map[string]any{"offset": off, "data": base64.StdEncoding.EncodeToString(wasm[off:end])}
		if id != "" {
			args["upload_id"] = id
		}
		last := end == len(wasm)
		if last {
			args["done"], args["sha256"] = true, wantSHA
		}
		out, isErr := call("upload_module", args)
		if isErr || out["received_bytes"] != float64(end) {
			t.Fatalf("upload_module at %d: %v", off, out)
		}
		id, _ = out["upload_id"].(string)
		if last {
			if out["sha256"] != wantSHA || out["done"] != true {
				t.Fatalf("last chunk: %v", out)
			}
			return id
		}
	}
}
