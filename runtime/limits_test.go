package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/nanovm/nano-vm-mcp/internal/jsonlimit"
	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/runtime/runtimetest"
	"github.com/nanovm/nano-vm-mcp/store"
)

const echoProgram = `{"steps":[{"id":"echo","type":"tool","tool":"raw_echo","args":{"raw":"$payload"},"is_terminal":true}]}`

// echoParallel runs raw_echo as a parallel sub-step: its output sits
// deepest in the records (sub_steps[].output).
const echoParallel = `{"steps":[{"id":"fan","type":"parallel","parallel_steps":[{"id":"a","type":"tool","tool":"raw_echo","args":{"raw":"$payload"}}],"is_terminal":true}]}`

func nestArrays(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }

func nestObjects(n int) string {
	return strings.Repeat(`{"k":`, n) + "1" + strings.Repeat("}", n)
}

// Ensure the nesting limit holds from both sides through the real
// runtime: a tool output at or under it is stored, listed, read back and
// verified; one level over is refused where it is accepted, naming the
// limit, and the run ends failed, not stuck running; either way the run
// is listed, its trace read and the chain verified.
func TestToolOutputDepthBoundary(t *testing.T) {
	rt := openRuntime(t, runtime.Config{})
	registerTestTool(t, rt, "raw_echo")
	ctx := context.Background()
	for _, prog := range []string{echoProgram, echoParallel} {
		for _, shape := range []struct {
			name string
			nest func(int) string
		}{{"arrays", nestArrays}, {"objects", nestObjects}} {
			for _, n := range []int{jsonlimit.MaxDepth - 1, jsonlimit.MaxDepth, jsonlimit.MaxDepth + 1} {
				name := fmt.Sprintf("%s/%s/%d", map[bool]string{true: "step", false: "parallel"}[prog == echoProgram], shape.name, n)
				t.Run(name, func(t *testing.T) {
					res, err := rt.RunProgram(ctx, runtime.RunRequest{Program: json.RawMessage(prog), Input: map[string]any{"payload": shape.nest(n)}})
					if err != nil {
						t.Fatalf("run: %v", err)
					}
					accepted := n <= jsonlimit.MaxDepth
					switch {
					case accepted && prog == echoProgram && res.Status != "success":
						t.Fatalf("depth %d: %s %s", n, res.Status, res.Error)
					case !accepted && (res.Status != "failed" || !strings.Contains(res.Error, `tool "raw_echo": invalid output: nesting depth 129 exceeds the limit of 128`)):
						t.Fatalf("depth %d: %s %q", n, res.Status, res.Error)
					}
					page, err := rt.Traces(ctx, store.RunFilter{Limit: 1})
					if err != nil || len(page.Runs) != 1 || page.Runs[0].ID != res.TraceID || len(page.Skipped) != 0 {
						t.Fatalf("list: %+v %v", page, err)
					}
					tv, err := rt.Trace(ctx, res.TraceID, 0, 10)
					if err != nil {
						t.Fatalf("trace: %v", err)
					}
					if tv.Status != res.Status || len(tv.Steps) != 1 {
						t.Fatalf("trace: %s, %d steps", tv.Status, len(tv.Steps))
					}
					if accepted {
						out := tv.Steps[0].Output
						if prog == echoParallel {
							out = tv.Steps[0].SubSteps[0].Output
						}
						if b, _ := json.Marshal(out); string(b) != shape.nest(n) {
							t.Fatalf("output read back as %.80s…", b)
						}
					}
					rep, err := rt.VerifyAudit(ctx, res.TraceID)
					if err != nil || !rep.OK {
						t.Fatalf("verify: %+v %v", rep, err)
					}
				})
			}
		}
	}
	rep, err := rt.VerifyAudit(ctx, "")
	if err != nil || !rep.OK {
		t.Fatalf("verify all: %+v %v", rep, err)
	}
}

