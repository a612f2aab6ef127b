package kernel

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nanovm/nano-vm-mcp/kernel/internal/condition"
	"github.com/nanovm/nano-vm-mcp/kernel/projection"
)

// Backoff between attempts of a retried step: 1 s, 2 s, 4 s … capped.
const (
	backoffBase = time.Second
	backoffCap  = 30 * time.Second
)

// Backoff returns the wait before attempt n (n ≥ 2) of a retried step.
func Backoff(attempt int) time.Duration {
	if attempt < 2 {
		return 0
	}
	d := backoffBase
	for i := 2; i < attempt; i++ {
		d *= 2
		if d >= backoffCap {
			return backoffCap
		}
	}
	return d
}

// errInterrupted marks an attempt cut short because the run's own context
// ended; the step is not recorded and the run can be continued.
type errInterrupted struct{ err error }

func (e errInterrupted) Error() string { return e.err.Error() }
func (e errInterrupted) Unwrap() error { return e.err }

// outcome is the result of running one llm or tool step (or sub-step)
// through its attempts.
type outcome struct {
	status    StepStatus
	output    any
	err       string
	retries   int
	usage     Usage
	timedOut  bool
	rawOutput *string
	log       string
	tool      *ToolProvenance
}

// execute runs one step and returns its record, not yet applied.
func (r *run) execute(ctx context.Context, step *Step) (*StepRecord, error) {
	if r.lookupPath == nil {
		// Made once per run, here, before any sub-step goroutine reads
		// them; they read the state, which no step changes while it runs.
		r.lookup, r.lookupPath, r.llmPath = r.st.lookup, r.st.lookupPath, r.llmLookup()
	}
	// The record is built in the run's own: apply copies it into the
	// trace, so one serves every step.
	rec := &r.rec
	*rec = StepRecord{
		Index:     len(r.tr.Steps),
		StepID:    step.ID,
		Type:      step.Type,
		StartedAt: r.m.clock.Now().UTC(),
	}
	if r.m.observer != nil {
		if err := r.m.observer.StepStarted(ctx, StepEvent{TraceID: r.tr.TraceID, Record: rec, Status: StatusRunning, Trace: r.tr}); err != nil {
			return nil, fmt.Errorf("step %q: observer: %w", step.ID, err)
		}
	}
	switch step.Type {
	case StepCondition:
		r.condition(step, rec)
	case StepParallel:
		if err := r.parallel(ctx, step, rec); err != nil {
			return nil, err
		}
	default:
		o, err := r.attempts(ctx, step, rec.Index, step.ID)
		if err != nil {
			return nil, err
		}
		rec.Status, rec.Output, rec.Error, rec.Retries = o.status, o.output, o.err, o.retries
		rec.Usage, rec.TimedOut, rec.RawOutput, rec.Log, rec.Tool = o.usage, o.timedOut, o.rawOutput, o.log, o.tool
	}
	rec.FinishedAt = r.m.clock.Now().UTC()
	rec.DurationMS = durationMS(rec.StartedAt, rec.FinishedAt)
	return rec, nil
}

// condition evaluates a condition step. An evaluation error (a type error)
// fails the step; under on_error "skip" the result is null, which takes the
// otherwise branch. Retrying would give the same error, so "retry" fails.
func (r *run) condition(step *Step, rec *StepRecord) {
	ok, err := r.at(step).cond.Eval(r.lookup)
	if err == nil {
		rec.Status, rec.Output = StepSuccess, ok
		return
	}
	rec.Error = fmt.Sprintf("condition %q: %v", step.Condition, err)
	if step.OnError == OnErrorSkip {
		rec.Status, rec.Output = StepSkipped, nil
		return
	}
	rec.Status = StepFailed
}

