package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/store"
)

// Ensure hyper-mcp v1 and v2 plugins register through the runtime as the
// tools they describe and answer inside a program, each step leaving a
// verified envelope (openRuntime verifies the chain at cleanup), and that
// a plugin importing an ungranted host function is refused, named.
func TestExtismPluginsInProgram(t *testing.T) {
	ctx := context.Background()
	rt := openRuntime(t, runtime.Config{})
	mods := testModules(t)
	for _, name := range []string{"extism_v1", "extism_v2"} {
		rec, err := rt.RegisterToolLocal(ctx, mods[name].Manifest, mods[name].Wasm)
		if err != nil {
			t.Fatalf("register %s: %v", name, err)
		}
		if want := "echo_" + strings.TrimPrefix(name, "extism_"); rec.Name != want {
			t.Errorf("register %s returned %q, want %q", name, rec.Name, want)
		}
	}
	recs, err := rt.Tools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, r := range recs {
		if strings.Contains(r.Name, "_v") {
			listed = append(listed, r.Name)
		}
	}
	if fmt.Sprint(listed) != "[echo_v1 echo_v2 fetch_v2]" {
		t.Errorf("tools %v, want echo_v1 echo_v2 fetch_v2", listed)
	}
	prog := `{"steps":[
		{"id":"a","type":"tool","tool":"echo_v1","args":{"msg":"one"}},
		{"id":"b","type":"tool","tool":"echo_v2","args":{"msg":"two"}}]}`
	res, err := rt.RunProgram(ctx, runtime.RunRequest{Program: json.RawMessage(prog)})
	if err != nil || res.Status != "success" || res.Steps != 2 {
		t.Fatalf("run: %+v %v", res, err)
	}
	out, _ := json.Marshal(res.FinalOutput)
	if !strings.Contains(string(out), `"plugin":"v2"`) || !strings.Contains(string(out), `"arguments":{"msg":"two"}`) {
		t.Errorf("final output %s", out)
	}
	rep, err := rt.VerifyAudit(ctx, res.TraceID)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Checked < 2 {
		t.Errorf("verify_audit: %+v, want ok over the run's envelopes", rep)
	}

	// An upload of a plugin gets the uploads grant, which has no network.
	_, err = rt.RegisterTools(ctx, mods["extism_v2"].Manifest, mods["extism_v2"].Wasm)
	if e, ok := runtime.AsError(err); !ok || e.Code != runtime.CodeCapabilityDenied || !strings.Contains(err.Error(), `"nanovm:http" is not granted to this upload`) {
		t.Fatalf("upload extism_v2: %v, want nanovm:http denied", err)
	}
	_, err = rt.RegisterToolLocal(ctx, mods["extism_ungranted"].Manifest, mods["extism_ungranted"].Wasm)
	e, ok := runtime.AsError(err)
	if !ok || e.Code != runtime.CodeToolRejected || !strings.Contains(err.Error(), "extism:host/user.create_message is not offered") {
		t.Fatalf("register extism_ungranted: %v", err)
	}
}

// Ensure an Extism plugin in the tools folder registers, at start-up, as
// the tools it describes.
func TestExtismPluginInToolsFolder(t *testing.T) {
	dir := t.TempDir()
	mods := testModules(t)
	folder := filepath.Join(dir, "tools", "extism_v2")
	if err := os.MkdirAll(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(folder, "manifest.json"), mods["extism_v2"].Manifest, 0o644)
	os.WriteFile(filepath.Join(folder, "plugin.wasm"), mods["extism_v2"].Wasm, 0o644)
	rt := openRuntime(t, runtime.Config{DBPath: filepath.Join(dir, "nano.db"), ToolsDir: filepath.Join(dir, "tools"), NoBundledTools: true})
	for _, name := range []string{"echo_v2", "fetch_v2"} {
		rec, err := rt.Tool(context.Background(), name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if rec.Source != store.SourceOperator {
			t.Errorf("%s: source %s, want operator", name, rec.Source)
		}
	}
}

// Ensure an upload of a plugin registers every tool it describes, and
// RegisterTools returns them all.
func TestExtismPluginUpload(t *testing.T) {
	rt := openRuntime(t, runtime.Config{NoBundledTools: true})
	mods := testModules(t)
	recs, err := rt.RegisterTools(context.Background(), mods["extism_v1"].Manifest, mods["extism_v1"].Wasm)
	if err != nil || len(recs) != 1 || recs[0].Name != "echo_v1" || recs[0].Source != store.SourceUpload {
		t.Fatalf("RegisterTools(extism_v1) = %+v, %v", recs, err)
	}
}
