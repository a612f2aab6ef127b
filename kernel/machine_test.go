package kernel_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/kernel/kerneltest"
)

func mustLoad(t testing.TB, src string) *kernel.Program {
	t.Helper()
	p, _, err := kernel.LoadProgram([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func loadFile(t testing.TB, name string) *kernel.Program {
	t.Helper()
	data, err := os.ReadFile("testdata/programs/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return mustLoad(t, string(data))
}

type env struct {
	clock *kerneltest.ManualClock
	tools *kerneltest.Tools
	llm   *kerneltest.LLM
	m     *kernel.Machine
}

// countingTools is the tools t, which returns out, and count, which
// returns how often it has been called (1, 2, …), counting afresh for each
// call of countingTools.
func countingTools(out string) map[string]kerneltest.ToolFunc {
	var n atomic.Int64
	return map[string]kerneltest.ToolFunc{
		"t":     kerneltest.Const(out),
		"count": func(context.Context, kernel.ToolCall) (any, error) { return float64(n.Add(1)), nil },
	}
}

func newEnv(funcs map[string]kerneltest.ToolFunc, answers ...string) *env {
	e := &env{
		clock: kerneltest.NewManualClock(),
		tools: &kerneltest.Tools{Funcs: funcs},
		llm:   &kerneltest.LLM{Answers: answers, Usage: kernel.Usage{PromptTokens: 7, CompletionTokens: 3, TotalTokens: 10}},
	}
	e.m = kernel.NewMachine(&kernel.Options{Tools: e.tools, LLM: e.llm, Clock: e.clock, IDs: &kerneltest.SeqIDs{}})
	return e
}

func (e *env) start(t testing.TB, p *kernel.Program, input map[string]any) *kernel.Trace {
	t.Helper()
	tr, err := e.m.Start(context.Background(), p, input, "")
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func visited(tr *kernel.Trace) []string {
	var ids []string
	for _, s := range tr.Steps {
		ids = append(ids, s.StepID)
	}
	return ids
}

// Ensure the momo example visits guard, create, poll, check, notify_ok.
func TestMomoExample(t *testing.T) {
	e := newEnv(map[string]kerneltest.ToolFunc{
		"create": kerneltest.Const(map[string]any{"id": "tx1"}),
		"poll":   kerneltest.Const(map[string]any{"payment_status": "SUCCESS"}),
		"notify": kerneltest.Echo(),
	})
	tr := e.start(t, loadFile(t, "momo_success.json"), map[string]any{"amount": 50000.0})
	if tr.Status != kernel.StatusSuccess {
		t.Fatalf("status %s: %s", tr.Status, tr.Error)
	}
	if got, want := visited(tr), []string{"guard", "create", "poll", "check", "notify_ok"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("visited %v, want %v", got, want)
	}
	if m := tr.StepMetrics; m.ToolCalls != 3 || m.ConditionEvals != 2 || m.LLMCalls != 0 {
		t.Errorf("metrics %+v", m)
	}
	if len(tr.StateSnapshots) != 5 || tr.StateRoot == "" || tr.FinishedAt == nil {
		t.Errorf("snapshots %d root %q", len(tr.StateSnapshots), tr.StateRoot)
	}
}

// Ensure the refund example branches on the model's answer and the prompt
// gets the input interpolated.
func TestRefundExample(t *testing.T) {
	for _, tt := range []struct {
		name, answer, want string
	}{
		{"yes refunds", " yes\n", "process_refund"},
		{"no rejects", "no", "reject"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(map[string]kerneltest.ToolFunc{"issue_refund": kerneltest.Echo(), "send_rejection": kerneltest.Echo()}, tt.answer)
			tr := e.start(t, loadFile(t, "customer_refund.json"), map[string]any{"user_input": "broken toaster"})
			if tr.Status != kernel.StatusSuccess {
				t.Fatalf("status %s: %s", tr.Status, tr.Error)
			}
			if got := visited(tr); got[len(got)-1] != tt.want || len(got) != 3 {
				t.Fatalf("visited %v", got)
			}
			if p := e.llm.Requests()[0].Prompt; !strings.HasSuffix(p, "Request: broken toaster") {
				t.Errorf("prompt %q", p)
			}
			if tr.Usage.TotalTokens != 10 {
				t.Errorf("usage %+v", tr.Usage)
			}
		})
	}
}

// Ensure transitions follow next_step, then is_terminal, then array order,
// also after a branch target.
func TestTransitions(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		input map[string]any
		want  []string
	}{
		{"array order", `{"steps":[{"id":"a","type":"tool","tool":"t"},{"id":"b","type":"tool","tool":"t"}]}`, nil, []string{"a", "b"}},
		{"next_step jumps", `{"steps":[{"id":"a","type":"tool","tool":"t","next_step":"c"},{"id":"b","type":"tool","tool":"t"},{"id":"c","type":"tool","tool":"t"}]}`, nil, []string{"a", "c"}},
		{"next_step beats is_terminal", `{"steps":[{"id":"a","type":"tool","tool":"t","is_terminal":true,"next_step":"c"},{"id":"b","type":"tool","tool":"t"},{"id":"c","type":"tool","tool":"t"}]}`, nil, []string{"a", "c"}},
		{"is_terminal stops", `{"steps":[{"id":"a","type":"tool","tool":"t","is_terminal":true},{"id":"b","type":"tool","tool":"t"}]}`, nil, []string{"a"}},
		{"branch target falls through", `{"steps":[
			{"id":"c","type":"condition","condition":"$go","then":"x","otherwise":"y"},
			{"id":"x","type":"tool","tool":"t"},
			{"id":"after_x","type":"tool","tool":"t","is_terminal":true},
			{"id":"y","type":"tool","tool":"t"}]}`, map[string]any{"go": true}, []string{"c", "x", "after_x"}},
		{"otherwise taken", `{"steps":[
			{"id":"c","type":"condition","condition":"$go","then":"x","otherwise":"y"},
			{"id":"x","type":"tool","tool":"t","is_terminal":true},
			{"id":"y","type":"tool","tool":"t"}]}`, map[string]any{"go": false}, []string{"c", "y"}},
		{"missing otherwise falls through", `{"steps":[
			{"id":"c","type":"condition","condition":"$go","then":"z"},
			{"id":"y","type":"tool","tool":"t"},
			{"id":"z","type":"tool","tool":"t"}]}`, map[string]any{"go": false}, []string{"c", "y", "z"}},
		{"bounded loop", `{"max_steps":20,"steps":[
			{"id":"inc","type":"tool","tool":"count","output_key":"n"},
			{"id":"c","type":"condition","condition":"$n < 3","then":"inc","otherwise":"done"},
			{"id":"done","type":"tool","tool":"t"}]}`, nil, []string{"inc", "c", "inc", "c", "inc", "c", "done"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(countingTools("ok"))
			tr := e.start(t, mustLoad(t, tt.src), tt.input)
			if tr.Status != kernel.StatusSuccess {
				t.Fatalf("status %s: %s", tr.Status, tr.Error)
			}
			if got := visited(tr); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("visited %v, want %v", got, tt.want)
			}
		})
	}
}

// Ensure $refs resolve the same way in args: typed when the whole string is
// one reference, interpolated otherwise, literal when missing; paths reach
// into outputs, output_key data and $step.output.x.
func TestRefResolution(t *testing.T) {
	p := mustLoad(t, `{"steps":[
		{"id":"first","type":"tool","tool":"const","output_key":"res"},
		{"id":"probe","type":"tool","tool":"echo","args":{
			"typed":"$res","deep":"$res.order.amount","by_id":"$first.order.amount","by_output":"$first.output.order.amount",
			"text":"order $res.order.id costs $res.order.amount!","obj_in_text":"got $res.order","missing":"$nope.x",
			"missing_in_text":"a $nope b","price":"costs $5","input":"$user","list":["$user", 1, {"k":"$res.order.id"}]}}]}`)
	e := newEnv(map[string]kerneltest.ToolFunc{
		"const": kerneltest.Const(map[string]any{"order": map[string]any{"id": "o-1", "amount": 42.0}}),
		"echo":  kerneltest.Echo(),
	})
	tr := e.start(t, p, map[string]any{"user": "ann"})
	if tr.Status != kernel.StatusSuccess {
		t.Fatal(tr.Error)
	}
	got := tr.Steps[1].Output.(map[string]any)
	want := map[string]any{
		"typed":           map[string]any{"order": map[string]any{"id": "o-1", "amount": 42.0}},
		"deep":            42.0,
		"by_id":           42.0,
		"by_output":       42.0,
		"text":            "order o-1 costs 42!",
		"obj_in_text":     `got {"amount":42,"id":"o-1"}`,
		"missing":         "$nope.x",
		"missing_in_text": "a $nope b",
		"price":           "costs $5",
		"input":           "ann",
		"list":            []any{"ann", 1.0, map[string]any{"k": "o-1"}},
	}
	for k, w := range want {
		if !reflect.DeepEqual(got[k], w) {
			t.Errorf("%s = %#v, want %#v", k, got[k], w)
		}
	}
	// The program's own args were not modified by resolution.
	if p.Steps[1].Args["typed"] != "$res" {
		t.Error("program args mutated")
	}
}

// Ensure budgets end the run with the original's exact messages.
func TestBudgets(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		status  kernel.Status
		wantErr string
		steps   int
	}{
		{"max_steps=0 trips at once", `{"max_steps":0,"steps":[{"id":"a","type":"tool","tool":"t"}]}`, kernel.StatusBudgetExceeded, "max_steps=0 exceeded after 0 step(s)", 0},
		{"max_steps stops a loop", `{"max_steps":3,"steps":[{"id":"a","type":"tool","tool":"count","next_step":"a"}]}`, kernel.StatusBudgetExceeded, "max_steps=3 exceeded after 3 step(s)", 3},
		{"max_tokens=0 trips at once", `{"max_tokens":0,"steps":[{"id":"a","type":"llm","prompt":"hi"}]}`, kernel.StatusBudgetExceeded, "max_tokens=0 exceeded: 0 tokens consumed", 0},
		{"max_tokens after usage", `{"max_tokens":15,"steps":[{"id":"a","type":"llm","prompt":"hi"},{"id":"b","type":"llm","prompt":"hi"},{"id":"c","type":"llm","prompt":"hi"}]}`, kernel.StatusBudgetExceeded, "max_tokens=15 exceeded: 20 tokens consumed", 2},
		{"stall", `{"max_steps":50,"max_stalled_steps":2,"steps":[{"id":"a","type":"tool","tool":"t","next_step":"a"}]}`, kernel.StatusStalled, "max_stalled_steps=2 exceeded: 2 consecutive no-op step(s)", 3},
		{"progress resets stall", `{"max_steps":6,"max_stalled_steps":2,"steps":[{"id":"a","type":"tool","tool":"count","next_step":"a"}]}`, kernel.StatusBudgetExceeded, "max_steps=6 exceeded after 6 step(s)", 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(countingTools("same"), "ok")
			tr := e.start(t, mustLoad(t, tt.src), nil)
			if tr.Status != tt.status || tr.Error != tt.wantErr {
				t.Fatalf("got %s %q, want %s %q", tr.Status, tr.Error, tt.status, tt.wantErr)
			}
			if len(tr.Steps) != tt.steps {
				t.Fatalf("%d steps, want %d", len(tr.Steps), tt.steps)
			}
		})
	}
}

