package runtime

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/nanovm/nano-vm-mcp/internal/canonical"
	"github.com/nanovm/nano-vm-mcp/internal/jsonlimit"
	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/kernel/projection"
	"github.com/nanovm/nano-vm-mcp/store"
	"github.com/nanovm/nano-vm-mcp/tools"
)

// RunRequest asks to run a program.
type RunRequest struct {
	// Program is the program as JSON; or give ProgramID of a saved one.
	Program   json.RawMessage
	ProgramID string
	// Input is the run's input; nil means {}.
	Input map[string]any
	// IdempotencyKey, when set, makes the run happen at most once per key.
	IdempotencyKey string
	// SaveAs saves the program under this id before running it.
	SaveAs string
	// Strict refuses the program, before anything runs or is saved, when
	// validation has warnings (RunResult.Warnings: a $reference that
	// matches nothing, an unreachable step, …), with code invalid_program
	// and the warnings in Details["warnings"].
	Strict bool
	// Progress, when set, is called after every durable step.
	Progress func(Progress)
}

// Progress reports one durable step of a run.
type Progress struct {
	TraceID string
	Index   int
	StepID  string
	Status  kernel.StepStatus
	// Done counts records so far; Total is the program's step count, a
	// hint only (branches skip steps, loops repeat them).
	Done, Total int
}

// RunResult summarises a run: small enough for any tool-output limit. The
// whole trace is read with Trace.
type RunResult struct {
	TraceID     string        `json:"trace_id"`
	ProgramID   string        `json:"program_id,omitempty"`
	ProgramName string        `json:"program_name"`
	Status      kernel.Status `json:"status"`
	Steps       int           `json:"steps"`
	Cost        float64       `json:"cost"`
	FinalOutput any           `json:"final_output"`
	Error       string        `json:"error,omitempty"`
	// SuspendedStepID names the step waiting for resume_program.
	SuspendedStepID string `json:"suspended_step_id,omitempty"`
	// StoredOutcome is true when an idempotency key returned the stored
	// outcome of an earlier run instead of running again. It is written as
	// "stored_outcome" and, for one release, also as the deprecated
	// "idempotent_replay" (see MarshalJSON).
	StoredOutcome bool `json:"stored_outcome,omitempty"`
	// Warnings are the program's validation warnings, with those that
	// depend on this run's input (a $reference that matches no input key,
	// step id or output_key: kernel.Program.RefWarnings).
	Warnings []string `json:"warnings,omitempty"`
}

// MarshalJSON writes the result with StoredOutcome under both
// "stored_outcome" and its deprecated name "idempotent_replay", which
// clients of earlier releases read. Deprecated: "idempotent_replay" goes in
// the next release.
func (r RunResult) MarshalJSON() ([]byte, error) {
	type plain RunResult
	return json.Marshal(struct {
		plain
		IdempotentReplay bool `json:"idempotent_replay,omitempty"`
	}{plain(r), r.StoredOutcome})
}

// flight is a run in progress in this process under an idempotency key;
// concurrent callers with the same key wait for it.
type flight struct {
	requestHash string
	done        chan struct{}
	res         *RunResult
	err         error
}

// loaded is a validated program with what the store records about it.
type loaded struct {
	prog     *kernel.Program
	raw      json.RawMessage // canonical JSON
	hash     string
	id       string
	warnings []string
}

