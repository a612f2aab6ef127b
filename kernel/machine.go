package kernel

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nanovm/nano-vm-mcp/internal/canonical"
	"github.com/nanovm/nano-vm-mcp/kernel/projection"
)

// Options configure a Machine. A nil *Options, and every zero field, means
// the documented default.
type Options struct {
	// Tools runs tool steps. Nil makes every tool step fail with
	// "no tool executor configured".
	Tools ToolExecutor
	// LLM answers llm steps. Nil makes every llm step fail with
	// "no LLM configured".
	LLM LLMClient
	// Clock is the source of time; nil means SystemClock.
	Clock Clock
	// IDs makes trace ids; nil means RandomIDs (UUIDv4).
	IDs IDSource
	// Observer is told about every step; nil means nobody is.
	Observer Observer
	// Refs tells the LLM projection about vault references; nil means every
	// reference is unknown to the vault.
	Refs projection.Refs
}

// Machine runs programs. It holds no per-run state: one Machine serves any
// number of concurrent runs.
type Machine struct {
	tools    ToolExecutor
	llm      LLMClient
	clock    Clock
	ids      IDSource
	observer Observer
	refs     projection.Refs
}

// NewMachine returns a Machine configured by opts (nil for defaults).
func NewMachine(opts *Options) *Machine {
	m := &Machine{clock: SystemClock{}, ids: RandomIDs{}}
	if opts == nil {
		return m
	}
	m.tools, m.llm, m.observer, m.refs = opts.Tools, opts.LLM, opts.Observer, opts.Refs
	if opts.Clock != nil {
		m.clock = opts.Clock
	}
	if opts.IDs != nil {
		m.ids = opts.IDs
	}
	return m
}

// ResumeSource says where a resume event came from.
type ResumeSource string

// The sources of a resume event, as in the original.
const (
	SourceWebhook  ResumeSource = "WEBHOOK"
	SourceOperator ResumeSource = "OPERATOR"
	SourceTimer    ResumeSource = "TIMER"
)

// ResumeEvent continues a suspended run.
type ResumeEvent struct {
	TraceID string       `json:"trace_id"`
	Payload any          `json:"payload"`
	Source  ResumeSource `json:"source"`
}

// Start runs prog with input from its first step until the run ends or
// suspends. traceID names the run; "" asks the IDSource for one.
//
// The returned error is not about the program: a program that fails still
// returns a nil error and a trace with StatusFailed. An error means the run
// was interrupted (ctx was cancelled, or the Observer refused a step) and the
// trace, still StatusRunning, can be continued with Continue.
func (m *Machine) Start(ctx context.Context, prog *Program, input map[string]any, traceID string) (*Trace, error) {
	if prog.compiled == nil {
		return nil, ErrNotValidated
	}
	if traceID == "" {
		traceID = m.ids.NewID()
	}
	p, err := Prepare(prog, input, traceID, m.clock.Now())
	if err != nil {
		return nil, err
	}
	return m.StartPrepared(ctx, &p)
}

// Prepared is a run made ready to start by Prepare: its trace's header
// (TraceID, ProgramName, StartedAt, InitialStateHash) is known before the
// first step runs, so a caller can record it with the run (the runtime
// writes it in the run's first record, which the first step then need not
// rewrite).
type Prepared struct {
	prog *Program
	tr   *Trace
	st   *state
}

// Prepare makes a run of prog with input ready to start at startedAt
// (Start takes it from the machine's clock) under traceID, which must not
// be empty. A Prepared is a value, so that a caller that starts it at
// once keeps it on its stack.
func Prepare(prog *Program, input map[string]any, traceID string, startedAt time.Time) (Prepared, error) {
	if prog.compiled == nil {
		return Prepared{}, ErrNotValidated
	}
	if traceID == "" {
		return Prepared{}, errors.New("prepare: empty trace id")
	}
	st, err := newState(input, len(prog.Steps))
	if err != nil {
		return Prepared{}, fmt.Errorf("start: %w", err)
	}
	tr := &Trace{
		TraceID:     traceID,
		ProgramName: prog.Name,
		Status:      StatusRunning,
		Steps:       make([]StepRecord, 0, recordsHint(prog)),
		StartedAt:   startedAt.UTC(),
	}
	tr.InitialStateHash = st.hash()
	return Prepared{prog: prog, tr: tr, st: st}, nil
}