// Ensure the server's step ceiling refuses a program asking for more and
// stops every run at the ceiling: one without max_steps, one whose
// max_steps is below it (its own cap wins), and one stored with a larger
// max_steps before the ceiling was lowered (clamped, not refused).
func TestStepCeiling(t *testing.T) {
	long := `{"steps":[{"id":"a","type":"tool","tool":"t"},{"id":"b","type":"tool","tool":"t"},{"id":"c","type":"tool","tool":"t"},{"id":"d","type":"tool","tool":"t"}]}`
	loop := `{"max_steps":50,"steps":[{"id":"a","type":"tool","tool":"count","next_step":"a"}]}`
	tests := []struct {
		name     string
		src      string
		ceiling  int
		checkErr string
		status   kernel.Status
		wantErr  string
		steps    int
	}{
		{name: "no max_steps, capped", src: long, ceiling: 2, status: kernel.StatusBudgetExceeded, wantErr: "the server's ceiling of 2 steps per run exceeded", steps: 2},
		{name: "no max_steps, under the ceiling", src: long, ceiling: 4, status: kernel.StatusSuccess, steps: 4},
		{name: "max_steps below the ceiling wins", src: loop, ceiling: 100, status: kernel.StatusBudgetExceeded, wantErr: "max_steps=50 exceeded after 50 step(s)", steps: 50},
		{name: "max_steps above the ceiling refused, clamped when stored", src: loop, ceiling: 5,
			checkErr: "invalid program: program field \"max_steps\": 50 is above the server's ceiling of 5 steps per run",
			status:   kernel.StatusBudgetExceeded, wantErr: "the server's ceiling of 5 steps per run exceeded", steps: 5},
		{name: "no ceiling", src: loop, ceiling: 0, status: kernel.StatusBudgetExceeded, wantErr: "max_steps=50 exceeded after 50 step(s)", steps: 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustLoad(t, tt.src)
			err := p.CheckSteps(tt.ceiling)
			if (err == nil) != (tt.checkErr == "") || (err != nil && err.Error() != tt.checkErr) {
				t.Fatalf("CheckSteps(%d) = %v, want %q", tt.ceiling, err, tt.checkErr)
			}
			var ve *kernel.ValidationError
			if err != nil && (!errors.As(err, &ve) || ve.Problems[0].Field != "max_steps") {
				t.Fatalf("CheckSteps error %T does not name the field", err)
			}
			p.CapSteps(tt.ceiling)
			e := newEnv(countingTools("ok"))
			tr := e.start(t, p, nil)
			if tr.Status != tt.status || tr.Error != tt.wantErr || len(tr.Steps) != tt.steps {
				t.Fatalf("got %s %q after %d steps, want %s %q after %d", tr.Status, tr.Error, len(tr.Steps), tt.status, tt.wantErr, tt.steps)
			}
			// A replay of the capped run is equivalent.
			rep, err := kernel.Replay(context.Background(), p, nil, tr)
			if err != nil || !rep.Equivalent {
				t.Fatalf("replay: %v %+v", err, rep)
			}
		})
	}
}

