package main

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
)

// The refund pipeline of nano-vm-mcp's BM-INT-01 (internal/benchmark:
// RefundProgram), as a DBOS workflow of the same six steps, each a durable
// step (one row in DBOS's operation_outputs, as each nano-vm-mcp step is
// one envelope):
//
//	classify (the mock model) → route (condition) → enrich (two lookups,
//	in parallel) → eligibility (the mock model) → guard (condition) →
//	process_refund | reject
//
// The steps do the work the nano-vm-mcp program's steps do, without a
// sandbox: the prompts are rendered, the mock model answers by keyword as
// benchmark.MockModel does, the lookups derive the amount and status from
// the order id as the bundled get_order_amount and get_order_status tools
// do, and the refund and rejection ids are hashes of the arguments, as
// issue_refund and send_rejection compute them. What nano-vm-mcp does on
// top (WebAssembly sandboxes, the audit chain, policy) is not here: the
// peer gets the cheaper version of the work.

// RefundInput is one item of the refund workload.
type RefundInput struct {
	Request string `json:"request"`
	OrderID string `json:"order_id"`
}

// RefundOutput is what the workflow returns: its path (for the untimed
// check) and its final output.
type RefundOutput struct {
	Path   []string       `json:"path"`
	Output map[string]any `json:"output"`
}

var (
	refundPath   = []string{"classify", "route", "enrich", "eligibility", "guard", "process_refund"}
	ineligible   = []string{"classify", "route", "enrich", "eligibility", "guard", "reject"}
	questionPath = []string{"classify", "route", "reject"}
)

// refundInput is item i of the refund workload, the same mix as
// nano-vm-mcp's (internal/benchmark/workloads.go refundInput): 80% ask for
// a refund, one in ten for a cancelled order (refused by the eligibility
// check), 20% are questions that the route step rejects.
func refundInput(i int) (RefundInput, []string) {
	switch i % 10 {
	case 4, 9:
		return RefundInput{Request: fmt.Sprintf("Where is my parcel? (ticket %d)", i), OrderID: fmt.Sprintf("o-%d", i)}, questionPath
	case 7:
		return RefundInput{Request: fmt.Sprintf("The kettle broke, I want a refund (ticket %d)", i), OrderID: fmt.Sprintf("cancel-%d", i)}, ineligible
	default:
		return RefundInput{Request: fmt.Sprintf("The toaster broke, I want a refund (ticket %d)", i), OrderID: fmt.Sprintf("o-%d", i)}, refundPath
	}
}

// mockModel answers as benchmark.MockModel
// ("mock/map:cancelled=no;Eligible=yes;refund=refund;default=question"):
// the first key the prompt contains wins.
func mockModel(prompt string) string {
	for _, kv := range [][2]string{{"cancelled", "no"}, {"Eligible", "yes"}, {"refund", "refund"}} {
		if strings.Contains(prompt, kv[0]) {
			return kv[1]
		}
	}
	return "question"
}

// llmStep is a model step: render the prompt, ask, check the answer is
// allowed.
func llmStep(prompt string, allowed ...string) (string, error) {
	out := mockModel(prompt)
	for _, a := range allowed {
		if out == a {
			return out, nil
		}
	}
	return "", fmt.Errorf("model answered %q, not one of %v", out, allowed)
}