// Header is the prepared run's trace before its first step: no steps, the
// status running. The caller must not modify it.
func (p *Prepared) Header() *Trace { return p.tr }

// StartPrepared runs a prepared run from its first step, as Start does. A
// Prepared starts once: a second call returns an error.
func (m *Machine) StartPrepared(ctx context.Context, p *Prepared) (*Trace, error) {
	if p.st == nil {
		return nil, errStarted
	}
	r := &run{m: m, prog: p.prog, tr: p.tr, st: p.st}
	p.st = nil
	r.lastHash = r.tr.InitialStateHash
	return r.loop(ctx)
}

// errStarted is StartPrepared's error for a Prepared that already ran
// (or that Prepare did not make).
var errStarted = errors.New("start: the prepared run has started already, or was not prepared")

// Continue continues an interrupted run (StatusRunning) from its last
// recorded step, after a crash or a cancellation. The trace is checked
// against the program and input as it is folded back into state.
func (m *Machine) Continue(ctx context.Context, prog *Program, input map[string]any, tr *Trace) (*Trace, error) {
	r, err := m.restore(prog, input, tr)
	if err != nil {
		return nil, err
	}
	switch {
	case r.tr.Status.Terminal():
		return r.tr, fmt.Errorf("continue %s: %w (%s)", tr.TraceID, ErrFinished, r.tr.Status)
	case r.tr.Status == StatusSuspended:
		return r.tr, fmt.Errorf("continue %s: run is suspended at step %q; resume it with an event", tr.TraceID, r.tr.SuspendedStepID)
	}
	return r.loop(ctx)
}

// Resume continues a suspended run with an event: the payload becomes the
// suspended step's output (and its output_key), and is also stored under
// __webhook__ with the source under __webhook_source__. The run goes on after
// the suspended step, with the same trace id. Resuming a run that is not
// suspended, or resuming twice, returns ErrNotSuspended.
func (m *Machine) Resume(ctx context.Context, prog *Program, input map[string]any, tr *Trace, ev ResumeEvent) (*Trace, error) {
	r, err := m.restore(prog, input, tr)
	if err != nil {
		return nil, err
	}
	return r.resume(ctx, ev)
}

func (r *run) resume(ctx context.Context, ev ResumeEvent) (*Trace, error) {
	if r.tr.Status != StatusSuspended {
		return r.tr, fmt.Errorf("resume %s: %w (status %s)", r.tr.TraceID, ErrNotSuspended, r.tr.Status)
	}
	if ev.TraceID != "" && ev.TraceID != r.tr.TraceID {
		return r.tr, fmt.Errorf("resume %s: event is for trace %s", r.tr.TraceID, ev.TraceID)
	}
	switch ev.Source {
	case SourceWebhook, SourceOperator, SourceTimer:
	case "":
		ev.Source = SourceWebhook
	default:
		return r.tr, fmt.Errorf("resume %s: unknown source %q; one of WEBHOOK, OPERATOR, TIMER", r.tr.TraceID, ev.Source)
	}
	now := r.m.clock.Now().UTC()
	idx := r.prog.compiled.index[r.tr.SuspendedStepID]
	rec := StepRecord{
		Index:      len(r.tr.Steps),
		StepID:     r.tr.SuspendedStepID,
		Type:       r.prog.Steps[idx].Type,
		Kind:       KindResume,
		Status:     StepSuccess,
		Output:     ev.Payload,
		Source:     string(ev.Source),
		StartedAt:  now,
		FinishedAt: now,
	}
	if err := r.commit(ctx, &rec); err != nil {
		return r.tr, err
	}
	return r.loop(ctx)
}

// recordsHint is the room a new trace makes for its records: one per
// step, as a run without loops takes, up to 16.
func recordsHint(prog *Program) int { return min(len(prog.Steps), 16) }

// run is the state of one run in memory.
type run struct {
	m    *Machine
	prog *Program
	tr   *Trace
	st   *state
	// cursor is the index of the next step to run, or -1 when none.
	cursor   int
	executed int // step records (not resume events), for max_steps
	tokens   int
	stalled  int
	lastHash string
	// lookup reads a condition's variables; lookupPath and llmPath
	// resolve $references in a tool's args and in a prompt (through the
	// LLM projection). Made by the first execute.
	lookup              func(path []string) (any, bool)
	lookupPath, llmPath func(path string) (any, bool)
	// rec is the record execute builds, until apply copies it into tr.
	rec StepRecord
	// outputJSON is the canonical encoding of the output the last applied
	// record stored in the state, nil when it stored none.
	outputJSON []byte
}