// Ensure retries back off 1 s, 2 s, 4 s … capped at 30 s, through the clock.
func TestRetryBackoff(t *testing.T) {
	e := newEnv(map[string]kerneltest.ToolFunc{"flaky": kerneltest.FailTimes(7, "done")})
	tr := e.start(t, mustLoad(t, `{"steps":[{"id":"a","type":"tool","tool":"flaky","on_error":"retry","max_retries":8}]}`), nil)
	if tr.Status != kernel.StatusSuccess {
		t.Fatalf("status %s %s", tr.Status, tr.Error)
	}
	want := []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	if got := e.clock.Sleeps(); !reflect.DeepEqual(got, want) {
		t.Fatalf("sleeps %v, want %v", got, want)
	}
	if s := tr.Steps[0]; s.Retries != 7 || s.Output != "done" || tr.StepMetrics.RetriesTotal != 7 || tr.StepMetrics.ToolCalls != 8 {
		t.Fatalf("record %+v metrics %+v", s, tr.StepMetrics)
	}
}

// Ensure on_error fail, skip and exhausted retries behave as documented.
func TestOnError(t *testing.T) {
	tests := []struct {
		name    string
		step    string
		status  kernel.Status
		rec     kernel.StepStatus
		retries int
		errSub  string
	}{
		{"fail is the default", `{"id":"a","type":"tool","tool":"bad"}`, kernel.StatusFailed, kernel.StepFailed, 0, `step "a": boom`},
		{"skip continues with null", `{"id":"a","type":"tool","tool":"bad","on_error":"skip","output_key":"k"}`, kernel.StatusSuccess, kernel.StepSkipped, 0, ""},
		{"retry exhausted fails", `{"id":"a","type":"tool","tool":"bad","on_error":"retry"}`, kernel.StatusFailed, kernel.StepFailed, 2, "boom"},
		{"unknown tool fails", `{"id":"a","type":"tool","tool":"nope"}`, kernel.StatusFailed, kernel.StepFailed, 0, `tool "nope" not registered`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(map[string]kerneltest.ToolFunc{
				"bad":  func(context.Context, kernel.ToolCall) (any, error) { return nil, errors.New("boom") },
				"next": kerneltest.Echo(),
			})
			p := mustLoad(t, `{"steps":[`+tt.step+`,{"id":"after","type":"tool","tool":"next","args":{"k":"$k"}}]}`)
			tr := e.start(t, p, nil)
			if tr.Status != tt.status || tr.Steps[0].Status != tt.rec || tr.Steps[0].Retries != tt.retries {
				t.Fatalf("run %s step %s retries %d (%s)", tr.Status, tr.Steps[0].Status, tr.Steps[0].Retries, tr.Error)
			}
			if !strings.Contains(tr.Error+tr.Steps[0].Error, tt.errSub) {
				t.Fatalf("error %q / %q lacks %q", tr.Error, tr.Steps[0].Error, tt.errSub)
			}
			if tt.rec == kernel.StepSkipped {
				if tr.Steps[0].Output != nil || tr.Steps[1].Output.(map[string]any)["k"] != nil {
					t.Fatalf("skipped output %v, next saw %v", tr.Steps[0].Output, tr.Steps[1].Output)
				}
			}
		})
	}
}

