package llm_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/kernel/kerneltest"
	"github.com/nanovm/nano-vm-mcp/runtime/llm"
)

const refundProgram = `{"name":"customer_refund","steps":[
 {"id":"analyze","type":"llm","system":"Reply with one word.","prompt":"Is this a valid refund request? Reply 'yes' or 'no'.\nRequest: $user_input","output_key":"decision","allowed_outputs":["yes","no"],"on_error":"retry","max_retries":2},
 {"id":"guardrail","type":"condition","condition":"$decision == \"yes\"","then":"process_refund","otherwise":"reject"},
 {"id":"process_refund","type":"tool","tool":"issue_refund","is_terminal":true},
 {"id":"reject","type":"tool","tool":"send_rejection","is_terminal":true}]}`

// Ensure that the kernel runs a program's llm step through each provider:
// mock forms decide the branch, a retry after a bad answer or a 429
// succeeds, and provider usage lands in the trace.
func TestKernelRunsProgramsWithProviders(t *testing.T) {
	// openaiFlaky answers 429 to its first request and "yes" after.
	var calls atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"error":{"message":"Rate limit reached","code":"rate_limit_exceeded"}}`)
			return
		}
		fmt.Fprint(w, `{"choices":[{"message":{"role":"assistant","content":" yes\n"},"finish_reason":"stop"}],"usage":{"prompt_tokens":40,"completion_tokens":2,"total_tokens":42}}`)
	}))
	defer flaky.Close()

	tests := []struct {
		name      string
		model     string
		opts      *llm.Options
		input     string
		want      string // the terminal step visited
		wantTries int    // retries on the llm step
		wantUse   int    // total tokens in the trace
		wantCost  float64
	}{
		{name: "map says yes", model: "mock/map:broken=yes;default=no", input: "broken toaster", want: "process_refund", wantUse: 18},
		{name: "map says no", model: "mock/map:broken=yes;default=no", input: "I changed my mind", want: "reject", wantUse: 20},
		{name: "a cycle of a bad answer and yes passes the gate within two attempts", model: "mock/cycle:maybe,yes", input: "x", want: "process_refund"},
		{name: "openai 429 then yes", model: "openai/gpt-4o-mini", opts: &llm.Options{BaseURL: flaky.URL, APIKey: "k"}, input: "x",
			want: "process_refund", wantTries: 1, wantUse: 42, wantCost: (40*0.15 + 2*0.60) / 1e6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := llm.New(tc.model, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			prog, _, err := kernel.LoadProgram([]byte(refundProgram))
			if err != nil {
				t.Fatal(err)
			}
			m := kernel.NewMachine(&kernel.Options{
				LLM:   c,
				Tools: &kerneltest.Tools{Funcs: map[string]kerneltest.ToolFunc{"issue_refund": kerneltest.Echo(), "send_rejection": kerneltest.Echo()}},
				Clock: kerneltest.NewManualClock(),
				IDs:   &kerneltest.SeqIDs{},
			})
			tr, err := m.Start(context.Background(), prog, map[string]any{"user_input": tc.input}, "")
			if err != nil {
				t.Fatal(err)
			}
			if tr.Status != kernel.StatusSuccess {
				t.Fatalf("status %s: %s", tr.Status, tr.Error)
			}
			last := tr.Steps[len(tr.Steps)-1]
			if last.StepID != tc.want {
				t.Errorf("ended at %s, want %s", last.StepID, tc.want)
			}
			if tc.wantTries != 0 && tr.Steps[0].Retries != tc.wantTries {
				t.Errorf("llm step retries %d, want %d", tr.Steps[0].Retries, tc.wantTries)
			}
			if math.Abs(tr.Usage.CostUSD-tc.wantCost) > 1e-15 {
				t.Errorf("trace cost %v, want %v", tr.Usage.CostUSD, tc.wantCost)
			}
			if tc.wantUse != 0 && tr.Usage.TotalTokens != tc.wantUse {
				t.Errorf("trace usage %+v, want %d tokens", tr.Usage, tc.wantUse)
			}
		})
	}
}

// ExampleNew shows the mock provider answering by prompt content, as an
// example program or benchmark would configure it through
// NANO_VM_MCP_LLM_MODEL.
func ExampleNew() {
	c, err := llm.New("mock/map:refund=refund;question=question;default=other", nil)
	if err != nil {
		panic(err)
	}
	resp, err := c.Complete(context.Background(), kernel.LLMRequest{Prompt: "I want a refund"})
	fmt.Println(resp.Text, resp.Usage.TotalTokens, err)
	// Output: refund 5 <nil>
}