// loop runs steps until the run ends, suspends or is interrupted.
func (r *run) loop(ctx context.Context) (*Trace, error) {
	// Once the loop returns no step of this run changes its state again.
	defer r.st.release()
	p := r.prog
	for r.tr.Status == StatusRunning {
		if err := ctx.Err(); err != nil {
			return r.interrupted(err)
		}
		if r.cursor < 0 {
			r.finish(StatusSuccess, "")
			break
		}
		if p.MaxSteps != nil && r.executed >= *p.MaxSteps {
			r.finish(StatusBudgetExceeded, fmt.Sprintf("max_steps=%d exceeded after %d step(s)", *p.MaxSteps, r.executed))
			break
		}
		if c := p.stepCeiling; c > 0 && r.executed >= c {
			r.finish(StatusBudgetExceeded, fmt.Sprintf("the server's ceiling of %d steps per run exceeded", c))
			break
		}
		if p.MaxTokens != nil && r.tokens >= *p.MaxTokens {
			r.finish(StatusBudgetExceeded, fmt.Sprintf("max_tokens=%d exceeded: %d tokens consumed", *p.MaxTokens, r.tokens))
			break
		}
		step := &p.Steps[r.cursor]
		rec, err := r.execute(ctx, step)
		if err != nil {
			return r.interrupted(err)
		}
		if err := r.commit(ctx, rec); err != nil {
			return r.tr, err
		}
	}
	return r.tr, nil
}

// commit folds a new record into the run and hands it to the observer.
func (r *run) commit(ctx context.Context, rec *StepRecord) error {
	if err := r.apply(rec, false); err != nil {
		return err
	}
	if r.m.observer != nil {
		ev := StepEvent{TraceID: r.tr.TraceID, Record: &r.tr.Steps[len(r.tr.Steps)-1], Status: r.tr.Status, Trace: r.tr, State: r.st.vars, OutputJSON: r.outputJSON}
		if err := r.m.observer.StepFinished(ctx, ev); err != nil {
			// The observer did not make the step durable: the run stops here
			// and is continued later from what the observer accepted.
			r.tr.Status = StatusRunning
			return fmt.Errorf("step %q: observer: %w", rec.StepID, err)
		}
	}
	return nil
}

func (r *run) interrupted(err error) (*Trace, error) {
	r.computeStateRoot()
	return r.tr, fmt.Errorf("run %s interrupted: %w", r.tr.TraceID, err)
}

// finish ends the run with a terminal status.
func (r *run) finish(s Status, msg string) {
	r.tr.Status = s
	r.tr.Error = msg
	now := r.m.clock.Now().UTC()
	r.tr.FinishedAt = &now
	r.tr.DurationMS = durationMS(r.tr.StartedAt, now)
	r.computeStateRoot()
}

func (r *run) computeStateRoot() {
	// A run of a few steps finds its leaves room on the stack.
	var small [16]string
	leaves := small[:0]
	if n := len(r.tr.StateSnapshots); n > len(small) {
		leaves = make([]string, 0, n)
	}
	for _, s := range r.tr.StateSnapshots {
		leaves = append(leaves, s.Hash)
	}
	root, err := canonical.MerkleRoot(leaves)
	if err == nil {
		r.tr.StateRoot = root
	}
}

func durationMS(a, b time.Time) float64 { return float64(b.Sub(a).Microseconds()) / 1000 }

