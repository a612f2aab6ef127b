package kernel

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/nanovm/nano-vm-mcp/internal/canonical"
)

// Divergence is the first place a replay departs from the recorded trace.
type Divergence struct {
	// Index is the record index; -1 for the run as a whole.
	Index  int    `json:"index"`
	StepID string `json:"step_id,omitempty"`
	// Field is what differs: "step_id", "status", "output", "error",
	// "retries", "state_hash", "next", "sub_steps", "length",
	// "run_status" or "run_error".
	Field    string `json:"field"`
	Recorded string `json:"recorded"`
	Replayed string `json:"replayed"`
}

func (d *Divergence) String() string {
	where := "run"
	if d.Index >= 0 {
		where = fmt.Sprintf("record %d (step %q)", d.Index, d.StepID)
	}
	return fmt.Sprintf("%s: %s recorded %s, replayed %s", where, d.Field, d.Recorded, d.Replayed)
}

// ReplayReport is the outcome of Replay: Divergence is nil when the replay
// was equivalent to the recording.
type ReplayReport struct {
	Equivalent bool        `json:"equivalent"`
	Records    int         `json:"records"`
	Divergence *Divergence `json:"divergence,omitempty"`
	// Trace is the trace the replay produced.
	Trace *Trace `json:"-"`
}

// Replay re-executes a recorded run of prog with input, answering every tool
// and llm call from the recording (no tool or model is called, no time
// passes), and compares what it produces, record by record, with the
// recording. Wall-clock fields are not compared.
func Replay(ctx context.Context, prog *Program, input map[string]any, recorded *Trace) (*ReplayReport, error) {
	if prog.compiled == nil {
		return nil, ErrNotValidated
	}
	rp := &replayer{rec: recorded}
	m := NewMachine(&Options{Tools: rp, LLM: rp, Clock: replayClock{start: recorded.StartedAt}, IDs: fixedID(recorded.TraceID)})
	tr, err := m.Start(ctx, prog, input, recorded.TraceID)
	for err == nil && tr.Status == StatusSuspended && len(tr.Steps) < len(recorded.Steps) {
		next := &recorded.Steps[len(tr.Steps)]
		if next.Kind != KindResume {
			break
		}
		r, rerr := m.restore(prog, input, tr)
		if rerr != nil {
			err = rerr
			break
		}
		tr, err = r.resume(ctx, ResumeEvent{TraceID: tr.TraceID, Payload: next.Output, Source: ResumeSource(next.Source)})
	}
	if err != nil && tr == nil {
		return nil, fmt.Errorf("replay %s: %w", recorded.TraceID, err)
	}
	rep := &ReplayReport{Trace: tr, Records: len(tr.Steps)}
	rep.Divergence = compareTraces(recorded, tr)
	if rep.Divergence == nil && err != nil {
		return nil, fmt.Errorf("replay %s: %w", recorded.TraceID, err)
	}
	rep.Equivalent = rep.Divergence == nil
	return rep, nil
}

func compareTraces(want, got *Trace) *Divergence {
	n := len(want.Steps)
	if len(got.Steps) < n {
		n = len(got.Steps)
	}
	for i := 0; i < n; i++ {
		if d := compareRecords(&want.Steps[i], &got.Steps[i]); d != nil {
			return d
		}
	}
	if len(want.Steps) != len(got.Steps) {
		d := &Divergence{Index: n, Field: "length", Recorded: fmt.Sprint(len(want.Steps)), Replayed: fmt.Sprint(len(got.Steps))}
		if n < len(want.Steps) {
			d.StepID = want.Steps[n].StepID
		} else {
			d.StepID = got.Steps[n].StepID
		}
		return d
	}
	if want.Status != got.Status {
		return &Divergence{Index: -1, Field: "run_status", Recorded: string(want.Status), Replayed: string(got.Status)}
	}
	if want.Error != got.Error {
		return &Divergence{Index: -1, Field: "run_error", Recorded: want.Error, Replayed: got.Error}
	}
	return nil
}

func compareRecords(w, g *StepRecord) *Divergence {
	diff := func(field, a, b string) *Divergence {
		return &Divergence{Index: w.Index, StepID: w.StepID, Field: field, Recorded: a, Replayed: b}
	}
	switch {
	case w.StepID != g.StepID:
		return diff("step_id", w.StepID, g.StepID)
	case w.Kind != g.Kind:
		return diff("kind", string(w.Kind), string(g.Kind))
	case w.Status != g.Status:
		return diff("status", string(w.Status), string(g.Status))
	}
	if !sameJSON(w.Output, g.Output, 0) {
		if a, b := jsonText(w.Output), jsonText(g.Output); a != b {
			return diff("output", a, b)
		}
	}
	switch {
	case w.Error != g.Error:
		return diff("error", w.Error, g.Error)
	case w.Retries != g.Retries:
		return diff("retries", fmt.Sprint(w.Retries), fmt.Sprint(g.Retries))
	case w.StateHash != g.StateHash:
		return diff("state_hash", w.StateHash, g.StateHash)
	case w.Next != g.Next:
		return diff("next", w.Next, g.Next)
	case w.TimedOut != g.TimedOut:
		return diff("timed_out", fmt.Sprint(w.TimedOut), fmt.Sprint(g.TimedOut))
	case len(w.SubSteps) != len(g.SubSteps):
		return diff("sub_steps", fmt.Sprint(len(w.SubSteps)), fmt.Sprint(len(g.SubSteps)))
	}
	for i := range w.SubSteps {
		a, b := &w.SubSteps[i], &g.SubSteps[i]
		if a.StepID != b.StepID || a.Status != b.Status || a.Error != b.Error || a.Retries != b.Retries || !sameText(a.Output, b.Output) {
			return diff("sub_steps", fmt.Sprintf("%s %s", a.StepID, a.Status), fmt.Sprintf("%s %s", b.StepID, b.Status))
		}
	}
	return nil
}

