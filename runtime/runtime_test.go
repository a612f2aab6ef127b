package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/runtime/llm"
	"github.com/nanovm/nano-vm-mcp/runtime/runtimetest"
	"github.com/nanovm/nano-vm-mcp/store"
)

func quietLogger() *slog.Logger { return runtimetest.Logger() }

// openRuntime opens a runtime on a fresh database, verifying the audit chain
// and closing it at cleanup.
func openRuntime(t *testing.T, cfg runtime.Config) *runtime.Runtime {
	t.Helper()
	return runtimetest.Open(t, cfg)
}

func readExample(t *testing.T, name string) []byte {
	t.Helper()
	return readExampleFile(t, "payment_pipeline", name)
}

func readExampleFile(t *testing.T, example, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", example, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func paymentInput() map[string]any {
	return map[string]any{"amount": 125.5, "order_id": "order-abc-123"}
}

// Ensure the payment pipeline runs through the sandboxed bundled tools and
// leaves one verified envelope per step, with the module that ran.
func TestPaymentPipeline(t *testing.T) {
	rt := openRuntime(t, runtime.Config{})
	ctx := context.Background()
	res, err := rt.RunProgram(ctx, runtime.RunRequest{Program: readExample(t, "program.json"), Input: paymentInput()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != "success" || res.Steps != 4 {
		t.Fatalf("result %+v", res)
	}
	envs, err := rt.Envelopes(ctx, res.TraceID)
	if err != nil {
		t.Fatal(err)
	}
	if len(envs) != 4 {
		t.Fatalf("%d envelopes", len(envs))
	}
	for i, e := range envs {
		if e.StepIndex != i || len(e.ModuleSHA256) != 64 || len(e.ManifestSHA256) != 64 || e.PolicyHash != rt.Policy().Hash() || len(e.StateHash) != 64 {
			t.Fatalf("envelope %d: %+v", i, e)
		}
	}
	rep, err := rt.VerifyAudit(ctx, res.TraceID)
	if err != nil || !rep.OK || rep.Checked != 4 {
		t.Fatalf("verify %+v %v", rep, err)
	}
	tv, err := rt.Trace(ctx, res.TraceID, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	if tv.TotalSteps != 4 || len(tv.Steps) != 2 || tv.NextOffset == nil || *tv.NextOffset != 2 {
		t.Fatalf("trace page %+v", tv)
	}
	rr, err := rt.Replay(ctx, res.TraceID)
	if err != nil || !rr.Equivalent {
		t.Fatalf("replay %+v %v", rr, err)
	}
}

// Ensure a program using tools the policy does not allow is refused before
// it runs, naming every denied tool, parallel sub-steps included.
func TestPolicyDenied(t *testing.T) {
	rt := openRuntime(t, runtime.Config{PolicyPath: filepath.Join("..", "examples", "payment_pipeline", "policy.json")})
	prog := `{"steps":[{"id":"a","type":"tool","tool":"validate_amount","args":{"amount":1}},
		{"id":"p","type":"parallel","parallel_steps":[{"id":"x","type":"tool","tool":"issue_refund"},{"id":"y","type":"tool","tool":"audit_log"}]}]}`
	_, err := rt.RunProgram(context.Background(), runtime.RunRequest{Program: json.RawMessage(prog)})
	e, ok := runtime.AsError(err)
	if !ok || e.Code != runtime.CodeCapabilityDenied {
		t.Fatalf("err %v", err)
	}
	if d := e.Details["denied_tools"].([]string); strings.Join(d, ",") != "audit_log,issue_refund" {
		t.Fatalf("denied %v", d)
	}
	page, _ := rt.Traces(context.Background(), store.RunFilter{})
	if len(page.Runs) != 0 {
		t.Fatal("a denied program left a run")
	}
}

// Ensure idempotency keys: a repeat returns the stored outcome (a failure
// stays a failure), a different request is a conflict, and 32 concurrent
// callers get one run.
func TestIdempotency(t *testing.T) {
	rt := openRuntime(t, runtime.Config{})
	ctx := context.Background()
	prog := readExample(t, "program.json")
	first, err := rt.RunProgram(ctx, runtime.RunRequest{Program: prog, Input: paymentInput(), IdempotencyKey: "order-abc-123"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := rt.RunProgram(ctx, runtime.RunRequest{Program: prog, Input: paymentInput(), IdempotencyKey: "order-abc-123"})
	if err != nil || again.TraceID != first.TraceID || !again.StoredOutcome || again.Status != "success" {
		t.Fatalf("repeat %+v %v", again, err)
	}
	_, err = rt.RunProgram(ctx, runtime.RunRequest{Program: prog, Input: map[string]any{"amount": 1.0, "order_id": "x"}, IdempotencyKey: "order-abc-123"})
	if e, ok := runtime.AsError(err); !ok || e.Code != runtime.CodeIdempotencyConflict {
		t.Fatalf("conflict err %v", err)
	}

	// A failed run is stored as failed, and its stored outcome is failed.
	bad := map[string]any{"amount": -5.0, "order_id": "neg"}
	f1, err := rt.RunProgram(ctx, runtime.RunRequest{Program: prog, Input: bad, IdempotencyKey: "neg"})
	if err != nil || f1.Status != "failed" {
		t.Fatalf("failed run %+v %v", f1, err)
	}
	f2, err := rt.RunProgram(ctx, runtime.RunRequest{Program: prog, Input: bad, IdempotencyKey: "neg"})
	if err != nil || f2.Status != "failed" || !f2.StoredOutcome || f2.TraceID != f1.TraceID || !strings.Contains(f2.Error, "amount must be positive") {
		t.Fatalf("stored failure %+v %v", f2, err)
	}

	var wg sync.WaitGroup
	ids := make([]string, 32)
	errs := make([]error, 32)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := rt.RunProgram(ctx, runtime.RunRequest{Program: prog, Input: paymentInput(), IdempotencyKey: "burst"})
			errs[i] = err
			if r != nil {
				ids[i] = r.TraceID
			}
		}()
	}
	wg.Wait()
	for i := range 32 {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Fatalf("caller %d: %v %q vs %q", i, errs[i], ids[i], ids[0])
		}
	}
	page, err := rt.Traces(ctx, store.RunFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	runs := 0
	for _, e := range page.Runs {
		if e.IdempotencyKey == "burst" {
			runs++
		}
	}
	if runs != 1 {
		t.Fatalf("%d runs for one key", runs)
	}
}

// momoProgram reserves funds, then waits at poll (the bundled poll
// answers PENDING) for a payment event that ends in a receipt or a note.
const momoProgram = `{"name":"momo","steps":[
		{"id":"create","type":"tool","tool":"reserve_funds","args":{"order_id":"$order_id"},"output_key":"create_result"},
		{"id":"poll","type":"tool","tool":"poll","output_key":"poll_result"},
		{"id":"check","type":"condition","condition":"$poll_result.payment_status == 'SUCCESS'","then":"ok","otherwise":"pending"},
		{"id":"ok","type":"tool","tool":"send_receipt","args":{"order_id":"$order_id"},"is_terminal":true},
		{"id":"pending","type":"tool","tool":"audit_log","is_terminal":true}]}`

// Ensure a suspended run survives a restart and resumes with the event.
func TestSuspendResumeAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := runtime.Config{DBPath: filepath.Join(dir, "nano.db"), VaultKey: []byte("0123456789abcdef0123456789abcdef"), Logger: quietLogger(), CacheDir: runtimetest.CacheDir}
	prog := momoProgram
	rt, err := runtime.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := rt.RunProgram(context.Background(), runtime.RunRequest{Program: json.RawMessage(prog), Input: map[string]any{"order_id": "o1"}})
	if err != nil || res.Status != "suspended" || res.SuspendedStepID != "poll" {
		t.Fatalf("%+v %v", res, err)
	}
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	rt = openRuntime(t, cfg)
	un, err := rt.Unfinished(context.Background())
	if err != nil || len(un) != 1 || un[0].ID != res.TraceID {
		t.Fatalf("unfinished %v %v", un, err)
	}
	done, err := rt.Resume(context.Background(), res.TraceID, map[string]any{"payment_status": "SUCCESS"}, "WEBHOOK", nil)
	if err != nil || done.Status != "success" || done.TraceID != res.TraceID {
		t.Fatalf("resume %+v %v", done, err)
	}
	tv, err := rt.Trace(context.Background(), res.TraceID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if last := tv.Steps[len(tv.Steps)-1]; last.StepID != "ok" {
		t.Fatalf("last step %s", last.StepID)
	}
	_, err = rt.Resume(context.Background(), res.TraceID, nil, "WEBHOOK", nil)
	if e, ok := runtime.AsError(err); !ok || e.Code != runtime.CodeNotSuspended {
		t.Fatalf("second resume %v", err)
	}
}

// Ensure a secret never reaches the bbolt file in plaintext, erasure
// tombstones it everywhere, and the chain still verifies.
func TestSecretsAndErasure(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "nano.db")
	rt := openRuntime(t, runtime.Config{DBPath: db})
	ctx := context.Background()
	const plaintext = "sk_live_4242424242424242_supersecret"
	ref, err := rt.PutSecret(ctx, "card-4242", plaintext)
	if err != nil || ref != "vault://secret/card-4242" {
		t.Fatalf("%q %v", ref, err)
	}
	registerTestTool(t, rt, "secret_echo")
	// poll echoes its status argument: the ref travels through state; the
	// secret_echo tool resolves it inside the sandbox and echoes the value,
	// which must come back scrubbed to the ref.
	prog := `{"steps":[
		{"id":"carry","type":"tool","tool":"poll","args":{"status":"$card"},"output_key":"r"},
		{"id":"use","type":"tool","tool":"secret_echo","args":{"ref":"$card"}}]}`
	res, err := rt.RunProgram(ctx, runtime.RunRequest{Program: json.RawMessage(prog), Input: map[string]any{"card": ref}})
	if err != nil || res.Status != "success" {
		t.Fatalf("%+v %v", res, err)
	}
	full, _ := rt.Trace(ctx, res.TraceID, 0, 0)
	if out := full.Steps[1].Output.(map[string]any); out["length"] != float64(len(plaintext)) {
		t.Fatalf("the tool did not resolve the secret: %v", out)
	}
	tv, _ := rt.Trace(ctx, res.TraceID, 0, 0)
	before, _ := json.Marshal(tv)
	if strings.Contains(string(before), "card-4242") {
		t.Fatalf("trace shows the raw ref: %s", before)
	}
	if _, err := rt.EraseSecret(ctx, "card-4242"); err != nil {
		t.Fatal(err)
	}
	envs, _ := rt.Envelopes(ctx, res.TraceID)
	tv, _ = rt.Trace(ctx, res.TraceID, 0, 0)
	after, _ := json.Marshal(tv)
	envJSON, _ := json.Marshal(envs)
	if !strings.Contains(string(after), "[REDACTED_TOMBSTONE]") || !strings.Contains(string(envJSON), "[REDACTED_TOMBSTONE]") {
		t.Fatalf("no tombstone after erase:\n%s\n%s", after, envJSON)
	}
	// Erasure changes no record an envelope commits to: the run's records
	// (the refs, not the values) still hash to their envelopes.
	for _, scope := range []string{"", res.TraceID} {
		rep, err := rt.VerifyAudit(ctx, scope)
		if err != nil || !rep.OK || rep.RecordsChecked == 0 || len(rep.Records) != 0 {
			t.Fatalf("verify %q after erase %+v %v", scope, rep, err)
		}
	}
	raw, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), plaintext) {
		t.Fatal("plaintext secret found in the database file")
	}
	if _, err := rt.PutSecret(ctx, "card-4242", "again"); err == nil {
		t.Fatal("an erased id was reused")
	}
	if _, err := rt.EraseSecret(ctx, "card-4242"); err == nil {
		t.Fatal("a second erasure was accepted")
	} else if e, ok := runtime.AsError(err); !ok || e.Code != runtime.CodeTombstoned {
		t.Fatalf("second erasure: %v", err)
	}
}

