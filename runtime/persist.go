package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/nanovm/nano-vm-mcp/internal/canonical"
	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/kernel/projection"
	"github.com/nanovm/nano-vm-mcp/store"
)

// persister is the kernel observer that makes every step durable: one
// store transaction per step writes the step record, the run's
// status when it changes, and its envelope. By
// default each step is durable before the next one starts.
//
// With Config.PipelinePureSteps, commits are pipelined. A step's commit is
// started when the step finishes, and the run goes on while it is made
// durable; the store applies a run's commits in order and refuses one whose
// predecessor is missing, so what is durable is always a prefix of the run.
// Before a step that can act outside the sandbox (an llm step, a tool
// granted the network or the host's files) starts, every earlier commit
// must be durable, and the run's result is given only once all are: a
// crash can only lose steps that changed nothing outside and that the
// continued run computes again. See RATIONALE.md "Why are step commits
// pipelined, and why only when asked?".
type persister struct {
	rt       *Runtime
	prog     *kernel.Program
	exec     store.Run
	progress func(Progress)
	total    int
	// done counts the run's durable records.
	done int
	// pending are the commits started and not yet found durable, in order.
	pending []pendingStep
	// failed is the first commit that failed; the run stops at its next
	// step boundary.
	failed error
	// ended is the run's status when the last commit already recorded how
	// the run ended (terminal or suspended) with the full header: settle
	// then has nothing left to write.
	ended kernel.Status
	// written is set once this run has rewritten the run record.
	written bool
	// outside caches actsOutside by step id.
	outside map[string]bool
	// pipeline is Config.PipelinePureSteps.
	pipeline bool
	// lease fences every commit on a shared database (nil on a bbolt
	// file): a replica that lost it commits nothing more.
	lease *store.Lease
	// inputSHA256 and programSHA256 hash the execution's stored input and
	// program, for the first step's envelope.
	inputSHA256, programSHA256 string
	// trace holds the run's spans; nil when tracing is off.
	trace *runTrace
}

type pendingStep struct {
	commit *store.PendingCommit
	index  int
	stepID string
	status kernel.StepStatus
}

func (rt *Runtime) observer(exec store.Run, prog *kernel.Program, progress func(Progress)) *persister {
	// The program and input were stored when the run started; a step
	// commit leaves them as they are instead of rewriting them each time.
	p := &persister{rt: rt, prog: prog, progress: progress, total: len(prog.Steps), outside: map[string]bool{}, pipeline: rt.cfg.PipelinePureSteps}
	if len(exec.Input) > 0 {
		p.inputSHA256 = store.RecordSHA256(exec.Input)
	}
	if len(exec.Program) > 0 {
		p.programSHA256 = store.RecordSHA256(exec.Program)
	}
	exec.Input, exec.Program = nil, nil
	p.exec = exec
	return p
}

// StepStarted waits for every earlier commit before a step that can act
// outside the sandbox, and stops the run if an earlier commit failed.
func (p *persister) StepStarted(ctx context.Context, ev kernel.StepEvent) error {
	if err := p.reap(p.actsOutside(ctx, ev.Record.StepID)); err != nil {
		return err
	}
	// The run may have been cancelled while it waited.
	if err := ctx.Err(); err != nil {
		return err
	}
	p.trace.startStep(ev.Record)
	return nil
}

func (p *persister) StepFinished(ctx context.Context, ev kernel.StepEvent) error {
	if err := p.reap(false); err != nil {
		return err
	}
	rec := ev.Record
	p.rt.observeStep(rec)
	p.trace.endStep(rec)
	data, err := json.Marshal(rec)
	if err != nil {
		return &unstorableError{fmt.Errorf("encode step %d: %w", rec.Index, err)}
	}
	// The run record is rewritten by the first commit of this run
	// (its header carries the run's start and initial state hash) and by
	// any step that changes the run's status; the steps between change
	// nothing a reader takes from it (restore tallies a running trace's
	// metrics from its steps), so they leave it alone.
	keep := p.written && ev.Status == kernel.StatusRunning
	if !keep {
		p.exec.Status = ev.Status
		if ev.Status == kernel.StatusRunning {
			p.exec.Header = lightHeader(ev.Trace, ev.Status)
		} else {
			// The run ends (or suspends) with this step: record the
			// whole header now, in the same transaction as the step.
			p.exec.Header = headerJSON(ev.Trace)
		}
	}
	// Every step record gets an envelope, failed and skipped ones too:
	// the envelope commits to the record's bytes (the store adds their
	// hash), so everything a trace shows is covered.
	payload, err := envelopePayload(rec, p.rt.vault)
	if err != nil {
		return &unstorableError{fmt.Errorf("envelope of step %d: %w", rec.Index, err)}
	}
	env := &store.Envelope{
		Kind: store.EnvelopeKindStep, TraceID: p.exec.ID, StepIndex: rec.Index, StepID: rec.StepID,
		PolicyHash: p.exec.PolicyHash, StateHash: rec.StateHash, Payload: payload,
	}
	if rec.Tool != nil {
		env.ModuleSHA256, env.ManifestSHA256 = rec.Tool.ModuleSHA256, rec.Tool.ManifestSHA256
	}
	if rec.Index == 0 {
		// The run's first envelope commits to the input and program it
		// runs with, as stored.
		env.InputSHA256, env.ProgramSHA256 = p.inputSHA256, p.programSHA256
	}
	// A step that ran must be recorded even if the caller gave up waiting:
	// commit outside the run's cancellation.
	pc := p.rt.store.StartCommitStep(context.WithoutCancel(ctx), store.StepCommit{Run: p.exec, KeepRun: keep, Index: rec.Index, Step: data, Envelope: env, Lease: p.lease})
	p.pending = append(p.pending, pendingStep{commit: pc, index: rec.Index, stepID: rec.StepID, status: rec.Status})
	p.written = true
	p.ended = ""
	if ev.Status != kernel.StatusRunning {
		p.ended = ev.Status
	}
	// Unpipelined, the step is durable before the kernel goes on.
	return p.reap(!p.pipeline)
}

