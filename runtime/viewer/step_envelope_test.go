package viewer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/runtime/llm"
	"github.com/nanovm/nano-vm-mcp/runtime/runtimetest"
	"github.com/nanovm/nano-vm-mcp/runtime/viewer"
	"github.com/nanovm/nano-vm-mcp/store"
)

// everyEnvelope is a Source without a lookup of one step's envelope (as
// a Source of another kind may be): the step view reads all of them. It
// counts those reads.
type everyEnvelope struct {
	viewer.Source
	reads atomic.Int64
}

func (s *everyEnvelope) Envelopes(ctx context.Context, id string) ([]store.Envelope, error) {
	s.reads.Add(1)
	return s.Source.Envelopes(ctx, id)
}

// oneEnvelope is the runtime's Source, counting reads of every envelope.
type oneEnvelope struct {
	everyEnvelope
	rt *runtime.Runtime
}

func (s *oneEnvelope) StepEnvelope(ctx context.Context, id string, index int) (*store.Envelope, error) {
	return s.rt.StepEnvelope(ctx, id, index)
}

// longRun runs a program of n steps of a mock model (no WebAssembly).
func longRun(tb testing.TB, n int) (*runtime.Runtime, string) {
	tb.Helper()
	model, err := llm.New("mock/yes", nil)
	if err != nil {
		tb.Fatal(err)
	}
	rt := runtimetest.Open(tb, runtime.Config{NoBundledTools: true, NoSync: true, LLM: model, LLMModel: "mock/yes"})
	steps := make([]string, n)
	for i := range steps {
		steps[i] = fmt.Sprintf(`{"id":"s%d","type":"llm","prompt":"Reply yes.","output_key":"k%d"%s}`, i, i, map[bool]string{true: `,"is_terminal":true`}[i == n-1])
	}
	res, err := rt.RunProgram(context.Background(), runtime.RunRequest{Program: json.RawMessage(`{"name":"long","steps":[` + strings.Join(steps, ",") + `]}`)})
	if err != nil {
		tb.Fatal(err)
	}
	if res.Status != "success" {
		tb.Fatalf("the %d-step run: %+v", n, res)
	}
	return rt, res.TraceID
}

type stepAnswer struct {
	Step struct {
		Index  int    `json:"index"`
		StepID string `json:"step_id"`
	} `json:"step"`
	Envelope *store.Envelope `json:"envelope"`
}

func getStep(tb testing.TB, src viewer.Source, id string, i int) stepAnswer {
	tb.Helper()
	w := httptest.NewRecorder()
	viewer.Handler(src, &viewer.Options{Logger: runtimetest.Logger()}).ServeHTTP(w, httptest.NewRequest("GET", fmt.Sprintf("/ui/api/traces/%s/steps/%d", id, i), nil))
	var a stepAnswer
	if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil || w.Code != 200 {
		tb.Fatalf("step %d: %d %s", i, w.Code, w.Body.Bytes())
	}
	return a
}

// Ensure the step view shows the same envelope whether it looks up the
// step's envelope or reads them all, and that over the runtime it reads
// none of the others: before, every click read every envelope of the run.
func TestStepViewReadsOneEnvelope(t *testing.T) {
	rt, id := longRun(t, 40)
	one := &oneEnvelope{everyEnvelope: everyEnvelope{Source: viewer.Local(rt)}, rt: rt}
	every := &everyEnvelope{Source: viewer.Local(rt)}
	for _, i := range []int{0, 1, 17, 39} {
		a, b := getStep(t, one, id, i), getStep(t, every, id, i)
		if a.Envelope == nil || a.Envelope.StepIndex != i || a.Envelope.StepID != fmt.Sprintf("s%d", i) {
			t.Fatalf("step %d: envelope %+v", i, a.Envelope)
		}
		if ja, jb := mustMarshal(t, a), mustMarshal(t, b); ja != jb {
			t.Errorf("step %d: looked up\n%s\nread from all\n%s", i, ja, jb)
		}
	}
	if n := one.reads.Load(); n != 0 {
		t.Errorf("the step view over the runtime read every envelope %d times; want none", n)
	}
	if n := every.reads.Load(); n != 4 {
		t.Errorf("the fallback read every envelope %d times for 4 steps", n)
	}
}

func mustMarshal(tb testing.TB, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkStepView opens steps of a 1,000-step run, looking the step's
// envelope up (the runtime) or reading every envelope (a Source without
// the lookup, as every Source was before), and reports process CPU per
// click.
func BenchmarkStepView(b *testing.B) {
	rt, id := longRun(b, 1000)
	for _, tc := range []struct {
		name string
		src  viewer.Source
	}{
		{"one envelope", &oneEnvelope{everyEnvelope: everyEnvelope{Source: viewer.Local(rt)}, rt: rt}},
		{"every envelope", &everyEnvelope{Source: viewer.Local(rt)}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cpu := cpuTime()
			for i := 0; b.Loop(); i++ {
				getStep(b, tc.src, id, (i*379)%1000)
			}
			b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