// registerTestTool registers a test module as the operator would (the
// CLI): an upload gets only the uploads grant.
func registerTestTool(t *testing.T, rt *runtime.Runtime, name string) {
	t.Helper()
	m := runtimetest.TestTool(t, name)
	if _, err := rt.RegisterToolLocal(context.Background(), m.Manifest, m.Wasm); err != nil {
		t.Fatal(err)
	}
}

// Ensure llm steps without a model are refused with the variable to set.
func TestLLMWithoutModel(t *testing.T) {
	rt := openRuntime(t, runtime.Config{})
	_, err := rt.RunProgram(context.Background(), runtime.RunRequest{Program: json.RawMessage(`{"steps":[{"id":"a","type":"llm","prompt":"hi"}]}`)})
	if e, ok := runtime.AsError(err); !ok || e.Code != runtime.CodeNoModel || !strings.Contains(e.Message, "NANO_VM_MCP_LLM_MODEL") {
		t.Fatalf("err %v", err)
	}
}

// Ensure invalid programs are refused with a clear code and nothing runs.
func TestInvalidProgram(t *testing.T) {
	rt := openRuntime(t, runtime.Config{})
	_, err := rt.RunProgram(context.Background(), runtime.RunRequest{Program: json.RawMessage(`{"steps":[{"id":"a","type":"tool","tool":"x","bogus":1}]}`)})
	var e *runtime.Error
	if !errors.As(err, &e) || e.Code != runtime.CodeInvalidProgram || !strings.Contains(e.Message, "bogus") {
		t.Fatalf("err %v", err)
	}
}