// load decodes, validates and admits a program: the policy check and the
// model check happen here, before anything runs.
func (rt *Runtime) load(ctx context.Context, req RunRequest) (*loaded, error) {
	raw := req.Program
	id := req.ProgramID
	if len(raw) == 0 {
		if id == "" {
			return nil, newError(CodeInvalidArgument, nil, "give either program or program_id")
		}
		p, err := rt.store.Program(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, newError(CodeNotFound, err, "no saved program %q", id)
		}
		if err != nil {
			return nil, err
		}
		raw = p.Program
	} else if id != "" {
		return nil, newError(CodeInvalidArgument, nil, "give program or program_id, not both")
	}
	pp, err := rt.parse(raw)
	if err != nil {
		return nil, err
	}
	prog := pp.prog
	if err := rt.policy.Check(prog, func(name string) store.ToolSource {
		src, _ := rt.registry.Source(ctx, name)
		return src
	}); err != nil {
		var d *DeniedError
		errors.As(err, &d)
		e := newError(CodeCapabilityDenied, err, "the policy does not allow tool(s) %q", d.Tools)
		e.Details = map[string]any{"denied_tools": d.Tools}
		return nil, e
	}
	// A name the policy allows (or that no policy restricts) but nothing is
	// registered under is a typo or a missing `tool add`: refuse it before
	// the run starts, with the closest registered names. The policy is
	// asked first, so a tool it leaves out stays a capability denial.
	if err := rt.checkToolsExist(ctx, prog); err != nil {
		return nil, err
	}
	if rt.cfg.LLM == nil && usesLLM(prog.Steps) {
		return nil, newError(CodeNoModel, nil, "llm steps need a model: set NANO_VM_MCP_LLM_MODEL (e.g. openai/gpt-4o-mini, anthropic/claude-3-5-haiku-latest, ollama/llama3.2, mock/yes)")
	}
	return &loaded{prog: prog, raw: pp.canon, hash: pp.hash, id: id, warnings: pp.warnings}, nil
}

// checkToolsExist refuses a program with a tool step (top level or in a
// parallel step) naming a tool that is not registered. A pinned reference
// ("name@sha256:…") is left to the step: a removed tool's pinned versions
// stay resolvable.
func (rt *Runtime) checkToolsExist(ctx context.Context, prog *kernel.Program) error {
	var missing []string
	var visit func(steps []kernel.Step) error
	visit = func(steps []kernel.Step) error {
		for i := range steps {
			s := &steps[i]
			if s.Type == kernel.StepTool && !strings.Contains(s.Tool, "@") && !slices.Contains(missing, s.Tool) {
				_, err := rt.registry.Source(ctx, s.Tool)
				if errors.Is(err, store.ErrNotFound) {
					missing = append(missing, s.Tool)
				} else if err != nil {
					return fmt.Errorf("check tool %q: %w", s.Tool, err)
				}
			}
			if err := visit(s.ParallelSteps); err != nil {
				return err
			}
		}
		return nil
	}
	if err := visit(prog.Steps); err != nil {
		return err
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	recs, err := rt.registry.List(ctx)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(recs))
	for _, r := range recs {
		names = append(names, r.Name)
	}
	suggestions := make(map[string]any, len(missing))
	parts := make([]string, 0, len(missing))
	for _, name := range missing {
		near := kernel.Closest(name, names, 3)
		suggestions[name] = near
		part := fmt.Sprintf("%q", jsonlimit.Excerpt(name, 200))
		if len(near) > 0 {
			part += fmt.Sprintf(" (closest registered: %s)", strings.Join(quoteAll(near), ", "))
		}
		parts = append(parts, part)
	}
	e := newError(CodeUnknownTool, tools.ErrNotFound, "no tool is registered as %s; nothing ran. list_tools (or `nano-vm-mcp tool ls`) shows the registered tools, `nano-vm-mcp tool add` registers one",
		strings.Join(parts, ", "))
	e.Details = map[string]any{"unknown_tools": missing, "suggestions": suggestions}
	return e
}

// parsedProgram is what a program's bytes validate to, before any policy.
type parsedProgram struct {
	prog     *kernel.Program
	canon    json.RawMessage
	hash     string
	warnings []string
}

