package runtime

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/store"
	wasmtools "github.com/nanovm/nano-vm-mcp/wasm-tools"
)

// deepOutput stands for a value the acceptance checks failed to catch: it
// runs the real tool, then hands the kernel an output no canonical form
// holds (nested past canonical.MaxDepth).
type deepOutput struct{ inner kernel.ToolExecutor }

func (d deepOutput) Execute(ctx context.Context, call kernel.ToolCall) (kernel.ToolResult, error) {
	res, err := d.inner.Execute(ctx, call)
	var v any = []any{}
	for range 10_001 {
		v = []any{v}
	}
	res.Output = v
	return res, err
}

// Ensure a step whose record cannot be stored ends the run failed, with
// an error naming the step, instead of leaving it running and
// "resumable" forever (every resumption ran the step again and failed
// the same way); its idempotency key then returns that outcome.
func TestUnstorableStepEndsRunFailed(t *testing.T) {
	ctx := context.Background()
	rt, err := Open(ctx, Config{DBPath: filepath.Join(t.TempDir(), "nano.db"), VaultKey: []byte("0123456789abcdef0123456789abcdef"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), CacheDir: t.TempDir(), NoBundledTools: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	mods, err := wasmtools.TestTools()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mods {
		if m.Name == "raw_echo" {
			if _, err := rt.RegisterTool(ctx, m.Manifest, m.Wasm); err != nil {
				t.Fatal(err)
			}
		}
	}
	rt.executor = deepOutput{rt.executor}
	req := RunRequest{
		Program:        json.RawMessage(`{"steps":[{"id":"first","type":"tool","tool":"raw_echo","args":{"raw":"1"},"next_step":"echo"},{"id":"echo","type":"tool","tool":"raw_echo","args":{"raw":"1"},"is_terminal":true}]}`),
		IdempotencyKey: "k",
	}
	res, err := rt.RunProgram(ctx, req)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if res.Status != kernel.StatusFailed || !strings.Contains(res.Error, `step "first"`) || !strings.Contains(res.Error, "cannot be stored") || len(res.Error) > maxStoredError+100 {
		t.Fatalf("result %s: %.300s", res.Status, res.Error)
	}
	exec, err := rt.store.Run(ctx, res.TraceID)
	if err != nil || exec.Status != kernel.StatusFailed {
		t.Fatalf("stored status %q: %v", exec.Status, err)
	}
	if open, err := rt.store.Unfinished(ctx); err != nil || len(open) != 0 {
		t.Fatalf("unfinished: %v %v", open, err)
	}
	tv, err := rt.Trace(ctx, res.TraceID, 0, 10)
	if err != nil || tv.Status != kernel.StatusFailed || !strings.Contains(tv.Error, "cannot be stored") {
		t.Fatalf("trace: %+v %v", tv, err)
	}
	again, err := rt.RunProgram(ctx, req)
	if err != nil || !again.StoredOutcome || again.Status != kernel.StatusFailed || again.TraceID != res.TraceID {
		t.Fatalf("repeat of the key: %+v %v", again, err)
	}
	if rep, err := rt.VerifyAudit(ctx, ""); err != nil || !rep.OK {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	var _ store.Run = exec
}