// Ensure allowed_outputs gates the model's stripped answer.
func TestAllowedOutputs(t *testing.T) {
	tests := []struct {
		name    string
		policy  string
		answers []string
		status  kernel.StepStatus
		output  any
		retries int
	}{
		{"match after strip", ``, []string{"  yes \n"}, kernel.StepSuccess, "yes", 0},
		{"mismatch fails", ``, []string{"maybe"}, kernel.StepFailed, nil, 0},
		{"mismatch skip gives first allowed", `,"on_error":"skip"`, []string{"maybe"}, kernel.StepSkipped, "yes", 0},
		{"mismatch retried", `,"on_error":"retry"`, []string{"maybe", "no"}, kernel.StepSuccess, "no", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(nil, tt.answers...)
			tr := e.start(t, mustLoad(t, `{"steps":[{"id":"a","type":"llm","prompt":"p","allowed_outputs":["yes","no"]`+tt.policy+`}]}`), nil)
			s := tr.Steps[0]
			if s.Status != tt.status || s.Output != tt.output || s.Retries != tt.retries {
				t.Fatalf("got %s %v %d (%s)", s.Status, s.Output, s.Retries, s.Error)
			}
			if tt.status == kernel.StepFailed && !strings.Contains(s.Error, `"maybe" is not one of allowed_outputs`) {
				t.Fatalf("error %q", s.Error)
			}
		})
	}
}