// parse validates a program and computes its canonical form and hash,
// from the cache when the same bytes were parsed before. Only programs
// that validate are cached; the result is read-only.
func (rt *Runtime) parse(raw json.RawMessage) (*parsedProgram, error) {
	// The program parsed last is compared byte for byte (a memcmp)
	// before the bytes are hashed for the cache's key.
	if l := rt.lastParsed.Load(); l != nil && bytes.Equal(l.raw, raw) {
		return l.pp, nil
	}
	key := sha256.Sum256(raw)
	if v, ok := rt.parsed.Load(key); ok {
		pp := v.(*parsedProgram)
		rt.lastParsed.Store(&lastProgram{raw: bytes.Clone(raw), pp: pp})
		return pp, nil
	}
	if err := jsonlimit.CheckSize("program", len(raw), jsonlimit.MaxProgramBytes); err != nil {
		return nil, newError(CodeInvalidProgram, err, "%v", err)
	}
	if err := jsonlimit.Check(raw); err != nil {
		return nil, newError(CodeInvalidProgram, err, "program: %v", err)
	}
	prog, warns, err := kernel.LoadProgram(raw)
	if err != nil {
		return nil, newError(CodeInvalidProgram, err, "%v", err)
	}
	if err := prog.CheckSteps(rt.cfg.MaxStepsPerRun); err != nil {
		return nil, newError(CodeInvalidProgram, err, "%v (NANO_VM_MCP_MAX_STEPS)", err)
	}
	prog.CapSteps(rt.cfg.MaxStepsPerRun)
	canon, err := canonical.Marshal(json.RawMessage(raw))
	if err != nil {
		return nil, newError(CodeInvalidProgram, err, "program: %v", err)
	}
	pp := &parsedProgram{prog: prog, canon: canon}
	pp.hash, _ = canonical.Hash(json.RawMessage(canon))
	for _, w := range warns {
		pp.warnings = append(pp.warnings, w.String())
	}
	// Bound the cache as rt.programs is bounded.
	if rt.cachedParsed.Add(1) > maxCachedPrograms {
		rt.parsed.Clear()
		rt.cachedParsed.Store(1)
	}
	rt.parsed.Store(key, pp)
	rt.lastParsed.Store(&lastProgram{raw: bytes.Clone(raw), pp: pp})
	return pp, nil
}

// lastProgram is the program parse returned last and a copy of the bytes
// it was parsed from (one copy: the cache keeps none).
type lastProgram struct {
	raw []byte
	pp  *parsedProgram
}

func usesLLM(steps []kernel.Step) bool {
	for i := range steps {
		if steps[i].Type == kernel.StepLLM || usesLLM(steps[i].ParallelSteps) {
			return true
		}
	}
	return false
}

// RunProgram validates and runs a program. A program that fails is a
// result with status "failed", not an error; errors are *Error for what the
// caller can fix, or infrastructure failures. When ctx is cancelled the run
// stops after its current step and is left resumable (ResumeInterrupted, or
// the same idempotency key, continues it).
func (rt *Runtime) RunProgram(ctx context.Context, req RunRequest) (*RunResult, error) {
	if req.Input == nil {
		req.Input = map[string]any{}
	}
	l, err := rt.load(ctx, req)
	if err != nil {
		return nil, err
	}
	// l.warnings is shared with the parse cache: Clip makes the append
	// copy it.
	warnings := slices.Clip(l.warnings)
	for _, w := range l.prog.RefWarnings(req.Input) {
		warnings = append(warnings, w.String())
	}
	if req.Strict && len(warnings) > 0 {
		e := newError(CodeInvalidProgram, nil, "strict: the program has %d warning(s), so nothing ran: %s",
			len(warnings), jsonlimit.Excerpt(strings.Join(warnings, "; "), 0))
		e.Details = map[string]any{"warnings": warnings}
		return nil, e
	}
	l.warnings = warnings
	if req.SaveAs != "" {
		if _, err := rt.store.PutProgram(ctx, store.Program{ID: req.SaveAs, Name: l.prog.Name, Hash: l.hash, Program: l.raw}); err != nil {
			return nil, fmt.Errorf("save program %q: %w", req.SaveAs, err)
		}
		l.id = req.SaveAs
	}
	if err := jsonlimit.CheckValue(req.Input); err != nil {
		return nil, newError(CodeInvalidArgument, err, "input: %v", err)
	}
	// Encoded in a pooled buffer and copied out at its size: Marshal
	// would grow a buffer from nothing, one copy per doubling.
	input, err := encodePooled(func(b []byte) ([]byte, error) { return canonical.Append(b, req.Input) })
	if err != nil {
		return nil, newError(CodeInvalidArgument, err, "input: %v", jsonlimit.Excerpt(err.Error(), 0))
	}
	if err := jsonlimit.CheckSize("input", len(input), jsonlimit.MaxInputBytes); err != nil {
		return nil, newError(CodeInvalidArgument, err, "%v", err)
	}
	if req.IdempotencyKey == "" {
		res, err := rt.start(ctx, l, req.Input, input, "", rt.ids.NewID(), req.Progress)
		if res != nil {
			res.Warnings = l.warnings
		}
		return res, err
	}
	reqHash, _ := canonical.Hash(map[string]any{"program_hash": l.hash, "input": json.RawMessage(input)})
	return rt.idempotent(ctx, req, l, input, reqHash)
}