// apply folds one record into the run: state, counters, the next step and
// the run's status. With verify set (restoring a recorded trace) the
// recomputed state hash must equal the recorded one; otherwise the record
// gets it. The record is appended to the trace.
func (r *run) apply(rec *StepRecord, verify bool) error {
	p := r.prog
	tr := r.tr
	idx := r.cursor
	if idx < 0 || idx >= len(p.Steps) || p.Steps[idx].ID != rec.StepID {
		// Not the step the run is at (a resume, a mismatched record):
		// look it up.
		var ok bool
		if idx, ok = p.compiled.index[rec.StepID]; !ok {
			return fmt.Errorf("%w: record %d names step %q, which the program lacks", ErrTraceMismatch, rec.Index, rec.StepID)
		}
	}
	step := &p.Steps[idx]
	if rec.Index != len(tr.Steps) {
		return fmt.Errorf("%w: record %d is at position %d", ErrTraceMismatch, rec.Index, len(tr.Steps))
	}
	st := r.st
	next := -1
	r.outputJSON = nil
	switch rec.Kind {
	case KindResume:
		if tr.Status != StatusSuspended || tr.SuspendedStepID != rec.StepID {
			return fmt.Errorf("%w: record %d resumes step %q, which is not suspended", ErrTraceMismatch, rec.Index, rec.StepID)
		}
		if err := r.store(step, rec.Output); err != nil {
			return err
		}
		if err := st.setData(WebhookKey, rec.Output); err != nil {
			return err
		}
		if err := st.setData(WebhookSourceKey, rec.Source); err != nil {
			return err
		}
		tr.Status = StatusRunning
		tr.SuspendedStepID = ""
		next = r.fallthroughOf(idx)
	case KindStep:
		if verify && idx != r.cursor {
			want := "the end of the run"
			if r.cursor >= 0 {
				want = fmt.Sprintf("step %q", p.Steps[r.cursor].ID)
			}
			return fmt.Errorf("%w: record %d is step %q, expected %s", ErrTraceMismatch, rec.Index, rec.StepID, want)
		}
		if verify && tr.Status != StatusRunning {
			return fmt.Errorf("%w: record %d follows the end of the run (%s)", ErrTraceMismatch, rec.Index, tr.Status)
		}
		r.executed++
		r.count(step, rec)
		switch rec.Status {
		case StepSuccess, StepSkipped:
			if err := r.store(step, rec.Output); err != nil {
				return err
			}
			if step.Type == StepParallel {
				for i := range rec.SubSteps {
					sub := &rec.SubSteps[i]
					if key := r.subOutputKey(step, i, sub.StepID); key != "" && sub.Status != StepFailed {
						if err := st.setData(key, sub.Output); err != nil {
							return err
						}
					}
				}
			}
			if rec.Status == StepSuccess {
				tr.FinalOutput = rec.Output
			}
			if step.Type == StepCondition {
				next = r.branch(idx, truthy(rec.Output))
			} else {
				next = r.fallthroughOf(idx)
			}
		case StepPending:
			tr.Status = StatusSuspended
			tr.SuspendedStepID = step.ID
		case StepFailed:
			msg := rec.Error
			if msg == "" {
				msg = "failed"
			}
			tr.Status = StatusFailed
			tr.Error = fmt.Sprintf("step %q: %s", step.ID, msg)
		default:
			return fmt.Errorf("%w: record %d has status %q", ErrTraceMismatch, rec.Index, rec.Status)
		}
	default:
		return fmt.Errorf("%w: record %d has kind %q", ErrTraceMismatch, rec.Index, rec.Kind)
	}

	h := st.hash()
	if verify {
		if rec.StateHash != h {
			return fmt.Errorf("%w: record %d (step %q): state hash %s, recorded %s", ErrTraceMismatch, rec.Index, rec.StepID, h, rec.StateHash)
		}
	} else {
		rec.StateHash = h
	}
	if rec.Kind == KindStep && (rec.Status == StepSuccess || rec.Status == StepSkipped) {
		if h == r.lastHash {
			r.stalled++
		} else {
			r.stalled = 0
		}
	}
	r.lastHash = h
	r.cursor = next
	if next >= 0 && tr.Status == StatusRunning {
		rec.Next = p.Steps[next].ID
	} else {
		rec.Next = ""
	}
	tr.Steps = append(tr.Steps, *rec)
	if tr.StateSnapshots == nil {
		tr.StateSnapshots = make([]Snapshot, 0, max(cap(tr.Steps), 1))
	}
	tr.StateSnapshots = append(tr.StateSnapshots, Snapshot{Index: rec.Index, Hash: h})
	switch {
	case tr.Status == StatusFailed:
		r.finish(StatusFailed, tr.Error)
	case tr.Status == StatusSuspended:
		r.computeStateRoot()
	case p.MaxStalledSteps != nil && r.stalled > 0 && r.stalled >= *p.MaxStalledSteps:
		r.finish(StatusStalled, fmt.Sprintf("max_stalled_steps=%d exceeded: %d consecutive no-op step(s)", *p.MaxStalledSteps, r.stalled))
	case tr.Status == StatusRunning && next < 0:
		// The last step: the run ends with this record, so the observer
		// sees the terminal trace and can make the end durable with it.
		r.finish(StatusSuccess, "")
	}
	return nil
}