// slow returns a tool that lets the clock pass d, then waits for its
// context: a call that takes d of (manual) time.
func slow(clock *kerneltest.ManualClock, d time.Duration) kerneltest.ToolFunc {
	return func(ctx context.Context, _ kernel.ToolCall) (any, error) {
		clock.Advance(d)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		default:
			return "finished", nil
		}
	}
}

// Ensure timeout_seconds times out an attempt, on_timeout fallback gives
// allowed_outputs[0] or "", and without fallback a timeout is an error.
func TestTimeouts(t *testing.T) {
	tests := []struct {
		name   string
		step   string
		status kernel.StepStatus
		output any
		errSub string
	}{
		{"fast enough", `{"id":"a","type":"tool","tool":"slow","timeout_seconds":10}`, kernel.StepSuccess, "finished", ""},
		{"tool fallback", `{"id":"a","type":"tool","tool":"slow","timeout_seconds":2,"on_timeout":"fallback"}`, kernel.StepSuccess, "", ""},
		{"timeout fails", `{"id":"a","type":"tool","tool":"slow","timeout_seconds":2}`, kernel.StepFailed, nil, "timed out after 2s"},
		{"timeout skipped", `{"id":"a","type":"tool","tool":"slow","timeout_seconds":2,"on_error":"skip"}`, kernel.StepSkipped, nil, "timed out after 2s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(nil)
			e.tools.Funcs = map[string]kerneltest.ToolFunc{"slow": slow(e.clock, 5*time.Second)}
			tr := e.start(t, mustLoad(t, `{"steps":[`+tt.step+`]}`), nil)
			s := tr.Steps[0]
			if s.Status != tt.status || s.Output != tt.output || !strings.Contains(s.Error, tt.errSub) {
				t.Fatalf("got %s %#v %q", s.Status, s.Output, s.Error)
			}
			if tt.name == "tool fallback" && !s.TimedOut {
				t.Fatal("timed_out not recorded")
			}
		})
	}
	t.Run("llm fallback", func(t *testing.T) {
		e := newEnv(nil)
		slowLLM := llmFunc(func(ctx context.Context, _ kernel.LLMRequest) (kernel.LLMResponse, error) {
			e.clock.Advance(time.Minute)
			<-ctx.Done()
			return kernel.LLMResponse{}, ctx.Err()
		})
		m := kernel.NewMachine(&kernel.Options{LLM: slowLLM, Clock: e.clock})
		tr, err := m.Start(t.Context(), mustLoad(t, `{"steps":[{"id":"a","type":"llm","prompt":"p","allowed_outputs":["no","yes"],"timeout_seconds":30,"on_timeout":"fallback"}]}`), nil, "")
		if err != nil || tr.Steps[0].Output != "no" || !tr.Steps[0].TimedOut {
			t.Fatalf("err %v step %+v", err, tr.Steps[0])
		}
	})
}

type llmFunc func(context.Context, kernel.LLMRequest) (kernel.LLMResponse, error)

func (f llmFunc) Complete(ctx context.Context, r kernel.LLMRequest) (kernel.LLMResponse, error) {
	return f(ctx, r)
}