// idempotent runs a request under its key: at most once per key, a repeat
// gets the stored outcome, a concurrent duplicate waits for the first, and
// a run interrupted by a crash is continued from its last durable step.
func (rt *Runtime) idempotent(ctx context.Context, req RunRequest, l *loaded, input []byte, reqHash string) (*RunResult, error) {
	key := req.IdempotencyKey
	for {
		rt.mu.Lock()
		if f, ok := rt.flights[key]; ok {
			rt.mu.Unlock()
			if f.requestHash != reqHash {
				return nil, conflict(key)
			}
			select {
			case <-f.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if f.err != nil {
				// The first caller was interrupted; try again, which
				// continues its run.
				continue
			}
			res := *f.res
			res.StoredOutcome = true
			return &res, nil
		}
		f := &flight{requestHash: reqHash, done: make(chan struct{})}
		rt.flights[key] = f
		rt.mu.Unlock()

		f.res, f.err = rt.claimAndRun(ctx, req, l, input, reqHash)
		if f.res != nil {
			f.res.Warnings = l.warnings
		}
		rt.mu.Lock()
		delete(rt.flights, key)
		rt.mu.Unlock()
		close(f.done)
		return f.res, f.err
	}
}

func conflict(key string) *Error {
	return newError(CodeIdempotencyConflict, store.ErrIdempotencyConflict, "idempotency key %q was used with a different program or input", key)
}

func (rt *Runtime) claimAndRun(ctx context.Context, req RunRequest, l *loaded, input []byte, reqHash string) (*RunResult, error) {
	key := req.IdempotencyKey
	traceID := rt.ids.NewID()
	rec, claimed, err := rt.store.ClaimIdempotencyKey(ctx, key, reqHash, traceID, rt.cfg.IdempotencyTTL)
	if errors.Is(err, store.ErrIdempotencyConflict) {
		return nil, conflict(key)
	}
	if err != nil {
		return nil, claimError(key, err)
	}
	if claimed {
		res, err := rt.start(ctx, l, req.Input, input, key, traceID, req.Progress)
		if errors.Is(err, store.ErrLeaseHeld) {
			// Another replica, sent the same key at once, leased the
			// run first: wait for its outcome.
			return rt.awaitOther(ctx, req, l, input, traceID)
		}
		return res, err
	}
	if rt.replica != nil {
		// On a shared database the run may be in progress on another
		// replica: its lease says so, and this caller waits for it.
		return rt.awaitOther(ctx, req, l, input, rec.TraceID)
	}
	exec, err := rt.store.Run(ctx, rec.TraceID)
	if errors.Is(err, store.ErrNotFound) {
		// Claimed by a process that crashed before storing the run:
		// nothing ran, so run it now under the recorded id.
		return rt.start(ctx, l, req.Input, input, key, rec.TraceID, req.Progress)
	}
	if errors.Is(err, store.ErrCorrupt) {
		return nil, undecodable(rec.TraceID, "its run record", err)
	}
	if err != nil {
		return nil, err
	}
	if exec.Status == kernel.StatusRunning {
		// Interrupted (a crash, a cancelled request): continue it.
		return rt.continueRun(ctx, exec, req.Progress)
	}
	res, err := rt.result(ctx, exec)
	if err != nil {
		return nil, err
	}
	res.StoredOutcome = true
	return res, nil
}

// start records a new run and runs it.
func (rt *Runtime) start(ctx context.Context, l *loaded, inputMap map[string]any, input []byte, key, traceID string, progress func(Progress)) (*RunResult, error) {
	exec := store.Run{
		ID: traceID, ProgramID: l.id, ProgramHash: l.hash, ProgramName: l.prog.Name,
		Status: kernel.StatusRunning, PolicyHash: rt.policy.Hash(), IdempotencyKey: key,
		Input: input, Program: l.raw,
	}
	// The lease (on a shared database) comes before the record, so that
	// no other replica takes a run over that is starting here.
	if !rt.enter(traceID) {
		return nil, fmt.Errorf("run %s is already running", traceID)
	}
	defer rt.leave(traceID)
	// The run's start and initial state hash are known before its first
	// record, which therefore holds the header the first step would
	// otherwise rewrite it for (see persister.StepFinished).
	prep, err := kernel.Prepare(l.prog, inputMap, traceID, rt.clock.Now())
	if err != nil {
		return nil, err
	}
	exec.Header = lightHeader(prep.Header(), kernel.StatusRunning)
	obs := rt.observer(exec, l.prog, progress)
	exec, lease, stored, err := rt.record(ctx, exec)
	if err != nil {
		return nil, err
	}
	obs.recorded(exec, stored)
	obs.lease = lease
	obs.trace = rt.traceRun(ctx, exec, "start")
	tr, runErr := rt.machineFor(obs).StartPrepared(ctx, &prep)
	return rt.settle(exec, tr, runErr, obs)
}

// continueRun continues an interrupted run from the store.
func (rt *Runtime) continueRun(ctx context.Context, exec store.Run, progress func(Progress)) (*RunResult, error) {
	prog, input, tr, err := rt.restore(ctx, exec)
	if err != nil {
		return nil, err
	}
	if !rt.enter(exec.ID) {
		return nil, newError(CodeInvalidArgument, nil, "run %s is running in this process", exec.ID)
	}
	defer rt.leave(exec.ID)
	lease, err := rt.lease(ctx, exec.ID)
	if err != nil {
		return nil, err
	}
	if lease != nil {
		// Read again under the lease: the replica that held it may have
		// committed more steps, or ended the run, before it let go.
		if exec, err = rt.store.Run(ctx, exec.ID); err != nil {
			return nil, err
		}
		if exec.Status != kernel.StatusRunning {
			// It ended on the other replica: its outcome is stored.
			res, err := rt.result(ctx, exec)
			if err == nil {
				res.StoredOutcome = true
			}
			return res, err
		}
		if prog, input, tr, err = rt.restore(ctx, exec); err != nil {
			return nil, err
		}
	}
	obs := rt.observer(exec, prog, progress)
	obs.lease = lease
	obs.done = len(tr.Steps)
	obs.trace = rt.traceRun(ctx, exec, "continue")
	out, runErr := rt.machineFor(obs).Continue(ctx, prog, input, tr)
	if errors.Is(runErr, kernel.ErrFinished) {
		runErr = nil
	}
	return rt.settle(exec, out, runErr, obs)
}

// Resume continues a suspended run with an event.
func (rt *Runtime) Resume(ctx context.Context, traceID string, payload any, source string, progress func(Progress)) (*RunResult, error) {
	exec, err := rt.loadRun(ctx, traceID)
	if err != nil {
		return nil, err
	}
	if exec.Status != kernel.StatusSuspended {
		return nil, newError(CodeNotSuspended, kernel.ErrNotSuspended, "run %s is %s, not suspended", traceID, exec.Status)
	}
	if err := checkPayload(payload); err != nil {
		return nil, err
	}
	prog, input, tr, err := rt.restore(ctx, exec)
	if err != nil {
		return nil, err
	}
	if !rt.enter(exec.ID) {
		return nil, newError(CodeNotSuspended, nil, "run %s is being resumed already", traceID)
	}
	defer rt.leave(exec.ID)
	lease, err := rt.lease(ctx, exec.ID)
	if errors.Is(err, store.ErrLeaseHeld) {
		return nil, newError(CodeNotSuspended, err, "execution %s is being resumed already, on another replica", traceID)
	}
	if err != nil {
		return nil, err
	}
	if lease != nil {
		// Another replica may have resumed it just before.
		if exec, err = rt.store.Run(ctx, exec.ID); err != nil {
			return nil, err
		}
		if exec.Status != kernel.StatusSuspended {
			return nil, newError(CodeNotSuspended, kernel.ErrNotSuspended, "execution %s is %s, not suspended", traceID, exec.Status)
		}
		if prog, input, tr, err = rt.restore(ctx, exec); err != nil {
			return nil, err
		}
	}
	obs := rt.observer(exec, prog, progress)
	obs.lease = lease
	obs.done = len(tr.Steps)
	obs.trace = rt.traceRun(ctx, exec, "resume")
	out, runErr := rt.machineFor(obs).Resume(ctx, prog, input, tr, kernel.ResumeEvent{TraceID: traceID, Payload: payload, Source: kernel.ResumeSource(source)})
	if errors.Is(runErr, kernel.ErrNotSuspended) {
		obs.trace.abandon(runErr)
		return nil, newError(CodeNotSuspended, runErr, "%v", runErr)
	}
	if runErr != nil && out != nil && len(out.Steps) == len(tr.Steps) {
		// Refused before anything happened (a bad source, say).
		obs.trace.abandon(runErr)
		return nil, newError(CodeInvalidArgument, runErr, "%v", runErr)
	}
	return rt.settle(exec, out, runErr, obs)
}

// checkPayload applies the limits on accepted data to a resume payload.
func checkPayload(payload any) error {
	if err := jsonlimit.CheckValue(payload); err != nil {
		return newError(CodeInvalidArgument, err, "payload: %v", err)
	}
	b, err := json.Marshal(payload)
	if err != nil {
		return newError(CodeInvalidArgument, err, "payload: %v", jsonlimit.Excerpt(err.Error(), 0))
	}
	if err := jsonlimit.CheckSize("payload", len(b), jsonlimit.MaxInputBytes); err != nil {
		return newError(CodeInvalidArgument, err, "%v", err)
	}
	return nil
}

// ContinueInterrupted continues a run a crash or a cancellation
// left running.
func (rt *Runtime) ContinueInterrupted(ctx context.Context, traceID string, progress func(Progress)) (*RunResult, error) {
	exec, err := rt.loadRun(ctx, traceID)
	if err != nil {
		return nil, err
	}
	if exec.Status != kernel.StatusRunning {
		return nil, newError(CodeInvalidArgument, nil, "run %s is %s, not interrupted", traceID, exec.Status)
	}
	return rt.continueRun(ctx, exec, progress)
}

func (rt *Runtime) enter(id string) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.active[id] || rt.closed {
		return false
	}
	rt.active[id] = true
	rt.wg.Add(1)
	return true
}