// flush waits until every commit started is durable or has failed.
func (p *persister) flush() error { return p.reap(true) }

// reap reports the commits found durable, in order, as progress; with wait
// it waits for all of them. It returns the first commit that failed.
func (p *persister) reap(wait bool) error {
	for p.failed == nil && len(p.pending) > 0 {
		ps := p.pending[0]
		if !wait {
			select {
			case <-ps.commit.Done():
			default:
				return nil
			}
		}
		if _, err := ps.commit.Wait(); err != nil {
			p.failed = fmt.Errorf("commit step %d: %w", ps.index, err)
			break
		}
		p.pending = p.pending[1:]
		p.done++
		if p.progress != nil {
			p.progress(Progress{TraceID: p.exec.ID, Index: ps.index, StepID: ps.stepID, Status: ps.status, Done: p.done, Total: p.total})
		}
	}
	if p.failed != nil && wait {
		// The commits behind a failed one fail too (the store refuses a
		// gap); let them finish before the run's outcome is settled.
		for _, ps := range p.pending {
			_, _ = ps.commit.Wait()
		}
		p.pending = nil
	}
	return p.failed
}

// actsOutside reports whether the step with this id can act outside the
// sandbox, so that everything before it must be durable first.
func (p *persister) actsOutside(ctx context.Context, stepID string) bool {
	if !p.pipeline {
		return true
	}
	if v, ok := p.outside[stepID]; ok {
		return v
	}
	step := p.prog.StepByID(stepID)
	v := step == nil || p.rt.stepActsOutside(ctx, step)
	p.outside[stepID] = v
	return v
}

// stepActsOutside reports whether running step can change anything outside
// the sandbox. An llm call reaches a provider (and costs money); a tool
// does when it holds the network or the host's files; a condition never.
// Whatever cannot be told (an unknown tool, a new step type) counts as
// acting outside.
func (rt *Runtime) stepActsOutside(ctx context.Context, step *kernel.Step) bool {
	switch step.Type {
	case kernel.StepCondition:
		return false
	case kernel.StepTool:
		t, err := rt.registry.Resolve(ctx, step.Tool)
		return err != nil || t.ActsOutside()
	case kernel.StepParallel:
		for i := range step.ParallelSteps {
			if rt.stepActsOutside(ctx, &step.ParallelSteps[i]) {
				return true
			}
		}
		return false
	default:
		return true
	}
}

// envelopePayload is the TRACE projection of a step's output, with the
// provenance of a parallel step's sub-step tools (an envelope has room for
// one module hash; a parallel step may run several).
func envelopePayload(rec *kernel.StepRecord, refs projection.Refs) (json.RawMessage, error) {
	p := map[string]any{"output": projection.Project(rec.Output, projection.Trace, projection.Options{Refs: refs})}
	if rec.Status != kernel.StepSuccess {
		p["status"] = string(rec.Status)
	}
	if rec.Kind == kernel.KindResume {
		p["resumed_by"] = rec.Source
	}
	toolTrust(p, rec.Tool)
	if len(rec.SubSteps) > 0 {
		subs := make(map[string]any, len(rec.SubSteps))
		for _, s := range rec.SubSteps {
			e := map[string]any{"status": string(s.Status)}
			if s.Tool != nil {
				e["module_sha256"], e["manifest_sha256"] = s.Tool.ModuleSHA256, s.Tool.ManifestSHA256
			}
			toolTrust(e, s.Tool)
			subs[s.StepID] = e
		}
		p["sub_steps"] = subs
	}
	return canonical.Marshal(p)
}

// toolTrust adds to an envelope payload who registered the tool that ran
// ("tool_source") and who granted each capability it held ("tool_grants"),
// so the audit chain itself tells an operator's decision from an upload's.
func toolTrust(p map[string]any, t *kernel.ToolProvenance) {
	if t == nil || t.Source == "" {
		return
	}
	p["tool_source"] = t.Source
	grants := make(map[string]any, len(t.Grants))
	for c, a := range t.Grants {
		grants[c] = a
	}
	p["tool_grants"] = grants
	// Added only when set, so an envelope of a file or byte upload tool
	// hashes as before.
	if t.Origin != "" {
		p["tool_origin"] = t.Origin
	}
	if t.Signer != "" {
		p["tool_signer"] = t.Signer
	}
}

// lightHeader is the per-step trace header: small and constant-size, so a
// long run does not rewrite a growing header at every step. The full header
// is written when the run settles.
func lightHeader(tr *kernel.Trace, status kernel.Status) json.RawMessage {
	h := kernel.Trace{
		TraceID: tr.TraceID, ProgramName: tr.ProgramName, Status: status,
		InitialStateHash: tr.InitialStateHash, SuspendedStepID: tr.SuspendedStepID,
		StartedAt: tr.StartedAt, StepMetrics: tr.StepMetrics, Usage: tr.Usage, Error: tr.Error,
	}
	b, _ := json.Marshal(&h)
	return b
}

func replaceAll(s, old, new string) string {
	if old == "" {
		return s
	}
	return strings.ReplaceAll(s, old, new)
}