// Ensure parallel sub-steps respect max_concurrency, produce their output in
// program order, and follow the parent's on_error.
func TestParallel(t *testing.T) {
	var inFlight, peak atomic.Int64
	release := make(chan struct{})
	gate := func(ctx context.Context, c kernel.ToolCall) (any, error) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		inFlight.Add(-1)
		return c.Args["v"], nil
	}
	e := newEnv(map[string]kerneltest.ToolFunc{"gate": gate})
	var subs []string
	for i := range 6 {
		subs = append(subs, fmt.Sprintf(`{"id":"s%d","type":"tool","tool":"gate","args":{"v":%d}}`, i, i))
	}
	p := mustLoad(t, `{"steps":[{"id":"fan","type":"parallel","max_concurrency":2,"output_key":"all","parallel_steps":[`+strings.Join(subs, ",")+`]}]}`)
	go func() {
		for range 6 {
			release <- struct{}{}
		}
	}()
	tr := e.start(t, p, nil)
	if tr.Status != kernel.StatusSuccess {
		t.Fatal(tr.Error)
	}
	if peak.Load() > 2 {
		t.Fatalf("peak concurrency %d > 2", peak.Load())
	}
	out := tr.Steps[0].Output.(map[string]any)
	for i := range 6 {
		if out[fmt.Sprintf("s%d", i)] != float64(i) {
			t.Fatalf("output %v", out)
		}
	}
	for i, s := range tr.Steps[0].SubSteps {
		if s.StepID != fmt.Sprintf("s%d", i) {
			t.Fatalf("sub-step order %v", tr.Steps[0].SubSteps)
		}
	}
	if tr.StepMetrics.ToolCalls != 6 {
		t.Errorf("metrics %+v", tr.StepMetrics)
	}

	t.Run("skip gives null", func(t *testing.T) {
		e := newEnv(map[string]kerneltest.ToolFunc{"ok": kerneltest.Const(1.0), "bad": func(context.Context, kernel.ToolCall) (any, error) { return nil, errors.New("down") }})
		tr := e.start(t, mustLoad(t, `{"steps":[{"id":"p","type":"parallel","on_error":"skip","parallel_steps":[{"id":"a","type":"tool","tool":"ok"},{"id":"b","type":"tool","tool":"bad"}]}]}`), nil)
		if tr.Status != kernel.StatusSuccess || tr.Steps[0].SubSteps[1].Status != kernel.StepSkipped {
			t.Fatalf("%s %+v", tr.Error, tr.Steps[0].SubSteps)
		}
		if out := tr.Steps[0].Output.(map[string]any); out["a"] != 1.0 || out["b"] != nil {
			t.Fatalf("output %v", out)
		}
	})
	t.Run("fail fails the step", func(t *testing.T) {
		e := newEnv(map[string]kerneltest.ToolFunc{"ok": kerneltest.Const(1.0), "bad": func(context.Context, kernel.ToolCall) (any, error) { return nil, errors.New("down") }})
		tr := e.start(t, mustLoad(t, `{"steps":[{"id":"p","type":"parallel","parallel_steps":[{"id":"a","type":"tool","tool":"ok"},{"id":"b","type":"tool","tool":"bad"}]}]}`), nil)
		if tr.Status != kernel.StatusFailed || !strings.Contains(tr.Error, "sub-step b: down") {
			t.Fatalf("%s %q", tr.Status, tr.Error)
		}
	})
}

// Ensure a PENDING tool result suspends the run, Resume continues after the
// suspended step with the webhook data, and a second resume is refused.
func TestSuspendResume(t *testing.T) {
	for _, pending := range []any{"PENDING", map[string]any{"status": "PENDING"}} {
		t.Run(fmt.Sprint(pending), func(t *testing.T) {
			e := newEnv(map[string]kerneltest.ToolFunc{
				"create": kerneltest.Const(map[string]any{"id": "tx1"}),
				"poll":   kerneltest.Const(pending),
				"notify": kerneltest.Echo(),
			})
			p := loadFile(t, "momo_success.json")
			input := map[string]any{"amount": 50000.0}
			tr := e.start(t, p, input)
			if tr.Status != kernel.StatusSuspended || tr.SuspendedStepID != "poll" {
				t.Fatalf("status %s at %q", tr.Status, tr.SuspendedStepID)
			}
			if _, err := e.m.Continue(t.Context(), p, input, tr); err == nil {
				t.Fatal("Continue of a suspended run succeeded")
			}
			// A fresh machine, as after a restart, resumes from the trace.
			m2 := kernel.NewMachine(&kernel.Options{Tools: e.tools, Clock: e.clock})
			ev := kernel.ResumeEvent{TraceID: tr.TraceID, Payload: map[string]any{"payment_status": "SUCCESS"}, Source: kernel.SourceWebhook}
			done, err := m2.Resume(t.Context(), p, input, tr, ev)
			if err != nil {
				t.Fatal(err)
			}
			if done.Status != kernel.StatusSuccess || done.TraceID != tr.TraceID {
				t.Fatalf("status %s id %s", done.Status, done.TraceID)
			}
			if got, want := visited(done), []string{"guard", "create", "poll", "poll", "check", "notify_ok"}; !reflect.DeepEqual(got, want) {
				t.Fatalf("visited %v", got)
			}
			if done.Steps[3].Kind != kernel.KindResume || done.Steps[3].Source != "WEBHOOK" {
				t.Fatalf("resume record %+v", done.Steps[3])
			}
			if _, err := m2.Resume(t.Context(), p, input, done, ev); !errors.Is(err, kernel.ErrNotSuspended) {
				t.Fatalf("second resume: %v", err)
			}
		})
	}
}