func (rt *Runtime) leave(id string) {
	// Whatever the run's state, its lease goes: a run left running (its
	// context cancelled) is then any replica's to continue.
	rt.unlease(id)
	rt.mu.Lock()
	delete(rt.active, id)
	rt.mu.Unlock()
	rt.wg.Done()
}

// machineFor returns a machine that reports to obs. When obs traces the
// run, its tool and llm calls are wrapped in spans; otherwise nothing is.
func (rt *Runtime) machineFor(obs *persister) *kernel.Machine {
	tools, llm := rt.machineTools(), rt.cfg.LLM
	if obs.trace != nil {
		tools = &tracedTools{inner: tools, t: obs.trace}
		if llm != nil {
			provider, model := splitModel(rt.cfg.LLMModel)
			llm = &tracedLLM{inner: llm, t: obs.trace, provider: provider, model: model}
		}
	}
	return kernel.NewMachine(&kernel.Options{
		Tools: tools, LLM: llm, Clock: rt.clock, IDs: rt.ids, Observer: obs, Refs: rt.vault,
	})
}

func (rt *Runtime) machineTools() kernel.ToolExecutor { return rt.executor }

// settle records how a run ended and builds its result. An interrupted run
// (runErr set) stays "running" in the store, resumable.
func (rt *Runtime) settle(exec store.Run, tr *kernel.Trace, runErr error, obs *persister) (res *RunResult, err error) {
	defer func() { rt.finishRun(obs.trace, res, err) }()
	if tr == nil {
		return nil, runErr
	}
	// Nothing is reported before every step the run committed is durable.
	if err := obs.flush(); err != nil && runErr == nil {
		runErr = err
	}
	obs.release()
	// The run's context may be done; the final write must still happen,
	// so it is not made under that context.
	ctx := context.Background()
	if unstorable(runErr) {
		// Running the step again would give the same record, which again
		// could not be stored: the run ends failed, not resumable.
		tr.Status = kernel.StatusFailed
		tr.Error = jsonlimit.Excerpt("the step's outcome cannot be stored, so the run ends here: "+runErr.Error(), maxStoredError)
		tr.FinalOutput = nil
		tr.Steps = tr.Steps[:min(obs.done, len(tr.Steps))]
		runErr = nil
		obs.ended = ""
	}
	if runErr == nil {
		exec.Status = tr.Status
		// Usually the last step's commit recorded the end already; a run
		// that ends without a record (a budget, say) is recorded here.
		put := obs.ended == "" || obs.ended != tr.Status
		if put {
			exec.Header = headerJSON(tr)
		}
		if err := rt.recordEnd(ctx, exec, put, obs.lease); err != nil {
			return nil, err
		}
	}
	res = rt.summarise(exec, tr)
	if runErr != nil {
		// Only what is durable counts: a run continues from there.
		res.Steps = obs.done
		return res, fmt.Errorf("run %s interrupted after %d step(s), resumable: %w", exec.ID, obs.done, runErr)
	}
	return res, nil
}