// store writes a step's output under its id and its output_key.
func (r *run) store(step *Step, out any) error {
	if err := r.st.setOutput(step.ID, out); err != nil {
		return err
	}
	enc := r.st.outputs.m[step.ID].enc
	r.outputJSON = enc
	if step.OutputKey != "" {
		// The same value: its encoding is shared, not made again.
		r.st.setDataShared(step.OutputKey, out, enc)
	}
	return nil
}

// subOutputKey is the output_key of parent's sub-step subID, which the
// record lists at position i (where a run records it).
func (r *run) subOutputKey(parent *Step, i int, subID string) string {
	if i < len(parent.ParallelSteps) && parent.ParallelSteps[i].ID == subID {
		return parent.ParallelSteps[i].OutputKey
	}
	j, ok := r.prog.compiled.subIndex[parent.ID][subID]
	if !ok {
		return ""
	}
	return parent.ParallelSteps[j].OutputKey
}

func (r *run) count(step *Step, rec *StepRecord) {
	tally(&r.tr.StepMetrics, &r.tr.Usage, step.Type, rec)
	r.tokens += rec.Usage.tokens()
}

// tally adds one step record of type typ to the metrics and the usage.
func tally(m *StepMetrics, u *Usage, typ StepType, rec *StepRecord) {
	m.RetriesTotal += rec.Retries
	switch typ {
	case StepTool:
		m.ToolCalls += rec.Retries + 1
	case StepLLM:
		m.LLMCalls += rec.Retries + 1
	case StepCondition:
		m.ConditionEvals++
	case StepParallel:
		for i := range rec.SubSteps {
			sub := &rec.SubSteps[i]
			m.RetriesTotal += sub.Retries
			if sub.Type == StepLLM {
				m.LLMCalls += sub.Retries + 1
			} else {
				m.ToolCalls += sub.Retries + 1
			}
		}
	}
	u.add(rec.Usage)
}

// fallthroughOf is the step after idx when no branch applies.
func (r *run) fallthroughOf(idx int) int {
	if n, ok := r.prog.compiled.fallthroughOf(r.prog, idx); ok {
		return n
	}
	return -1
}

// branch is the step after condition idx for the given result: its then or
// otherwise target, or the fall-through when that target is absent.
func (r *run) branch(idx int, result bool) int {
	s := &r.prog.Steps[idx]
	target := s.Otherwise
	if result {
		target = s.Then
	}
	if target == "" {
		return r.fallthroughOf(idx)
	}
	return r.prog.compiled.index[target]
}

// restore folds a recorded trace back into a run, checking each record
// against the program and the recomputed state hashes.
func (m *Machine) restore(prog *Program, input map[string]any, rec *Trace) (*run, error) {
	if prog.compiled == nil {
		return nil, ErrNotValidated
	}
	st, err := newState(input, len(prog.Steps))
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	tr := &Trace{
		TraceID:     rec.TraceID,
		ProgramName: rec.ProgramName,
		Status:      StatusRunning,
		Steps:       make([]StepRecord, 0, len(rec.Steps)),
		StartedAt:   rec.StartedAt,
	}
	r := &run{m: m, prog: prog, tr: tr, st: st}
	tr.InitialStateHash = st.hash()
	if rec.InitialStateHash != "" && rec.InitialStateHash != tr.InitialStateHash {
		return nil, fmt.Errorf("%w: the input's state hash %s differs from the recorded %s", ErrTraceMismatch, tr.InitialStateHash, rec.InitialStateHash)
	}
	r.lastHash = tr.InitialStateHash
	for i := range rec.Steps {
		cp := rec.Steps[i]
		if err := r.apply(&cp, true); err != nil {
			return nil, err
		}
	}
	if tr.Status.Terminal() {
		// A terminal trace keeps its recorded end.
		tr.FinishedAt, tr.DurationMS = rec.FinishedAt, rec.DurationMS
	}
	return r, nil
}

// truthy is the truthiness of a JSON value, as the condition language
// judges a lone operand.
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case float64:
		return x != 0
	case int:
		return x != 0
	case string:
		return x != ""
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}

var errNoTools = errors.New("no tool executor configured")
var errNoLLM = errors.New("no LLM configured: set NANO_VM_MCP_LLM_MODEL")