// Ensure an idempotency key past its retention no longer returns the stored
// outcome: the request runs again.
func TestIdempotencyKeyExpires(t *testing.T) {
	rt := openRuntime(t, runtime.Config{IdempotencyTTL: time.Nanosecond})
	ctx := context.Background()
	prog := readExample(t, "program.json")
	a, err := rt.RunProgram(ctx, runtime.RunRequest{Program: prog, Input: paymentInput(), IdempotencyKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := rt.RunProgram(ctx, runtime.RunRequest{Program: prog, Input: paymentInput(), IdempotencyKey: "k"})
	if err != nil || b.TraceID == a.TraceID || b.StoredOutcome {
		t.Fatalf("expired key returned a stored outcome: %+v %v", b, err)
	}
	if n, err := rt.PurgeExpired(ctx); err != nil || n != 1 {
		t.Fatalf("purged %d %v", n, err)
	}
}

func mockLLM(t *testing.T, model string) kernel.LLMClient {
	t.Helper()
	c, err := llm.New(model, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Ensure a cancelled run is left resumable and the same key continues it
// without re-running completed steps.
func TestCancelledRunContinuesByKey(t *testing.T) {
	rt := openRuntime(t, runtime.Config{LLM: mockLLM(t, "mock/yes")})
	ctx, cancel := context.WithCancel(context.Background())
	prog := json.RawMessage(runtimetest.BarrierProgram)
	steps := 0
	res, err := rt.RunProgram(ctx, runtime.RunRequest{Program: prog, Input: paymentInput(), IdempotencyKey: "c", Progress: func(p runtime.Progress) {
		steps++
		if p.Index == 1 {
			cancel()
		}
	}})
	if err == nil || res == nil || res.Status != "running" || res.Steps != 2 {
		t.Fatalf("cancelled run: %+v %v", res, err)
	}
	// The record of a run still running is as of its first step; the
	// trace still counts every step that ran.
	view, err := rt.Trace(context.Background(), res.TraceID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if view.Status != "running" || view.TotalSteps != 2 || view.StepMetrics.ToolCalls != 2 {
		t.Fatalf("interrupted trace: status %s, %d steps, %d tool calls; want running, 2, 2", view.Status, view.TotalSteps, view.StepMetrics.ToolCalls)
	}
	done, err := rt.RunProgram(context.Background(), runtime.RunRequest{Program: prog, Input: paymentInput(), IdempotencyKey: "c", Progress: func(runtime.Progress) { steps++ }})
	if err != nil || done.Status != "success" || done.TraceID != res.TraceID || done.Steps != 5 {
		t.Fatalf("continued: %+v %v", done, err)
	}
	if steps != 5 {
		t.Fatalf("%d steps reported in total, want 5 (none twice)", steps)
	}
}

// Ensure a run interrupted right after its first step keeps the record it
// was started with (holding its start and initial state hash, so it
// continues), that the first step's envelope commits to that record, and
// that the audit, records included, holds both while it is running and
// once it is continued.
func TestFirstStepKeepsStartRecord(t *testing.T) {
	rt := openRuntime(t, runtime.Config{LLM: mockLLM(t, "mock/yes")})
	ctx, cancel := context.WithCancel(context.Background())
	prog := json.RawMessage(runtimetest.BarrierProgram)
	res, err := rt.RunProgram(ctx, runtime.RunRequest{Program: prog, Input: paymentInput(), IdempotencyKey: "first", Progress: func(p runtime.Progress) {
		if p.Index == 0 {
			cancel()
		}
	}})
	if err == nil || res == nil || res.Status != "running" || res.Steps != 1 {
		t.Fatalf("cancelled run: %+v %v", res, err)
	}
	exec, err := rt.Store().Run(context.Background(), res.TraceID)
	if err != nil {
		t.Fatal(err)
	}
	var hdr kernel.Trace
	if err := json.Unmarshal(exec.Header, &hdr); err != nil || hdr.InitialStateHash == "" || hdr.StartedAt.IsZero() || !exec.UpdatedAt.Equal(exec.CreatedAt) {
		t.Fatalf("record after the first step: header %s (%v), created %v, updated %v", exec.Header, err, exec.CreatedAt, exec.UpdatedAt)
	}
	envs, err := rt.Store().Envelopes(context.Background(), res.TraceID)
	if err != nil || len(envs) != 1 || envs[0].RunSHA256 == "" || envs[0].RunStatus != "running" {
		t.Fatalf("first envelope: %+v %v", envs, err)
	}
	rep, err := rt.VerifyAudit(context.Background(), "")
	if err != nil || !rep.OK || len(rep.Records) != 0 || len(rep.Notes) != 0 {
		t.Fatalf("verify while running: %+v %v", rep, err)
	}
	done, err := rt.RunProgram(context.Background(), runtime.RunRequest{Program: prog, Input: paymentInput(), IdempotencyKey: "first"})
	if err != nil || done.Status != "success" || done.TraceID != res.TraceID || done.Steps != 5 {
		t.Fatalf("continued: %+v %v", done, err)
	}
	if rep, err := rt.VerifyAudit(context.Background(), ""); err != nil || !rep.OK || len(rep.Records) != 0 {
		t.Fatalf("verify once continued: %+v %v", rep, err)
	}
}

// durableSteps is an LLM client that, when called, records how many of
// its run's steps are durable (readable from the store) at that moment.
type durableSteps struct {
	rt      func() *runtime.Runtime
	mu      sync.Mutex
	durable []int
}

func (d *durableSteps) Complete(ctx context.Context, req kernel.LLMRequest) (kernel.LLMResponse, error) {
	tv, err := d.rt().Trace(ctx, req.TraceID, 0, 100)
	if err != nil {
		return kernel.LLMResponse{}, err
	}
	d.mu.Lock()
	d.durable = append(d.durable, tv.TotalSteps)
	d.mu.Unlock()
	return kernel.LLMResponse{Text: "yes"}, nil
}

// Ensure that with pipelined commits an llm step starts only once every
// step before it is durable, and the run's result is given only once all
// its steps are; progress still reports each step once, in order.
func TestPipelinedCommitsWaitBeforeLLM(t *testing.T) {
	d := &durableSteps{}
	rt := openRuntime(t, runtime.Config{LLM: d, PipelinePureSteps: true})
	d.rt = func() *runtime.Runtime { return rt }
	var order []int
	for run := range 20 {
		order = order[:0]
		res, err := rt.RunProgram(context.Background(), runtime.RunRequest{Program: json.RawMessage(runtimetest.BarrierProgram), Input: paymentInput(),
			Progress: func(p runtime.Progress) { order = append(order, p.Index) }})
		if err != nil || res.Status != "success" || res.Steps != 5 {
			t.Fatalf("run %d: %+v %v", run, res, err)
		}
		if d.durable[run] != 2 {
			t.Fatalf("run %d: the llm step started with %d durable steps before it, want 2", run, d.durable[run])
		}
		tv, err := rt.Trace(context.Background(), res.TraceID, 0, 100)
		if err != nil || tv.TotalSteps != 5 || tv.Status != "success" {
			t.Fatalf("run %d: right after the result the store has %d steps, status %s (%v)", run, tv.TotalSteps, tv.Status, err)
		}
		if !slices.Equal(order, []int{0, 1, 2, 3, 4}) {
			t.Fatalf("run %d: progress %v", run, order)
		}
	}
}

// Ensure a tool sees of state exactly the keys the policy grants it (the
// TOOL projection), and nothing without a grant.
func TestToolStateProjection(t *testing.T) {
	policy := writePolicy(t, `policy_id: state-test
version: "1"
tool_capabilities:
  state_echo: ["nanovm:state"]
  poll: []
tool_state_keys:
  state_echo: ["order", "card"]
`)
	rt := openRuntime(t, runtime.Config{PolicyPath: policy})
	registerTestTool(t, rt, "state_echo")
	ctx := context.Background()
	ref, err := rt.PutSecret(ctx, "k1", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	prog := `{"steps":[{"id":"p","type":"tool","tool":"poll","args":{"status":"x"},"output_key":"order"},{"id":"see","type":"tool","tool":"state_echo"}]}`
	res, err := rt.RunProgram(ctx, runtime.RunRequest{Program: json.RawMessage(prog), Input: map[string]any{"card": ref, "hidden": "no"}})
	if err != nil || res.Status != "success" {
		t.Fatalf("%+v %v", res, err)
	}
	tv, _ := rt.Trace(ctx, res.TraceID, 0, 0)
	raw, _ := json.Marshal(tv.Steps[1].Output)
	if !strings.Contains(string(raw), `"order"`) || !strings.Contains(string(raw), `"card"`) || strings.Contains(string(raw), "hidden") || strings.Contains(string(raw), "s3cret") {
		t.Fatalf("tool saw %s", raw)
	}
}

// Ensure a failed step leaves an envelope committing to its record, the
// run's first envelope commits to the input and program as stored, and the
// run verifies with every record checked.
func TestFailedStepEnvelope(t *testing.T) {
	rt := openRuntime(t, runtime.Config{})
	ctx := context.Background()
	prog := []byte(`{"name":"bad","steps":[{"id":"v","type":"tool","tool":"validate_amount","args":{"amount":"$amount"}}]}`)
	res, err := rt.RunProgram(ctx, runtime.RunRequest{Program: prog, Input: map[string]any{"amount": -1}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != "failed" || res.Steps != 1 {
		t.Fatalf("result %+v, want one failed step", res)
	}
	envs, err := rt.Envelopes(ctx, res.TraceID)
	if err != nil || len(envs) != 1 {
		t.Fatalf("envelopes %+v %v, want one for the failed step", envs, err)
	}
	e := envs[0]
	exec, steps, err := rt.Store().RunTrace(ctx, res.TraceID)
	if err != nil || len(steps) != 1 {
		t.Fatalf("trace: %d steps, %v", len(steps), err)
	}
	if e.RecordSHA256 != store.RecordSHA256(steps[0].Data) || e.RunSHA256 == "" ||
		e.InputSHA256 != store.RecordSHA256(exec.Input) || e.ProgramSHA256 != store.RecordSHA256(exec.Program) {
		t.Errorf("envelope %+v does not commit to the stored records", e)
	}
	if !strings.Contains(string(e.Payload), `"status":"failed"`) {
		t.Errorf("payload %s does not say the step failed", e.Payload)
	}
	rep, err := rt.VerifyAudit(ctx, res.TraceID)
	// The step, the run record, the input and the program.
	if err != nil || !rep.OK || rep.RecordsChecked != 4 {
		t.Fatalf("verify %+v %v", rep, err)
	}
}