// sameText reports whether a and b have the same canonical JSON text.
func sameText(a, b any) bool {
	return sameJSON(a, b, 0) || jsonText(a) == jsonText(b)
}

// sameJSON reports whether a and b are the same JSON data, of the same Go
// types; then their canonical texts are equal, which is what the
// comparison is about. Encoding both outputs of every record was most of
// the cost of comparing; this walk does without. false means "compare the
// texts": values of other types, and NaN, which equals nothing, take that
// path, and so does anything deeper than canonical encodes.
func sameJSON(a, b any, depth int) bool {
	if depth > canonical.MaxDepth {
		return false
	}
	switch x := a.(type) {
	case nil:
		return b == nil
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case float64:
		// Bits, not ==: 0 and -0 are == but need not have the same
		// canonical text, so they take the text comparison.
		y, ok := b.(float64)
		return ok && math.Float64bits(x) == math.Float64bits(y) && !math.IsNaN(x)
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !sameJSON(xv, yv, depth+1) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameJSON(x[i], y[i], depth+1) {
				return false
			}
		}
		return true
	}
	return false
}

func jsonText(v any) string {
	b, err := canonical.Marshal(v)
	if err != nil {
		return fmt.Sprintf("<unencodable %T>", v)
	}
	return string(b)
}

// replayer answers tool and llm calls from a recorded trace.
type replayer struct{ rec *Trace }

// find returns the recorded outcome for a call: the step or sub-step
// record at index with the call's id. It returns a value: every tool and
// llm call of a replay asks, and a pointer would be an allocation each.
func (rp *replayer) find(index int, callID string) (outcome, error) {
	if index >= len(rp.rec.Steps) {
		return outcome{}, fmt.Errorf("replay: no recorded step at index %d", index)
	}
	r := &rp.rec.Steps[index]
	parent, sub, isSub := strings.Cut(callID, "/")
	if !isSub {
		if r.StepID != callID {
			return outcome{}, fmt.Errorf("replay: recorded step %d is %q, not %q", index, r.StepID, callID)
		}
		return outcome{status: r.Status, output: r.Output, err: r.Error, retries: r.Retries, usage: r.Usage, timedOut: r.TimedOut, rawOutput: r.RawOutput, log: r.Log, tool: r.Tool}, nil
	}
	if r.StepID != parent {
		return outcome{}, fmt.Errorf("replay: recorded step %d is %q, not %q", index, r.StepID, parent)
	}
	for i := range r.SubSteps {
		s := &r.SubSteps[i]
		if s.StepID == sub {
			return outcome{status: s.Status, output: s.Output, err: s.Error, retries: s.Retries, usage: s.Usage, timedOut: s.TimedOut, rawOutput: s.RawOutput, log: s.Log, tool: s.Tool}, nil
		}
	}
	return outcome{}, fmt.Errorf("replay: recorded step %d has no sub-step %q", index, sub)
}

// answer replays one attempt: attempts before the last fail, the last
// gives the recorded result.
func (o *outcome) answer(attempt int) (any, error) {
	if attempt <= o.retries {
		return nil, fmt.Errorf("replayed failure of attempt %d", attempt)
	}
	if o.timedOut {
		return nil, context.DeadlineExceeded
	}
	if o.rawOutput != nil {
		return *o.rawOutput, nil
	}
	if o.status == StepFailed || (o.status == StepSkipped && o.err != "") {
		return nil, fmt.Errorf("%s", o.err)
	}
	return o.output, nil
}

func (rp *replayer) Execute(_ context.Context, call ToolCall) (ToolResult, error) {
	o, err := rp.find(call.StepIndex, call.StepID)
	if err != nil {
		return ToolResult{}, err
	}
	out, err := o.answer(call.Attempt)
	return ToolResult{Output: out, Log: o.log, Provenance: o.tool}, err
}

func (rp *replayer) Complete(_ context.Context, req LLMRequest) (LLMResponse, error) {
	o, err := rp.find(req.StepIndex, req.StepID)
	if err != nil {
		return LLMResponse{}, err
	}
	var usage Usage
	if req.Attempt == o.retries+1 {
		usage = o.usage
	}
	out, err := o.answer(req.Attempt)
	if err != nil {
		return LLMResponse{Usage: usage}, err
	}
	text, _ := out.(string)
	return LLMResponse{Text: text, Usage: usage}, nil
}

// replayClock never waits: replay reproduces decisions, not durations.
type replayClock struct{ start time.Time }

func (c replayClock) Now() time.Time                                 { return c.start }
func (replayClock) Sleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }
func (replayClock) WithTimeout(ctx context.Context, _ time.Duration) (context.Context, context.CancelFunc) {
	return context.WithCancel(ctx)
}

type fixedID string

func (f fixedID) NewID() string { return string(f) }
