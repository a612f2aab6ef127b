package kernel_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/kernel/kerneltest"
)

// detTools are deterministic fake tools: their answers depend only on the
// call's tool name, step id, args and attempt.
func detTools() map[string]kerneltest.ToolFunc {
	digest := func(c kernel.ToolCall) uint64 {
		b, _ := json.Marshal(c.Args)
		h := sha256.Sum256([]byte(c.StepID + "|" + string(b)))
		return binary.BigEndian.Uint64(h[:8])
	}
	return map[string]kerneltest.ToolFunc{
		"num": func(_ context.Context, c kernel.ToolCall) (any, error) {
			return float64(digest(c) % 10), nil
		},
		"obj": func(_ context.Context, c kernel.ToolCall) (any, error) {
			d := digest(c)
			// Echo one arg, not all: echoing interpolated text through
			// loops would grow the state exponentially.
			return map[string]any{"status": []string{"paid", "open", "void"}[d%3], "amount": float64(d % 1000), "c": c.Args["c"]}, nil
		},
		"flaky": func(_ context.Context, c kernel.ToolCall) (any, error) {
			if (digest(c)+uint64(c.Attempt))%3 == 0 {
				return nil, fmt.Errorf("flaky failure on attempt %d", c.Attempt)
			}
			return "ok", nil
		},
		"pend": func(_ context.Context, c kernel.ToolCall) (any, error) {
			if digest(c)%2 == 0 {
				return "PENDING", nil
			}
			return map[string]any{"payment_status": "SUCCESS"}, nil
		},
	}
}

// detLLM answers from a hash of the prompt.
type detLLM struct{}

func (detLLM) Complete(_ context.Context, r kernel.LLMRequest) (kernel.LLMResponse, error) {
	h := sha256.Sum256([]byte(r.StepID + r.Prompt + strconv.Itoa(r.Attempt)))
	words := []string{"yes", "no", "maybe", "refund"}
	return kernel.LLMResponse{Text: words[h[0]%4], Usage: kernel.Usage{PromptTokens: int(h[1] % 20), CompletionTokens: 1, TotalTokens: int(h[1]%20) + 1}}, nil
}

// randomProgram builds a random valid program.
func randomProgram(r *rand.Rand) string {
	n := 1 + r.IntN(10)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("s%d", i)
	}
	var steps []string
	keys := []string{"k0", "k1", "k2"}
	for i := 0; i < n; i++ {
		var fields []string
		add := func(f string, a ...any) { fields = append(fields, fmt.Sprintf(f, a...)) }
		add(`"id":%q`, ids[i])
		policy := []string{"", `"on_error":"skip"`, `"on_error":"retry","max_retries":3`, `"on_error":"fail"`}[r.IntN(4)]
		switch k := r.IntN(10); {
		case k < 4:
			tool := []string{"num", "obj", "flaky", "pend"}[r.IntN(4)]
			add(`"type":"tool","tool":%q,"args":{"a":"$%s","b":"x $k1 y","c":%d}`, tool, keys[r.IntN(3)], r.IntN(5))
			if r.IntN(2) == 0 {
				add(`"output_key":%q`, keys[r.IntN(3)])
			}
			if policy != "" {
				fields = append(fields, policy)
			}
		case k < 6:
			add(`"type":"llm","prompt":"decide on $k0 and $input_x"`)
			if r.IntN(2) == 0 {
				add(`"allowed_outputs":["yes","no"]`)
			}
			if r.IntN(2) == 0 {
				add(`"output_key":%q`, keys[r.IntN(3)])
			}
			if policy != "" {
				fields = append(fields, policy)
			}
		case k < 8:
			conds := []string{`$k0 == 'yes'`, `$k1.status == "paid" or $k2 > 3`, `not ($k2 == 1 or $k0 == 'no')`, `$input_x contains 'a'`, `$k0`, `$k1.amount >= 500 and not $k2`}
			c := conds[r.IntN(len(conds))]
			add(`"type":"condition","condition":%q,"then":%q`, c, ids[r.IntN(n)])
			if r.IntN(2) == 0 {
				add(`"otherwise":%q`, ids[r.IntN(n)])
			}
			add(`"on_error":"skip"`)
		default:
			m := 1 + r.IntN(3)
			var subs []string
			for j := 0; j < m; j++ {
				tool := []string{"num", "obj", "flaky"}[r.IntN(3)]
				subs = append(subs, fmt.Sprintf(`{"id":"p%d","type":"tool","tool":%q,"args":{"j":%d,"v":"$k0"}}`, j, tool, j))
			}
			add(`"type":"parallel","max_concurrency":%d,"parallel_steps":[%s]`, r.IntN(3), strings.Join(subs, ","))
			if policy != "" {
				fields = append(fields, policy)
			}
			if r.IntN(2) == 0 {
				add(`"output_key":%q`, keys[r.IntN(3)])
			}
		}
		if r.IntN(5) == 0 {
			add(`"next_step":%q`, ids[r.IntN(n)])
		} else if r.IntN(6) == 0 {
			add(`"is_terminal":true`)
		}
		steps = append(steps, "{"+strings.Join(fields, ",")+"}")
	}
	return fmt.Sprintf(`{"name":"random","max_steps":%d,"max_tokens":%d,"max_stalled_steps":%d,"steps":[%s]}`,
		10+r.IntN(30), 50+r.IntN(200), 2+r.IntN(5), strings.Join(steps, ","))
}