// Ensure a cancelled run is left running and Continue finishes it from its
// last recorded step without re-running completed steps.
func TestInterruptAndContinue(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int64
	e := newEnv(map[string]kerneltest.ToolFunc{
		"t": func(_ context.Context, c kernel.ToolCall) (any, error) {
			if calls.Add(1) == 2 {
				cancel()
			}
			return c.StepID, nil
		},
	})
	p := mustLoad(t, `{"steps":[{"id":"a","type":"tool","tool":"t"},{"id":"b","type":"tool","tool":"t"},{"id":"c","type":"tool","tool":"t"}]}`)
	tr, err := e.m.Start(ctx, p, nil, "")
	if !errors.Is(err, context.Canceled) || tr.Status != kernel.StatusRunning || len(tr.Steps) != 1 {
		t.Fatalf("err %v status %s steps %d", err, tr.Status, len(tr.Steps))
	}
	done, err := e.m.Continue(t.Context(), p, nil, tr)
	if err != nil || done.Status != kernel.StatusSuccess {
		t.Fatalf("continue: %v %s", err, done.Status)
	}
	if got := visited(done); !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
		t.Fatalf("visited %v", got)
	}
	// a ran once; b twice (in flight at the interruption); c once.
	if calls.Load() != 4 {
		t.Fatalf("%d calls", calls.Load())
	}
}

// Ensure Continue refuses a trace that does not fit the program.
func TestContinueRejectsForeignTrace(t *testing.T) {
	e := newEnv(map[string]kerneltest.ToolFunc{"t": kerneltest.Const(1.0)})
	p := mustLoad(t, `{"steps":[{"id":"a","type":"tool","tool":"t"},{"id":"b","type":"tool","tool":"t"}]}`)
	tr := e.start(t, p, nil)
	tr.Status = kernel.StatusRunning
	tr.Steps = tr.Steps[:1]
	tr.Steps[0].StateHash = strings.Repeat("0", 64)
	if _, err := e.m.Continue(t.Context(), p, nil, tr); !errors.Is(err, kernel.ErrTraceMismatch) {
		t.Fatalf("err %v", err)
	}
}

// Ensure the observer sees every step and can stop a run.
func TestObserver(t *testing.T) {
	obs := &recordingObserver{failAt: 2}
	e := newEnv(map[string]kerneltest.ToolFunc{"t": kerneltest.Const(1.0)})
	m := kernel.NewMachine(&kernel.Options{Tools: e.tools, Clock: e.clock, Observer: obs})
	p := mustLoad(t, `{"steps":[{"id":"a","type":"tool","tool":"t"},{"id":"b","type":"tool","tool":"t"},{"id":"c","type":"tool","tool":"t"}]}`)
	tr, err := m.Start(t.Context(), p, nil, "x")
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err %v", err)
	}
	if tr.Status != kernel.StatusRunning || obs.started != 2 || obs.finished != 2 {
		t.Fatalf("status %s started %d finished %d", tr.Status, obs.started, obs.finished)
	}
}

// Ensure the last step's event already carries the run's end, so an
// observer can make the outcome durable with the step, and that a run
// whose end the observer refused stays resumable.
func TestObserverSeesEndWithLastStep(t *testing.T) {
	e := newEnv(map[string]kerneltest.ToolFunc{"t": kerneltest.Const(1.0), "bad": kerneltest.FailTimes(1_000_000, nil)})
	for _, tc := range []struct {
		name, program string
		want          []kernel.Status
	}{
		{"success", `{"steps":[{"id":"a","type":"tool","tool":"t"},{"id":"b","type":"tool","tool":"t"}]}`, []kernel.Status{kernel.StatusRunning, kernel.StatusSuccess}},
		{"failure", `{"steps":[{"id":"a","type":"tool","tool":"t"},{"id":"b","type":"tool","tool":"bad"},{"id":"c","type":"tool","tool":"t"}]}`, []kernel.Status{kernel.StatusRunning, kernel.StatusFailed}},
		{"branch to end", `{"steps":[{"id":"a","type":"condition","condition":"1 == 1","then":"z"},{"id":"b","type":"tool","tool":"t"},{"id":"z","type":"tool","tool":"t","is_terminal":true}]}`, []kernel.Status{kernel.StatusRunning, kernel.StatusSuccess}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obs := &statusObserver{}
			m := kernel.NewMachine(&kernel.Options{Tools: e.tools, Clock: e.clock, Observer: obs})
			tr, err := m.Start(t.Context(), mustLoad(t, tc.program), nil, "x")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(obs.statuses, tc.want) || tr.Status != tc.want[len(tc.want)-1] {
				t.Fatalf("observer saw %v, run ended %s; want %v", obs.statuses, tr.Status, tc.want)
			}
			if obs.lastFinishedAt == nil || obs.lastRoot == "" {
				t.Fatalf("the last event lacks the end: finished_at %v, state_root %q", obs.lastFinishedAt, obs.lastRoot)
			}
		})
	}
	t.Run("end refused", func(t *testing.T) {
		obs := &recordingObserver{failAt: 2}
		m := kernel.NewMachine(&kernel.Options{Tools: e.tools, Clock: e.clock, Observer: obs})
		p := mustLoad(t, `{"steps":[{"id":"a","type":"tool","tool":"t"},{"id":"b","type":"tool","tool":"t"}]}`)
		tr, err := m.Start(t.Context(), p, nil, "x")
		if err == nil || tr.Status != kernel.StatusRunning {
			t.Fatalf("status %s, err %v; want running and the observer's error", tr.Status, err)
		}
	})
}