func (rt *Runtime) summarise(exec store.Run, tr *kernel.Trace) *RunResult {
	return &RunResult{
		TraceID:         tr.TraceID,
		ProgramID:       exec.ProgramID,
		ProgramName:     tr.ProgramName,
		Status:          tr.Status,
		Steps:           len(tr.Steps),
		Cost:            tr.Usage.CostUSD,
		FinalOutput:     traceProjection(tr.FinalOutput, rt.vault),
		Error:           tr.Error,
		SuspendedStepID: tr.SuspendedStepID,
	}
}

// traceProjection is v's Trace projection: v itself when that changes
// nothing (projection.TraceUnchanged), so a result does not copy its
// output to find there is nothing to replace.
func traceProjection(v any, refs projection.Refs) any {
	if projection.TraceUnchanged(v) {
		return v
	}
	return projection.Project(v, projection.Trace, projection.Options{Refs: refs})
}

// result rebuilds a finished run's summary from the store.
func (rt *Runtime) result(ctx context.Context, exec store.Run) (*RunResult, error) {
	_, _, tr, err := rt.restore(ctx, exec)
	if err != nil {
		return nil, err
	}
	var hdr kernel.Trace
	if len(exec.Header) > 0 {
		if err := json.Unmarshal(exec.Header, &hdr); err == nil && hdr.Status != "" {
			tr.Status, tr.Error = hdr.Status, hdr.Error
		}
	}
	return rt.summarise(exec, tr), nil
}

