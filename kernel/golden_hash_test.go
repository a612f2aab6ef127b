package kernel_test

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/kernel/kerneltest"
)

// goldenRun is a run that exercises every way the state changes: input,
// outputs, output_keys (of steps and of parallel sub-steps), a value
// rewritten as it was, a loop, a condition, a skipped step and a resume.
func goldenRun(t *testing.T) *kernel.Trace {
	t.Helper()
	tools := &kerneltest.Tools{Funcs: map[string]kerneltest.ToolFunc{
		"amount": kerneltest.Const(map[string]any{"amount": 129.99, "currency": "EUR", "<tag>": []any{"é", true, nil, 0.1}}),
		"status": kerneltest.Const("shipped"),
		"fail":   kerneltest.FailTimes(100, nil),
		"wait":   kerneltest.Const(kernel.Pending),
		"echo":   kerneltest.Echo(),
	}}
	llm := &kerneltest.LLM{Answers: []string{"no", "yes"}, Usage: kernel.Usage{PromptTokens: 7, CompletionTokens: 3, TotalTokens: 10}}
	m := kernel.NewMachine(&kernel.Options{Tools: tools, LLM: llm, Clock: kerneltest.NewManualClock(), IDs: &kerneltest.SeqIDs{}})
	p := mustLoad(t, `{"name":"golden","max_steps":40,"steps":[
 {"id":"a","type":"tool","tool":"amount","output_key":"x"},
 {"id":"skip","type":"tool","tool":"fail","on_error":"skip"},
 {"id":"par","type":"parallel","output_key":"order","parallel_steps":[
   {"id":"p1","type":"tool","tool":"amount","output_key":"amt"},{"id":"p2","type":"tool","tool":"status"}]},
 {"id":"ask","type":"llm","prompt":"Eligible? $order for $x.amount","output_key":"ok"},
 {"id":"c","type":"condition","condition":"$ok == 'yes'","then":"w","otherwise":"a"},
 {"id":"w","type":"tool","tool":"wait"},
 {"id":"end","type":"tool","tool":"echo","args":{"id":"$order_id","amount":"$order.p1.amount","hook":"$__webhook__"},"is_terminal":true}]}`)
	input := map[string]any{"order_id": "o-1", "request": "refund <please>", "n": 3.0}
	tr, err := m.Start(t.Context(), p, input, "")
	if err != nil {
		t.Fatal(err)
	}
	tr, err = m.Resume(t.Context(), p, input, tr, kernel.ResumeEvent{Payload: map[string]any{"paid": true}, Source: kernel.SourceOperator})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Status != kernel.StatusSuccess {
		t.Fatalf("status %s (%s)", tr.Status, tr.Error)
	}
	return tr
}

// TestGoldenStateHashes holds the state hashes, the state root and the
// bytes of every step record (AppendStepRecord, which the store hashes
// into each envelope) to the values the code before the issue-20 changes
// computed: the delta chain, the encodings and records must not change,
// or a database written before would no longer verify.
func TestGoldenStateHashes(t *testing.T) {
	tr := goldenRun(t)
	h := sha256.New()
	var hashes []string
	for i := range tr.Steps {
		b, err := kernel.AppendStepRecord(nil, &tr.Steps[i])
		if err != nil {
			t.Fatal(err)
		}
		h.Write(b)
		h.Write([]byte{'\n'})
		hashes = append(hashes, tr.Steps[i].StateHash)
	}
	records := hex.EncodeToString(h.Sum(nil))
	if len(hashes) != len(goldenHashes) {
		t.Fatalf("%d records, want %d; hashes %q", len(hashes), len(goldenHashes), hashes)
	}
	for i := range hashes {
		if hashes[i] != goldenHashes[i] {
			t.Errorf("record %d (%s): state hash %s, want %s", i, tr.Steps[i].StepID, hashes[i], goldenHashes[i])
		}
	}
	if tr.InitialStateHash != goldenInitial {
		t.Errorf("initial state hash %s, want %s", tr.InitialStateHash, goldenInitial)
	}
	if tr.StateRoot != goldenRoot {
		t.Errorf("state root %s, want %s", tr.StateRoot, goldenRoot)
	}
	if records != goldenRecords {
		t.Errorf("records hash %s, want %s", records, goldenRecords)
	}
}

// The values main computed before this change (a7ee086), by this test.
var (
	goldenInitial = "7add72543683898e001330516437fc4630a8ef84c76b0172d16ddd810e7545d3"
	goldenRoot    = "cdaef11bdaabbddd8d263dfd5747d65dc0b9127d03e3e02e8b6c5ffb7726da11"
	goldenRecords = "ef87992f1ff643eabf6af4691f1c01ecefc7afbbdd597369f183262dceadf046"
	goldenHashes  = []string{
		"4d45becdb5bf1992eb0a630374dbd3e7914183fc1bf8f73691838475756e33f1",
		"d44a11f74c955b1d00efa45a19e49b2d61cee06eac402754dc49300576e674a6",
		"f8cc46c6e22b7a8536a69cf7a2462495bf8d9b564a2c83803005f1bb9f92e505",
		"58e6db019db9b2d1360590f69ca381428608e399becad851f64d33466ad35bf0",
		"e3b532a478441b85ec624adf604c489b3b889e9e538e46a68358aea06490dc51",
		"e3b532a478441b85ec624adf604c489b3b889e9e538e46a68358aea06490dc51",
		"e3b532a478441b85ec624adf604c489b3b889e9e538e46a68358aea06490dc51",
		"e3b532a478441b85ec624adf604c489b3b889e9e538e46a68358aea06490dc51",
		"0eb27f566e35d98281afbb216d5d0f6f42a4adbfbcdf675a379d2b0e39944d15",
		"e846dbec3b68b7401cfcb7cc888ca19b4baa0fc1d710e19aba554f83669b9a7f",
		"e846dbec3b68b7401cfcb7cc888ca19b4baa0fc1d710e19aba554f83669b9a7f",
		"00e2f418412c712e5614a13cc1acdf47ee5fe06086fb5e4200612d3342c4fe50",
		"71c64001512e854b10b7d74e77363b4c9f7620d6c40256c93751f91c33e408ab",
	}
)
