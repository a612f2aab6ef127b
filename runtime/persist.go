package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/kernel/canonical"
	"github.com/nanovm/nano-vm-mcp/kernel/projection"
	"github.com/nanovm/nano-vm-mcp/store"
)

// persister is the kernel observer that makes every step durable before the
// next one starts: one store transaction per step writes the step record,
// the execution's status, and (for a successful step) its envelope.
type persister struct {
	rt       *Runtime
	exec     store.Execution
	progress func(Progress)
	total    int
	done     int
	// ended is the run's status when the last commit already recorded how
	// the run ended (terminal or suspended) with the full header: settle
	// then has nothing left to write.
	ended kernel.Status
	// written is set once this run has rewritten the execution record.
	written bool
}

func (rt *Runtime) observer(exec store.Execution, prog *kernel.Program, progress func(Progress)) *persister {
	// The program and input were stored when the execution started; a step
	// commit leaves them as they are instead of rewriting them each time.
	exec.Input, exec.Program, exec.Checkpoint = nil, nil, nil
	return &persister{rt: rt, exec: exec, progress: progress, total: len(prog.Steps)}
}

func (p *persister) StepStarted(context.Context, kernel.StepEvent) {}

func (p *persister) StepFinished(ctx context.Context, ev kernel.StepEvent) error {
	rec := ev.Record
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode step %d: %w", rec.Index, err)
	}
	// The execution record is rewritten by the first commit of this run
	// (its header carries the run's start and initial state hash) and by
	// any step that changes the run's status; the steps between change
	// nothing a reader takes from it (restore tallies a running trace's
	// metrics from its steps), so they leave it alone.
	keep := p.written && ev.Status == kernel.StatusRunning
	if !keep {
		p.exec.Status = string(ev.Status)
		if ev.Status == kernel.StatusRunning {
			p.exec.Header = lightHeader(ev.Trace, ev.Status)
		} else {
			// The run ends (or suspends) with this step: record the
			// whole header now, in the same transaction as the step.
			p.exec.Header = headerJSON(ev.Trace)
		}
	}
	var env *store.Envelope
	if rec.Status == kernel.StepSuccess {
		payload, err := envelopePayload(rec, p.rt.vault)
		if err != nil {
			return fmt.Errorf("envelope of step %d: %w", rec.Index, err)
		}
		env = &store.Envelope{
			Kind: store.EnvelopeKindStep, ExecutionID: p.exec.ID, StepIndex: rec.Index, StepID: rec.StepID,
			PolicyHash: p.exec.PolicyHash, StateHash: rec.StateHash, Payload: payload,
		}
		if rec.Tool != nil {
			env.ModuleSHA256, env.ManifestSHA256 = rec.Tool.ModuleSHA256, rec.Tool.ManifestSHA256
		}
	}
	// A step that ran must be recorded even if the caller gave up waiting:
	// commit outside the run's cancellation.
	if _, err := p.rt.store.CommitStep(context.WithoutCancel(ctx), store.StepCommit{Execution: p.exec, KeepExecution: keep, Index: rec.Index, Step: data, Envelope: env}); err != nil {
		return fmt.Errorf("commit step %d: %w", rec.Index, err)
	}
	p.written = true
	p.ended = ""
	if ev.Status != kernel.StatusRunning {
		p.ended = ev.Status
	}
	p.done++
	if p.progress != nil {
		p.progress(Progress{TraceID: p.exec.ID, Index: rec.Index, StepID: rec.StepID, Status: string(rec.Status), Done: p.done, Total: p.total})
	}
	return nil
}

// envelopePayload is the TRACE projection of a step's output, with the
// provenance of a parallel step's sub-step tools (an envelope has room for
// one module hash; a parallel step may run several).
func envelopePayload(rec *kernel.StepRecord, refs projection.Refs) (json.RawMessage, error) {
	p := map[string]any{"output": projection.Project(rec.Output, projection.Trace, projection.Options{Refs: refs})}
	if rec.Kind == kernel.KindResume {
		p["resumed_by"] = rec.Source
	}
	if len(rec.SubSteps) > 0 {
		subs := make(map[string]any, len(rec.SubSteps))
		for _, s := range rec.SubSteps {
			e := map[string]any{"status": string(s.Status)}
			if s.Tool != nil {
				e["module_sha256"], e["manifest_sha256"] = s.Tool.ModuleSHA256, s.Tool.ManifestSHA256
			}
			subs[s.StepID] = e
		}
		p["sub_steps"] = subs
	}
	return canonical.Marshal(p)
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