// Ensure an observer that refuses a step's start stops the run before the
// step runs, leaving it resumable.
func TestObserverRefusesStart(t *testing.T) {
	e := newEnv(map[string]kerneltest.ToolFunc{"t": kerneltest.Const(1.0)})
	obs := &recordingObserver{refuseStart: 2}
	m := kernel.NewMachine(&kernel.Options{Tools: e.tools, Clock: e.clock, Observer: obs})
	p := mustLoad(t, `{"steps":[{"id":"a","type":"tool","tool":"t"},{"id":"b","type":"tool","tool":"t"},{"id":"c","type":"tool","tool":"t"}]}`)
	tr, err := m.Start(t.Context(), p, nil, "x")
	if err == nil || !strings.Contains(err.Error(), "not durable") {
		t.Fatalf("err %v", err)
	}
	if tr.Status != kernel.StatusRunning || len(tr.Steps) != 1 || len(e.tools.Calls()) != 1 {
		t.Fatalf("status %s, %d records, %d tool calls; want running, 1, 1", tr.Status, len(tr.Steps), len(e.tools.Calls()))
	}
	obs.refuseStart = 0
	tr, err = m.Continue(t.Context(), p, nil, tr)
	if err != nil || tr.Status != kernel.StatusSuccess || len(tr.Steps) != 3 {
		t.Fatalf("continued: %v, %s, %d records", err, tr.Status, len(tr.Steps))
	}
}

type statusObserver struct {
	statuses       []kernel.Status
	lastFinishedAt *time.Time
	lastRoot       string
}

func (o *statusObserver) StepStarted(context.Context, kernel.StepEvent) error { return nil }
func (o *statusObserver) StepFinished(_ context.Context, ev kernel.StepEvent) error {
	o.statuses = append(o.statuses, ev.Status)
	o.lastFinishedAt, o.lastRoot = ev.Trace.FinishedAt, ev.Trace.StateRoot
	return nil
}

type recordingObserver struct {
	started, finished, failAt int
	// refuseStart, when set, is the StepStarted call that fails.
	refuseStart int
}

func (o *recordingObserver) StepStarted(context.Context, kernel.StepEvent) error {
	o.started++
	if o.refuseStart != 0 && o.started == o.refuseStart {
		return errors.New("earlier step not durable")
	}
	return nil
}
func (o *recordingObserver) StepFinished(_ context.Context, ev kernel.StepEvent) error {
	o.finished++
	if ev.Record.StateHash == "" {
		return errors.New("no state hash")
	}
	if o.finished == o.failAt {
		return errors.New("disk full")
	}
	return nil
}

// Ensure prompts are built from the LLM projection: webhook data and
// secret-named fields never reach the model.
func TestPromptUsesLLMProjection(t *testing.T) {
	e := newEnv(map[string]kerneltest.ToolFunc{"t": kerneltest.Const(map[string]any{"password": "hunter2", "user": "ann"})}, "ok")
	p := mustLoad(t, `{"steps":[{"id":"a","type":"tool","tool":"t","output_key":"acct"},{"id":"b","type":"llm","prompt":"acct=$acct pw=$acct.password hook=$__webhook__ mail=$email","system":"sys $acct.user"}]}`)
	tr := e.start(t, p, map[string]any{"email": "ann@example.com"})
	if tr.Status != kernel.StatusSuccess {
		t.Fatal(tr.Error)
	}
	req := e.llm.Requests()[0]
	for _, leak := range []string{"hunter2", "ann@example.com"} {
		if strings.Contains(req.Prompt, leak) {
			t.Errorf("prompt leaks %q: %s", leak, req.Prompt)
		}
	}
	if req.System != "sys ann" {
		t.Errorf("system %q", req.System)
	}
}