func fnv64(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

// getOrderAmount and getOrderStatus are the bundled tools' work.
func getOrderAmount(orderID string) map[string]any {
	return map[string]any{"order_id": orderID, "amount": int64(fnv64([]byte(orderID))%100000) + 1}
}

func getOrderStatus(orderID string) map[string]any {
	status := "paid"
	if strings.HasPrefix(orderID, "cancel") {
		status = "cancelled"
	}
	return map[string]any{"order_id": orderID, "status": status}
}

// terminalTool is issue_refund / send_rejection: an id derived from the
// arguments' JSON.
func terminalTool(prefix, status string, args map[string]any) (map[string]any, error) {
	b, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	out := map[string]any{prefix + "_id": fmt.Sprintf("%s_%016x", prefix, fnv64(b)), "status": status}
	for k, v := range args {
		out[k] = v
	}
	return out, nil
}

// refundWorkflow is the six-step durable workflow.
func refundWorkflow(ctx dbos.Context, in RefundInput) (RefundOutput, error) {
	var path []string
	reject := func() (RefundOutput, error) {
		out, err := dbos.RunAsStep(ctx, func(context.Context) (map[string]any, error) {
			return terminalTool("rej", "rejected", map[string]any{"order_id": in.OrderID})
		}, dbos.WithStepName("reject"))
		if err != nil {
			return RefundOutput{}, err
		}
		return RefundOutput{Path: append(path, "reject"), Output: out}, nil
	}

	intent, err := dbos.RunAsStep(ctx, func(context.Context) (string, error) {
		return llmStep("Classify: "+in.Request, "refund", "question")
	}, dbos.WithStepName("classify"))
	if err != nil {
		return RefundOutput{}, err
	}
	path = append(path, "classify")

	next, err := conditionStep(ctx, "route", strings.Contains(intent, "refund"), "enrich", "reject")
	if err != nil {
		return RefundOutput{}, err
	}
	path = append(path, "route")
	if next == "reject" {
		return reject()
	}

	order, err := dbos.RunAsStep(ctx, func(context.Context) (map[string]map[string]any, error) {
		// max_concurrency 2: both lookups at once.
		var wg sync.WaitGroup
		var amount, status map[string]any
		wg.Add(2)
		go func() { defer wg.Done(); amount = getOrderAmount(in.OrderID) }()
		go func() { defer wg.Done(); status = getOrderStatus(in.OrderID) }()
		wg.Wait()
		return map[string]map[string]any{"get_amount": amount, "get_status": status}, nil
	}, dbos.WithStepName("enrich"))
	if err != nil {
		return RefundOutput{}, err
	}
	path = append(path, "enrich")

	eligible, err := dbos.RunAsStep(ctx, func(context.Context) (string, error) {
		b, err := json.Marshal(order)
		if err != nil {
			return "", err
		}
		return llmStep("Eligible? "+string(b), "yes", "no")
	}, dbos.WithStepName("eligibility"))
	if err != nil {
		return RefundOutput{}, err
	}
	path = append(path, "eligibility")

	next, err = conditionStep(ctx, "guard", eligible == "yes", "process_refund", "reject")
	if err != nil {
		return RefundOutput{}, err
	}
	path = append(path, "guard")
	if next == "reject" {
		return reject()
	}

	out, err := dbos.RunAsStep(ctx, func(context.Context) (map[string]any, error) {
		return terminalTool("rf", "refunded", map[string]any{"order_id": in.OrderID, "amount": order["get_amount"]["amount"]})
	}, dbos.WithStepName("process_refund"))
	if err != nil {
		return RefundOutput{}, err
	}
	return RefundOutput{Path: append(path, "process_refund"), Output: out}, nil
}

// conditionStep is a condition step named name: a durable step whose
// result is the step to go to, then when ok and otherwise when not.
func conditionStep(ctx dbos.Context, name string, ok bool, then, otherwise string) (string, error) {
	return dbos.RunAsStep(ctx, func(context.Context) (string, error) {
		if ok {
			return then, nil
		}
		return otherwise, nil
	}, dbos.WithStepName(name))
}

// longHorizonSteps is BM-INT-10's chain length.
const longHorizonSteps = 1000

// longWorkflow is BM-INT-10's chain: 1,000 durable steps, each the
// get_order_amount lookup of its own order, each writing its own state key
// so that the state grows with the chain as nano-vm-mcp's does.
func longWorkflow(ctx dbos.Context, n int) (int, error) {
	state := make(map[string]any, n)
	for k := range n {
		id := fmt.Sprintf("o-%d", k)
		out, err := dbos.RunAsStep(ctx, func(context.Context) (map[string]any, error) {
			return getOrderAmount(id), nil
		}, dbos.WithStepName(fmt.Sprintf("s%d", k)))
		if err != nil {
			return k, err
		}
		state[fmt.Sprintf("s%d", k)] = out
	}
	return len(state), nil
}