// runToEnd runs a program, resuming suspensions with a fixed event.
func runToEnd(t *testing.T, p *kernel.Program, input map[string]any) *kernel.Trace {
	t.Helper()
	clock := kerneltest.NewManualClock()
	m := kernel.NewMachine(&kernel.Options{Tools: &kerneltest.Tools{Funcs: detTools()}, LLM: detLLM{}, Clock: clock, IDs: &kerneltest.SeqIDs{}})
	tr, err := m.Start(context.Background(), p, input, "")
	for i := 0; err == nil && tr.Status == kernel.StatusSuspended && i < 5; i++ {
		tr, err = m.Resume(context.Background(), p, input, tr, kernel.ResumeEvent{Payload: map[string]any{"payment_status": "SUCCESS", "n": float64(i)}, Source: kernel.SourceOperator})
	}
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// withoutClock encodes a trace with its wall-clock fields zeroed.
func withoutClock(t *testing.T, tr *kernel.Trace) string {
	t.Helper()
	cp := *tr
	cp.StartedAt, cp.FinishedAt, cp.DurationMS = time.Time{}, nil, 0
	cp.Steps = append([]kernel.StepRecord(nil), tr.Steps...)
	for i := range cp.Steps {
		s := &cp.Steps[i]
		s.StartedAt, s.FinishedAt, s.DurationMS = time.Time{}, time.Time{}, 0
		s.SubSteps = append([]kernel.SubStepRecord(nil), s.SubSteps...)
		for j := range s.SubSteps {
			s.SubSteps[j].StartedAt, s.SubSteps[j].FinishedAt, s.SubSteps[j].DurationMS = time.Time{}, time.Time{}, 0
		}
	}
	b, err := json.Marshal(&cp)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func propertySeed(t *testing.T) uint64 {
	if s := os.Getenv("NANOVM_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	return uint64(time.Now().UnixNano())
}

// propertyRand is a property test's random source on stream (seeded by
// propertySeed, the seed logged for a rerun) and how many programs it
// runs: n, or short under -short.
func propertyRand(t *testing.T, stream uint64, n, short int) (*rand.Rand, int) {
	t.Helper()
	seed := propertySeed(t)
	t.Logf("seed %d (rerun with NANOVM_SEED=%d)", seed, seed)
	if testing.Short() {
		n = short
	}
	return rand.New(rand.NewPCG(seed, stream)), n
}

// Ensure random valid programs over deterministic tools give byte-identical
// traces (minus wall-clock fields) across two runs, replay reports
// equivalence, and mutating one recorded tool result makes replay report
// exactly that record.
func TestPropertyDeterminismAndReplay(t *testing.T) {
	r, programs := propertyRand(t, 0x6e616e6f, 1000, 200)
	mutated := 0
	statuses := map[kernel.Status]int{}
	resumed, retried, parallel := 0, 0, 0
	for i := 0; i < programs; i++ {
		src := randomProgram(r)
		p, _, err := kernel.LoadProgram([]byte(src))
		if err != nil {
			t.Fatalf("program %d invalid: %v\n%s", i, err, src)
		}
		input := map[string]any{"input_x": []string{"abc", "xyz"}[r.IntN(2)], "k0": "yes"}
		a, b := runToEnd(t, p, input), runToEnd(t, p, input)
		if wa, wb := withoutClock(t, a), withoutClock(t, b); wa != wb {
			t.Fatalf("program %d: two runs differ\n%s\n--- run 1\n%s\n--- run 2\n%s", i, src, wa, wb)
		}
		statuses[a.Status]++
		tallied := *a
		tallied.Tally()
		if tallied.StepMetrics != a.StepMetrics || tallied.Usage != a.Usage {
			t.Fatalf("program %d: Tally gives %+v %+v, the run counted %+v %+v", i, tallied.StepMetrics, tallied.Usage, a.StepMetrics, a.Usage)
		}
		for _, s := range a.Steps {
			switch {
			case s.Kind == kernel.KindResume:
				resumed++
			case s.Retries > 0:
				retried++
			case s.Type == kernel.StepParallel:
				parallel++
			}
		}
		rep, err := kernel.Replay(context.Background(), p, input, a)
		if err != nil {
			t.Fatalf("program %d: replay: %v\n%s", i, err, src)
		}
		if !rep.Equivalent {
			t.Fatalf("program %d: replay diverged: %v\n%s", i, rep.Divergence, src)
		}
		// Mutate one successful tool result and expect replay to name it.
		for k := range a.Steps {
			s := &a.Steps[k]
			if s.Type != kernel.StepTool || s.Status != kernel.StepSuccess || s.Kind != kernel.KindStep || s.TimedOut {
				continue
			}
			s.Output = map[string]any{"mutated": s.Output}
			rep, err := kernel.Replay(context.Background(), p, input, a)
			if err != nil {
				t.Fatalf("program %d: replay of mutated trace: %v", i, err)
			}
			if rep.Equivalent || rep.Divergence.Index != k {
				t.Fatalf("program %d: mutated record %d, replay reported %+v\n%s", i, k, rep.Divergence, src)
			}
			mutated++
			break
		}
	}
	t.Logf("statuses %v, resume records %d, retried steps %d, parallel steps %d, mutations detected %d", statuses, resumed, retried, parallel, mutated)
	// The generator must exercise every ending and feature, or the
	// property says little.
	for _, st := range []kernel.Status{kernel.StatusSuccess, kernel.StatusFailed, kernel.StatusBudgetExceeded, kernel.StatusStalled} {
		if statuses[st] == 0 {
			t.Errorf("no random program ended %s", st)
		}
	}
	if resumed == 0 || retried == 0 || parallel == 0 {
		t.Errorf("generator too narrow: %d resumes, %d retried steps, %d parallel steps", resumed, retried, parallel)
	}
	if mutated < programs/4 {
		t.Fatalf("only %d programs had a tool result to mutate", mutated)
	}
}
