package kernel_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/kernel/kerneltest"
)

// refundPipeline is the shape of the original's BM-INT-01 workload.
const refundPipeline = `{"name":"refund_pipeline","steps":[
 {"id":"classify","type":"llm","prompt":"Classify: $request","output_key":"intent","allowed_outputs":["refund","question"]},
 {"id":"route","type":"condition","condition":"'refund' in $intent","then":"enrich","otherwise":"reject"},
 {"id":"enrich","type":"parallel","max_concurrency":2,"on_error":"skip","output_key":"order","parallel_steps":[
   {"id":"get_amount","type":"tool","tool":"get_order_amount","args":{"order_id":"$order_id"}},
   {"id":"get_status","type":"tool","tool":"get_order_status","args":{"order_id":"$order_id"}}]},
 {"id":"eligibility","type":"llm","prompt":"Eligible? $order","output_key":"eligible","allowed_outputs":["yes","no"]},
 {"id":"guard","type":"condition","condition":"$eligible == 'yes'","then":"process_refund","otherwise":"reject"},
 {"id":"process_refund","type":"tool","tool":"issue_refund","args":{"order_id":"$order_id","amount":"$order.get_amount.amount"},"is_terminal":true},
 {"id":"reject","type":"tool","tool":"send_rejection","args":{"order_id":"$order_id"},"is_terminal":true}]}`

// BenchmarkRefundPipeline measures the kernel running the refund pipeline
// with in-process tools and a scripted model (no sandbox, no store).
func BenchmarkRefundPipeline(b *testing.B) {
	p := mustLoad(b, refundPipeline)
	tools := &benchTools{}
	llm := &cycleLLM{answers: []string{"refund", "yes"}}
	m := kernel.NewMachine(&kernel.Options{Tools: tools, LLM: llm, Clock: kerneltest.NewManualClock(), IDs: &kerneltest.SeqIDs{}})
	input := map[string]any{"request": "my toaster broke", "order_id": "o-17"}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		tr, err := m.Start(context.Background(), p, input, "")
		if err != nil || tr.Status != kernel.StatusSuccess || len(tr.Steps) != 6 {
			b.Fatalf("%v %s %d %s", err, tr.Status, len(tr.Steps), tr.Error)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/6, "ns/step")
}

// BenchmarkChain measures an n-step chain of one tool, to show the cost per
// step stays flat as the chain grows.
func BenchmarkChain(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			steps := make([]string, n)
			for i := range steps {
				steps[i] = fmt.Sprintf(`{"id":"s%d","type":"tool","tool":"get_order_amount","args":{"order_id":"o-%d"}}`, i, i)
			}
			p := mustLoad(b, `{"name":"chain","steps":[`+strings.Join(steps, ",")+`]}`)
			m := kernel.NewMachine(&kernel.Options{Tools: &benchTools{}, Clock: kerneltest.NewManualClock(), IDs: &kerneltest.SeqIDs{}})
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				tr, err := m.Start(context.Background(), p, nil, "")
				if err != nil || tr.Status != kernel.StatusSuccess {
					b.Fatal(err, tr.Error)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/step")
		})
	}
}

type benchTools struct{}

func (benchTools) Execute(_ context.Context, c kernel.ToolCall) (kernel.ToolResult, error) {
	switch c.Tool {
	case "get_order_amount":
		return kernel.ToolResult{Output: map[string]any{"order_id": c.Args["order_id"], "amount": 120.0}}, nil
	case "get_order_status":
		return kernel.ToolResult{Output: map[string]any{"order_id": c.Args["order_id"], "status": "delivered"}}, nil
	}
	return kernel.ToolResult{Output: map[string]any{"ok": true}}, nil
}

type cycleLLM struct{ answers []string }

func (l *cycleLLM) Complete(_ context.Context, r kernel.LLMRequest) (kernel.LLMResponse, error) {
	a := l.answers[0]
	if r.StepID == "eligibility" {
		a = l.answers[1]
	}
	return kernel.LLMResponse{Text: a, Usage: kernel.Usage{PromptTokens: 10, CompletionTokens: 1, TotalTokens: 11}}, nil
}