func (rt *Runtime) loadRun(ctx context.Context, id string) (store.Run, error) {
	exec, err := rt.store.Run(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return exec, newError(CodeNotFound, err, "no trace %q", id)
	}
	if errors.Is(err, store.ErrCorrupt) {
		return exec, undecodable(id, "its run record", err)
	}
	return exec, err
}

// restore loads a run's program, input and recorded trace, and
// checks the trace against them by folding it in a kernel run that is
// then discarded; the returned trace is the stored one, verified.
func (rt *Runtime) restore(ctx context.Context, exec store.Run) (*kernel.Program, map[string]any, *kernel.Trace, error) {
	steps, err := rt.store.Steps(ctx, exec.ID, 0, 0)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("run %s: steps: %w", exec.ID, err)
	}
	return rt.restoreSteps(exec, steps)
}

// headerJSON encodes a trace without its steps and snapshots, which the
// step records carry. A final output that cannot be encoded is left out
// rather than losing the header.
func headerJSON(tr *kernel.Trace) json.RawMessage {
	h := *tr
	h.Steps, h.StateSnapshots = nil, nil
	b, err := appendHeader(&h)
	if err != nil {
		h.FinalOutput = nil
		if b, err = appendHeader(&h); err != nil {
			return nil
		}
	}
	return b
}

