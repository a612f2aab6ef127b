package benchmark

import (
	"encoding/json"
	"fmt"
	"strings"
)

// MockModel is the LLM the workloads run with, as a model string for
// llm.New: the classifier answers "refund" when the request says refund
// and "question" otherwise; the eligibility check answers "no" for a
// cancelled order and "yes" otherwise. Keys are tried in order, so
// "cancelled" wins over "Eligible". The original's benchmark also used a
// mock model.
const MockModel = "mock/map:cancelled=no;Eligible=yes;refund=refund;default=question"

// RefundProgram is BM-INT-01's program, the original's refund pipeline:
// classify (llm) → route (condition) → enrich (parallel: two sandboxed
// tools) → eligibility (llm) → guard (condition) → process_refund | reject.
const RefundProgram = `{"name":"refund_pipeline","steps":[
 {"id":"classify","type":"llm","prompt":"Classify: $request","output_key":"intent","allowed_outputs":["refund","question"]},
 {"id":"route","type":"condition","condition":"'refund' in $intent","then":"enrich","otherwise":"reject"},
 {"id":"enrich","type":"parallel","max_concurrency":2,"on_error":"skip","output_key":"order","parallel_steps":[
   {"id":"get_amount","type":"tool","tool":"get_order_amount","args":{"order_id":"$order_id"}},
   {"id":"get_status","type":"tool","tool":"get_order_status","args":{"order_id":"$order_id"}}]},
 {"id":"eligibility","type":"llm","prompt":"Eligible? $order","output_key":"eligible","allowed_outputs":["yes","no"]},
 {"id":"guard","type":"condition","condition":"$eligible == 'yes'","then":"process_refund","otherwise":"reject"},
 {"id":"process_refund","type":"tool","tool":"issue_refund","args":{"order_id":"$order_id","amount":"$order.get_amount.amount"},"is_terminal":true},
 {"id":"reject","type":"tool","tool":"send_rejection","args":{"order_id":"$order_id"},"is_terminal":true}]}`

// refundCase is one of the refund workload's three paths.
type refundCase struct {
	input map[string]any
	// path is the step ids the run must take, in order.
	path []string
}

var (
	refundPath   = []string{"classify", "route", "enrich", "eligibility", "guard", "process_refund"}
	ineligible   = []string{"classify", "route", "enrich", "eligibility", "guard", "reject"}
	questionPath = []string{"classify", "route", "reject"}
)

// refundInput is item i of the refund workload: 80% ask for a refund, as
// in the original; one in ten is for a cancelled order, which the
// eligibility check refuses, so the guard's both branches run.
func refundInput(i int) refundCase {
	switch i % 10 {
	case 4, 9:
		return refundCase{
			input: map[string]any{"request": fmt.Sprintf("Where is my parcel? (ticket %d)", i), "order_id": fmt.Sprintf("o-%d", i)},
			path:  questionPath,
		}
	case 7:
		return refundCase{
			input: map[string]any{"request": fmt.Sprintf("The kettle broke, I want a refund (ticket %d)", i), "order_id": fmt.Sprintf("cancel-%d", i)},
			path:  ineligible,
		}
	default:
		return refundCase{
			input: map[string]any{"request": fmt.Sprintf("The toaster broke, I want a refund (ticket %d)", i), "order_id": fmt.Sprintf("o-%d", i)},
			path:  refundPath,
		}
	}
}

// ParallelWidth is the number of sub-steps of BM-INT-04's parallel step.
const ParallelWidth = 10

// ParallelProgram is BM-INT-04's program: one parallel step of ten
// sandboxed tool calls, all allowed to run at once.
var ParallelProgram = func() string {
	subs := make([]string, ParallelWidth)
	for k := range subs {
		subs[k] = fmt.Sprintf(`{"id":"amount_%d","type":"tool","tool":"get_order_amount","args":{"order_id":"$order_id"}}`, k)
	}
	return fmt.Sprintf(`{"name":"parallel_fanout","steps":[{"id":"fanout","type":"parallel","max_concurrency":%d,"output_key":"amounts","parallel_steps":[%s]}]}`,
		ParallelWidth, strings.Join(subs, ","))
}()

// LongHorizonSteps is the length of BM-INT-10's chain.
const LongHorizonSteps = 1000

// ChainProgram returns an n-step chain of one sandboxed tool, the shape of
// BM-INT-10. Each step writes its own state key, so the state grows with
// the chain as the original's did.
func ChainProgram(n int) string {
	steps := make([]string, n)
	for k := range steps {
		steps[k] = fmt.Sprintf(`{"id":"s%d","type":"tool","tool":"get_order_amount","args":{"order_id":"o-%d"}}`, k, k)
	}
	return `{"name":"long_horizon","steps":[` + strings.Join(steps, ",") + `]}`
}

// traceHeader is a finished refund trace's header, what BM-INT-05 saves
// and reads back as "the trace".
var traceHeader = json.RawMessage(`{"trace_id":"t","program_name":"refund_pipeline","status":"success","initial_state_hash":"8f2c","final_output":{"refund_id":"rf-1","amount":120},"step_metrics":{"llm_calls":2,"tool_calls":3},"usage":{"prompt_tokens":20,"completion_tokens":2,"total_tokens":22}}`)