// Ensure a program, an input and a resume payload nested past the limit,
// or a program and input past their size limits, are refused before
// anything runs, naming the limit; at the limit they are accepted.
func TestAcceptedDataLimits(t *testing.T) {
	rt := openRuntime(t, runtime.Config{})
	ctx := context.Background()
	deepValue := func(n int) any {
		var v any
		if err := json.Unmarshal([]byte(nestArrays(n)), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	// A program's args nest 4 levels above the value: the document, steps,
	// the step, args.
	program := func(n int) json.RawMessage {
		return json.RawMessage(`{"steps":[{"id":"a","type":"tool","tool":"audit_log","args":{"note":"x","deep":` + nestArrays(n-4) + `},"is_terminal":true}]}`)
	}
	simple := json.RawMessage(`{"steps":[{"id":"a","type":"tool","tool":"audit_log","args":{"note":"x"},"is_terminal":true}]}`)
	tests := []struct {
		name     string
		req      runtime.RunRequest
		wantCode string
		want     string
	}{
		{"program at the limit", runtime.RunRequest{Program: program(jsonlimit.MaxDepth)}, "", ""},
		{"program over", runtime.RunRequest{Program: program(jsonlimit.MaxDepth + 1)}, runtime.CodeInvalidProgram, "program: nesting depth 129 exceeds the limit of 128"},
		{"program too large", runtime.RunRequest{Program: json.RawMessage(`{"name":"` + strings.Repeat("n", jsonlimit.MaxProgramBytes) + `","steps":[]}`)}, runtime.CodeInvalidProgram, "over the limit of 1,048,576"},
		{"input at the limit", runtime.RunRequest{Program: simple, Input: map[string]any{"v": deepValue(jsonlimit.MaxDepth - 1)}}, "", ""},
		{"input over", runtime.RunRequest{Program: simple, Input: map[string]any{"v": deepValue(jsonlimit.MaxDepth)}}, runtime.CodeInvalidArgument, "input: nesting depth 129 exceeds the limit of 128"},
		{"input too large", runtime.RunRequest{Program: simple, Input: map[string]any{"v": strings.Repeat("i", jsonlimit.MaxInputBytes)}}, runtime.CodeInvalidArgument, "input is 4,194,"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := rt.RunProgram(ctx, tt.req)
			if tt.wantCode == "" {
				if err != nil || res.Status != "success" {
					t.Fatalf("%+v %v", res, err)
				}
				return
			}
			e, ok := runtime.AsError(err)
			if !ok || e.Code != tt.wantCode || !strings.Contains(e.Message, tt.want) || len(e.Message) > 1_000 {
				t.Fatalf("err %.300v, want %s %q", err, tt.wantCode, tt.want)
			}
		})
	}

	susp, err := rt.RunProgram(ctx, runtime.RunRequest{Program: readExampleFile(t, "momo_suspend", "program.json"), Input: map[string]any{"amount": 5.0, "order_id": "o"}})
	if err != nil || susp.Status != "suspended" {
		t.Fatalf("suspend: %+v %v", susp, err)
	}
	_, err = rt.Resume(ctx, susp.TraceID, map[string]any{"deep": deepValue(jsonlimit.MaxDepth)}, "WEBHOOK", nil)
	if e, ok := runtime.AsError(err); !ok || e.Code != runtime.CodeInvalidArgument || !strings.Contains(e.Message, "payload: nesting depth 129 exceeds the limit of 128") {
		t.Fatalf("deep payload: %v", err)
	}
	done, err := rt.Resume(ctx, susp.TraceID, map[string]any{"payment_status": "SUCCESS", "deep": deepValue(jsonlimit.MaxDepth - 1)}, "WEBHOOK", nil)
	if err != nil || done.Status != "success" {
		t.Fatalf("resume after a refused payload: %+v %v", done, err)
	}
}

// Ensure a stored step record that cannot be decoded (an older release's,
// or damaged) is reported as that record by Trace, with its own code,
// while the listing, the other runs and their resumption go on.
func TestUndecodableStepRecord(t *testing.T) {
	ctx := context.Background()
	cfg := runtime.Config{DBPath: filepath.Join(t.TempDir(), "nano.db"), VaultKey: runtimetest.VaultKey, Logger: runtimetest.Logger(), CacheDir: runtimetest.CacheDir}
	rt, err := runtime.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := rt.RunProgram(ctx, runtime.RunRequest{Program: readExample(t, "program.json"), Input: paymentInput()})
	if err != nil || bad.Status != "success" {
		t.Fatalf("%+v %v", bad, err)
	}
	susp, err := rt.RunProgram(ctx, runtime.RunRequest{Program: readExampleFile(t, "momo_suspend", "program.json"), Input: map[string]any{"amount": 5.0, "order_id": "o"}})
	if err != nil || susp.Status != "suspended" {
		t.Fatalf("%+v %v", susp, err)
	}
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	// What a release without the nesting limit could store: a record
	// nested past encoding/json's limit.
	db, err := bolt.Open(cfg.DBPath, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		key := append(append([]byte(bad.TraceID), 0), 0, 0, 0, 0, 0, 0, 0, 1)
		return tx.Bucket([]byte("steps")).Put(key, []byte(`{"index":1,"output":`+nestArrays(10_001)+`}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	rt, err = runtime.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	_, err = rt.Trace(ctx, bad.TraceID, 0, 10)
	e, ok := runtime.AsError(err)
	if !ok || e.Code != runtime.CodeRecordUndecodable || !strings.Contains(e.Message, "trace "+bad.TraceID+": step record 1 cannot be decoded") || len(e.Message) > 1_000 {
		t.Fatalf("trace of the damaged run: %.400v", err)
	}
	page, err := rt.Traces(ctx, store.RunFilter{})
	if err != nil || len(page.Runs) != 2 {
		t.Fatalf("list: %+v %v", page, err)
	}
	done, err := rt.Resume(ctx, susp.TraceID, map[string]any{"payment_status": "SUCCESS"}, "WEBHOOK", nil)
	if err != nil || done.Status != "success" {
		t.Fatalf("another run's resumption: %+v %v", done, err)
	}
}