// headerBufs keeps the buffers headers are encoded in: a header is then
// copied out at its size, instead of growing from nothing.
var headerBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// appendHeader is kernel.AppendTrace(nil, tr), encoded in a pooled buffer
// and returned as a copy of exactly its size.
func appendHeader(tr *kernel.Trace) (json.RawMessage, error) {
	return encodePooled(func(b []byte) ([]byte, error) { return kernel.AppendTrace(b, tr) })
}

// encodePooled runs appendTo on an empty buffer from headerBufs and
// returns a copy of exactly the size of what it appended (nil with its
// error), keeping the buffer for the next caller unless it grew past
// maxPooledBuf.
func encodePooled(appendTo func([]byte) ([]byte, error)) (json.RawMessage, error) {
	bp := headerBufs.Get().(*[]byte)
	b, err := appendTo((*bp)[:0])
	var out json.RawMessage
	if err == nil {
		out = bytes.Clone(b)
	}
	if cap(b) <= maxPooledBuf {
		*bp = b[:0]
		headerBufs.Put(bp)
	}
	return out, err
}

// maxStoredError bounds the error text a run's header records when the
// runtime itself ends the run.
const maxStoredError = 4000

// unstorableError marks a step whose record or envelope cannot be encoded
// (a value no canonical form holds): running the step again would fail the
// same way, so settle ends the run failed instead of leaving it running
// and resumable forever.
type unstorableError struct{ err error }

func (e *unstorableError) Error() string { return e.err.Error() }

func (e *unstorableError) Unwrap() error { return e.err }

// unstorable reports whether err says a value of the run has no canonical
// form: marked by the persister, or a canonical error from the kernel's
// state hashing. Either would recur on every resumption.
func unstorable(err error) bool {
	if err == nil {
		return false
	}
	var u *unstorableError
	if errors.As(err, &u) {
		return true
	}
	for _, e := range []error{canonical.ErrDepth, canonical.ErrNumber, canonical.ErrUTF8, canonical.ErrDuplicateKey, canonical.ErrSyntax} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// maxCachedPrograms bounds Runtime.programs.
const maxCachedPrograms = 1024

// program returns a run's validated program, from the cache when
// the same program (by canonical hash) was validated before.
func (rt *Runtime) program(exec store.Run) (*kernel.Program, error) {
	if exec.ProgramHash != "" {
		if p, ok := rt.programs.Load(exec.ProgramHash); ok {
			return p.(*kernel.Program), nil
		}
	}
	prog, _, err := kernel.LoadProgram(exec.Program)
	if err != nil {
		return nil, fmt.Errorf("run %s: stored program: %w", exec.ID, err)
	}
	// A stored run is clamped to today's ceiling, never refused: it must
	// stay resumable and replayable.
	prog.CapSteps(rt.cfg.MaxStepsPerRun)
	if exec.ProgramHash != "" {
		// Bound the cache: many distinct programs start it over.
		if rt.cachedPrograms.Add(1) > maxCachedPrograms {
			rt.programs.Clear()
			rt.cachedPrograms.Store(1)
		}
		rt.programs.Store(exec.ProgramHash, prog)
	}
	return prog, nil
}