// parallel runs a parallel step's sub-steps concurrently, at most
// max_concurrency at a time, and records them in program order.
func (r *run) parallel(ctx context.Context, step *Step, rec *StepRecord) error {
	n := len(step.ParallelSteps)
	limit := step.MaxConcurrency
	if limit <= 0 || limit > n {
		limit = n
	}
	calls := r.at(step).calls
	if len(calls) != n {
		calls = make([]subCall, n)
		for i := range step.ParallelSteps {
			sub := effectiveSub(step, &step.ParallelSteps[i])
			calls[i] = subCall{step: sub, callID: step.ID + "/" + sub.ID}
		}
	}
	f := &fanOut{r: r, ctx: ctx, index: rec.Index, calls: calls, subs: make([]SubStepRecord, n)}
	f.res = f.small[:0]
	if n > len(f.small) {
		f.res = make([]subResult, 0, n)
	}
	f.res = f.res[:n]
	// A semaphore only when max_concurrency holds some sub-steps back.
	if limit < n {
		f.sem = make(chan struct{}, limit)
	}
	for i := range n {
		f.wg.Add(1)
		if f.sem != nil {
			f.sem <- struct{}{}
		}
		if i == n-1 {
			// The last sub-step runs here: nothing is left to start,
			// and this goroutine would only wait.
			f.one(i)
			break
		}
		goSub(func() { f.one(i) })
	}
	f.wg.Wait()
	subs, res := f.subs, f.res
	output := make(map[string]any, n)
	var failed []string
	for i := range subs {
		if res[i].err != nil {
			return res[i].err
		}
		o := &res[i].o
		s := &subs[i]
		s.Status, s.Output, s.Error, s.Retries = o.status, o.output, o.err, o.retries
		s.Usage, s.TimedOut, s.RawOutput, s.Log, s.Tool = o.usage, o.timedOut, o.rawOutput, o.log, o.tool
		rec.Usage.add(o.usage)
		if s.Status == StepFailed {
			failed = append(failed, fmt.Sprintf("%s: %s", s.StepID, s.Error))
			output[s.StepID] = nil
			continue
		}
		output[s.StepID] = s.Output
	}
	rec.SubSteps = subs
	rec.Output = output
	if len(failed) > 0 {
		rec.Status = StepFailed
		rec.Error = "sub-step " + strings.Join(failed, "; sub-step ")
		return nil
	}
	rec.Status = StepSuccess
	return nil
}

// fanOut is one parallel step's sub-steps in flight: what they share, in
// one allocation (the results of up to four sub-steps with it).
type fanOut struct {
	r     *run
	ctx   context.Context
	index int
	calls []subCall
	subs  []SubStepRecord
	res   []subResult
	small [4]subResult
	// sem holds max_concurrency's slots, nil when it holds nothing back.
	sem chan struct{}
	wg  sync.WaitGroup
}

// one runs sub-step i through its attempts.
func (f *fanOut) one(i int) {
	defer func() {
		if f.sem != nil {
			<-f.sem
		}
		f.wg.Done()
	}()
	sub := f.calls[i].step
	clock := f.r.m.clock
	start := clock.Now().UTC()
	f.res[i].o, f.res[i].err = f.r.attempts(f.ctx, sub, f.index, f.calls[i].callID)
	end := clock.Now().UTC()
	f.subs[i] = SubStepRecord{StepID: sub.ID, Type: sub.Type, StartedAt: start, FinishedAt: end, DurationMS: durationMS(start, end)}
}

// prepared is what validation made ready for one top-level step.
type prepared struct {
	cond  *condition.Expr
	calls []subCall
}

// at returns what validation prepared for step, a top-level step of the
// run's program: by its position when step is the one the run is at.
func (r *run) at(step *Step) prepared {
	c := r.prog.compiled
	if i := r.cursor; i >= 0 && i < len(r.prog.Steps) && &r.prog.Steps[i] == step && i < len(c.condAt) {
		return prepared{cond: c.condAt[i], calls: c.callsAt[i]}
	}
	return prepared{cond: c.conds[step.ID], calls: c.calls[step.ID]}
}

// subResult is what one sub-step's attempts came to.
type subResult struct {
	o   outcome
	err error
}

// effectiveSub gives a sub-step its parent's error policy when it sets none.
func effectiveSub(parent, sub *Step) *Step {
	if sub.OnError != "" || parent.OnError == "" {
		return sub
	}
	cp := *sub
	cp.OnError = parent.OnError
	if cp.MaxRetries == nil {
		cp.MaxRetries = parent.MaxRetries
	}
	return &cp
}

// attempts runs an llm or tool step through its on_error policy: up to
// max_retries attempts under "retry" with backoff between them, a timeout
// per attempt, and the fallback under on_timeout.
func (r *run) attempts(ctx context.Context, step *Step, index int, callID string) (outcome, error) {
	var o outcome
	max := step.attempts()
	var timeout time.Duration
	if step.TimeoutSeconds > 0 {
		timeout = time.Duration(step.TimeoutSeconds * float64(time.Second))
	}
	var lastErr error
	for attempt := 1; attempt <= max; attempt++ {
		if attempt > 1 {
			o.retries++
			if err := r.m.clock.Sleep(ctx, Backoff(attempt)); err != nil {
				return o, errInterrupted{err}
			}
		}
		actx, cancel := ctx, context.CancelFunc(func() {})
		if timeout > 0 {
			actx, cancel = r.m.clock.WithTimeout(ctx, timeout)
		}
		out, err := r.attempt(actx, step, index, callID, attempt, timeout, &o)
		timedOut := err != nil && (errors.Is(err, context.DeadlineExceeded) || actx.Err() == context.DeadlineExceeded)
		cancel()
		if ctx.Err() != nil {
			return o, errInterrupted{ctx.Err()}
		}
		if err == nil {
			o.status, o.output, o.err = StepSuccess, out, ""
			if IsPending(out) {
				if callID != step.ID {
					o.status, o.err = StepFailed, "a sub-step of a parallel step cannot suspend the run"
					return o, nil
				}
				o.status = StepPending
			}
			return o, nil
		}
		if timedOut {
			if step.OnTimeout == OnTimeoutFallback {
				o.status, o.output, o.err, o.timedOut = StepSuccess, fallbackValue(step), "", true
				return o, nil
			}
			err = fmt.Errorf("timed out after %s", timeout)
		}
		lastErr = err
		if step.OnError != OnErrorRetry {
			break
		}
	}
	o.err = lastErr.Error()
	if step.OnError == OnErrorSkip {
		o.status = StepSkipped
		var mismatch *outputMismatch
		if errors.As(lastErr, &mismatch) {
			// The original's rule: a rejected answer under skip yields the
			// first allowed output.
			o.output = step.AllowedOutputs[0]
		} else {
			o.output = nil
		}
		return o, nil
	}
	o.status, o.output = StepFailed, nil
	return o, nil
}

// attempt makes one call of an llm or tool step.
func (r *run) attempt(ctx context.Context, step *Step, index int, callID string, attempt int, timeout time.Duration, o *outcome) (any, error) {
	switch step.Type {
	case StepTool:
		if r.m.tools == nil {
			return nil, errNoTools
		}
		args, _ := resolveRefs(step.Args, r.lookupPath).(map[string]any)
		if args == nil {
			args = map[string]any{}
		}
		res, err := r.m.tools.Execute(ctx, ToolCall{
			TraceID: r.tr.TraceID, StepID: callID, StepIndex: index, Attempt: attempt,
			Tool: step.Tool, Args: args, Timeout: timeout, State: r.st.vars,
		})
		if res.Log != "" {
			o.log = res.Log
		}
		if res.Provenance != nil {
			o.tool = res.Provenance
		}
		if err != nil {
			return nil, err
		}
		return res.Output, nil
	case StepLLM:
		if r.m.llm == nil {
			return nil, errNoLLM
		}
		lookup := r.llmPath
		req := LLMRequest{
			TraceID: r.tr.TraceID, StepID: callID, StepIndex: index, Attempt: attempt,
			Prompt: resolveText(step.Prompt, lookup), AllowedOutputs: step.AllowedOutputs, Timeout: timeout,
		}
		if step.System != "" {
			req.System = resolveText(step.System, lookup)
		}
		resp, err := r.m.llm.Complete(ctx, req)
		o.usage.add(resp.Usage)
		if err != nil {
			return nil, err
		}
		text := strings.TrimSpace(resp.Text)
		if step.AllowedOutputs != nil && !slices.Contains(step.AllowedOutputs, text) {
			raw := text
			o.rawOutput = &raw
			return nil, &outputMismatch{got: text, allowed: step.AllowedOutputs}
		}
		o.rawOutput = nil
		return text, nil
	}
	return nil, fmt.Errorf("step type %s makes no calls", step.Type)
}

// llmLookup resolves references for a prompt through the LLM projection:
// a prompt never sees governance metadata, secrets or raw PII.
func (r *run) llmLookup() func(path string) (any, bool) {
	opts := projection.Options{Refs: r.m.refs}
	return func(path string) (any, bool) {
		head, rest, _ := strings.Cut(path, ".")
		if strings.HasPrefix(head, "__") {
			if head == WebhookKey {
				return projection.Redacted, true
			}
			return nil, false
		}
		v, ok := r.st.vars[head]
		if !ok {
			return nil, false
		}
		cur, ok := projection.ProjectMember(head, v, projection.LLM, opts)
		if !ok {
			return nil, false
		}
		if first, after, _ := strings.Cut(rest, "."); first == "output" {
			if _, isStep := r.st.outputs.m[head]; isStep {
				if m, isMap := cur.(map[string]any); !isMap || m["output"] == nil {
					rest = after
				}
			}
		}
		return walkPath(cur, rest)
	}
}

// outputMismatch is an llm answer outside allowed_outputs.
type outputMismatch struct {
	got     string
	allowed []string
}

func (e *outputMismatch) Error() string {
	return fmt.Sprintf("output %q is not one of allowed_outputs %q", e.got, e.allowed)
}

func fallbackValue(step *Step) any {
	if len(step.AllowedOutputs) > 0 {
		return step.AllowedOutputs[0]
	}
	return ""
}

// Pending is the tool result that suspends a run: the string itself, or
// an object whose "status" is it.
const Pending = "PENDING"

// IsPending reports whether a tool result asks to suspend the run: Pending,
// or an object {"status": Pending, ...}.
func IsPending(v any) bool {
	switch x := v.(type) {
	case string:
		return x == Pending
	case map[string]any:
		s, ok := x["status"].(string)
		return ok && s == Pending
	}
	return false
}
