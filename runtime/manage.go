package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/nanovm/nano-vm-mcp/internal/canonical"
	"github.com/nanovm/nano-vm-mcp/internal/jsonlimit"
	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/kernel/projection"
	"github.com/nanovm/nano-vm-mcp/store"
	"github.com/nanovm/nano-vm-mcp/tools"
)

// RegisterTool registers a tool uploaded by a client (source "upload"):
// refused when the operator disabled uploads. What it may have is the
// policy's uploads grant, never what the operator gave a tool of the same
// name; it may not replace a bundled or operator tool unless the policy
// allows uploads for that name.
func (rt *Runtime) RegisterTool(ctx context.Context, manifest, wasm []byte) (store.ToolRecord, error) {
	if rt.cfg.DisableToolUpload {
		rt.metrics.RegistrationRefused(string(store.SourceUpload))
		return store.ToolRecord{}, newError(CodeUploadDisabled, nil, "the operator disabled tool upload; add tools to the tools folder instead")
	}
	return rt.registerTool(ctx, store.SourceUpload, manifest, wasm)
}

// RegisterToolLocal registers a tool on the operator's behalf (the CLI;
// source "operator"): allowed even when client uploads are disabled.
func (rt *Runtime) RegisterToolLocal(ctx context.Context, manifest, wasm []byte) (store.ToolRecord, error) {
	return rt.registerTool(ctx, store.SourceOperator, manifest, wasm)
}

func (rt *Runtime) registerTool(ctx context.Context, src store.ToolSource, manifest, wasm []byte) (store.ToolRecord, error) {
	recs, err := rt.registerTools(ctx, src, manifest, wasm)
	if err != nil {
		return store.ToolRecord{}, err
	}
	return recs[0], nil
}

// RegisterTools is RegisterTool returning every record it made: one for a
// module of our ABI or a WASI command, one per described tool for an
// Extism plugin (all sharing the module), in the plugin's order.
// RegisterTool returns the first of them.
func (rt *Runtime) RegisterTools(ctx context.Context, manifest, wasm []byte) ([]store.ToolRecord, error) {
	if rt.cfg.DisableToolUpload {
		rt.metrics.RegistrationRefused(string(store.SourceUpload))
		return nil, newError(CodeUploadDisabled, nil, "the operator disabled tool upload; add tools to the tools folder instead")
	}
	return rt.registerTools(ctx, store.SourceUpload, manifest, wasm)
}

func (rt *Runtime) registerTools(ctx context.Context, src store.ToolSource, manifest, wasm []byte) ([]store.ToolRecord, error) {
	return rt.registerToolsFrom(ctx, src, nil, manifest, wasm)
}

// registerToolsFrom is registerTools for a module whose provenance (an
// OCI artifact and its verified signer) the records keep.
func (rt *Runtime) registerToolsFrom(ctx context.Context, src store.ToolSource, prov *store.ToolProvenance, manifest, wasm []byte) ([]store.ToolRecord, error) {
	m, err := tools.ParseManifest(manifest)
	if err != nil {
		rt.metrics.RegistrationRefused(string(src))
		return nil, newError(CodeToolRejected, err, "%v", err)
	}
	var recs []store.ToolRecord
	if rt.registry.IsPlugin(wasm) {
		// An Extism plugin registers one tool per tool it describes.
		recs, err = rt.registry.RegisterPluginFrom(ctx, src, prov, m, wasm)
	} else {
		var rec store.ToolRecord
		rec, err = rt.registry.RegisterFrom(ctx, src, prov, m, wasm)
		recs = []store.ToolRecord{rec}
	}
	if err != nil {
		rt.metrics.RegistrationRefused(string(src))
		code := CodeToolRejected
		if errors.Is(err, tools.ErrCapabilityDenied) {
			code = CodeCapabilityDenied
		}
		return nil, newError(code, err, "%v", err)
	}
	rt.notifyToolsChanged()
	return recs, nil
}

// WarmTools compiles every registered tool that is not compiled yet, from
// the disk cache when it holds them: bundled tools otherwise compile at
// their first call. It returns the errors of the tools that failed, joined;
// the others stay usable.
func (rt *Runtime) WarmTools(ctx context.Context) error { return rt.registry.Warm(ctx) }

// Tools lists the current version of every registered tool.
func (rt *Runtime) Tools(ctx context.Context) ([]store.ToolRecord, error) {
	return rt.registry.List(ctx)
}

// Tool returns the current version of a tool, or a pinned one for
// "name@sha256:<hex>".
func (rt *Runtime) Tool(ctx context.Context, ref string) (store.ToolRecord, error) {
	t, err := rt.registry.Resolve(ctx, ref)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return store.ToolRecord{}, newError(CodeNotFound, err, "no tool %q", ref)
		}
		return store.ToolRecord{}, err
	}
	// What the policy grants now, which may differ from the record's
	// registration-time grants after a policy change.
	rec := t.Record
	rec.Source, rec.Grants = t.Source, t.Authority
	return rec, nil
}

// RemoveTool unregisters a tool name on a client's behalf (the MCP
// remove_tool): only an uploaded tool. A bundled or operator tool is the
// operator's to remove (RemoveToolLocal), else removing it would free its
// name for an upload. Its versions stay for the audit.
func (rt *Runtime) RemoveTool(ctx context.Context, name string) error {
	src, err := rt.registry.Source(ctx, name)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return newError(CodeNotFound, err, "no tool %q", name)
		}
		return err
	}
	if src.Trusted() {
		return newError(CodeCapabilityDenied, tools.ErrOperatorTool, "tool %q is %s tool: only the operator can remove it (the CLI's `tool rm`, or the tools folder)", name, tools.SourcePhrase(src))
	}
	return rt.RemoveToolLocal(ctx, name)
}

// RemoveToolLocal unregisters a tool name on the operator's behalf (the
// CLI), whoever registered it. Its versions stay for the audit; a tool
// from the tools folder or the bundled set comes back at the next start.
func (rt *Runtime) RemoveToolLocal(ctx context.Context, name string) error {
	if err := rt.registry.Remove(ctx, name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return newError(CodeNotFound, err, "no tool %q", name)
		}
		return err
	}
	rt.notifyToolsChanged()
	return nil
}

// PutSecret stores a secret, encrypted at rest, and returns its reference
// vault://secret/<id>.
func (rt *Runtime) PutSecret(ctx context.Context, id, value string) (string, error) {
	ref, err := rt.vault.Put(ctx, id, value)
	switch {
	case errors.Is(err, store.ErrTombstoned):
		return "", newError(CodeTombstoned, err, "secret %q was erased; erased ids are never reused", id)
	case errors.Is(err, store.ErrInvalidRef):
		return "", newError(CodeInvalidArgument, err, "%v", err)
	case err != nil:
		return "", err
	}
	return ref, nil
}

// EraseSecret destroys a secret's value and tombstones its reference
// (GDPR erasure). Projections then show [REDACTED_TOMBSTONE], resolution
// fails, and the erasure itself is appended to the audit chain.
func (rt *Runtime) EraseSecret(ctx context.Context, id string) (store.Envelope, error) {
	if _, tombstoned := rt.vault.Ref(id); tombstoned {
		return store.Envelope{}, newError(CodeTombstoned, store.ErrTombstoned, "secret %q was already erased", id)
	}
	if err := rt.vault.Erase(ctx, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return store.Envelope{}, newError(CodeNotFound, err, "no secret %q", id)
		}
		return store.Envelope{}, err
	}
	salt, _ := rt.vault.Ref(id)
	payload, err := canonical.Marshal(map[string]any{"ref": projection.PublicRef(id, salt, false), "erased": true})
	if err != nil {
		return store.Envelope{}, err
	}
	env, err := rt.store.AppendEnvelope(ctx, store.Envelope{Kind: store.EnvelopeKindErase, PolicyHash: rt.policy.Hash(), Payload: payload})
	if err != nil {
		return store.Envelope{}, fmt.Errorf("record erasure of %q: %w", id, err)
	}
	return env, nil
}

// Secrets lists the secrets' ids and whether each was erased (never their
// values).
func (rt *Runtime) Secrets(ctx context.Context) ([]store.SecretRecord, error) {
	return rt.store.Secrets(ctx)
}

// VerifyAudit re-checks the envelope chain, or one run's envelopes
// and their links, and reports the first broken link.
func (rt *Runtime) VerifyAudit(ctx context.Context, traceID string) (store.VerifyReport, error) {
	return rt.store.VerifyChain(ctx, traceID)
}

// Envelopes returns a run's envelopes, payloads re-projected so an
// erased secret shows as [REDACTED_TOMBSTONE].
func (rt *Runtime) Envelopes(ctx context.Context, traceID string) ([]store.Envelope, error) {
	envs, err := rt.store.Envelopes(ctx, traceID)
	if err != nil {
		return nil, err
	}
	for i := range envs {
		envs[i].Payload = rt.reprojectPayload(envs[i].Payload)
	}
	return envs, nil
}

// stepEnvelopes is a backend that finds one step's envelope without
// decoding the run's others (the bbolt store's StepEnvelope).
type stepEnvelopes interface {
	StepEnvelope(ctx context.Context, traceID string, index int) (store.Envelope, error)
}

// StepEnvelope returns the envelope of step index of a run (the first
// step envelope carrying that index), payload re-projected as Envelopes
// does; nil when the step left none (a run written before every step got
// one). A backend with a lookup of its own (bbolt) decodes one envelope
// for it, usually; another one reads the run's envelopes.
func (rt *Runtime) StepEnvelope(ctx context.Context, traceID string, index int) (*store.Envelope, error) {
	var e store.Envelope
	if se, ok := rt.store.(stepEnvelopes); ok {
		var err error
		if e, err = se.StepEnvelope(ctx, traceID, index); errors.Is(err, store.ErrNotFound) {
			return nil, nil
		} else if err != nil {
			return nil, err
		}
	} else {
		envs, err := rt.store.Envelopes(ctx, traceID)
		if err != nil {
			return nil, err
		}
		i := slices.IndexFunc(envs, func(e store.Envelope) bool { return e.Kind == store.EnvelopeKindStep && e.StepIndex == index })
		if i < 0 {
			return nil, nil
		}
		e = envs[i]
	}
	e.Payload = rt.reprojectPayload(e.Payload)
	return &e, nil
}

// reprojectPayload replaces the public form of an erased reference with the
// tombstone. The stored bytes (and so the hash chain) are untouched.
func (rt *Runtime) reprojectPayload(p json.RawMessage) json.RawMessage {
	secrets, err := rt.store.Secrets(context.Background())
	if err != nil {
		return p
	}
	out := string(p)
	for _, s := range secrets {
		if s.Tombstoned {
			out = replaceAll(out, projection.PublicRef(s.ID, s.Salt, false), projection.Tombstone)
		}
	}
	return json.RawMessage(out)
}

// Programs lists saved programs, newest first.
func (rt *Runtime) Programs(ctx context.Context, limit int) ([]store.Program, error) {
	return rt.store.Programs(ctx, limit)
}

// Program returns a saved program.
func (rt *Runtime) Program(ctx context.Context, id string) (store.Program, error) {
	p, err := rt.store.Program(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return p, newError(CodeNotFound, err, "no saved program %q", id)
	}
	return p, err
}

// DeleteProgram deletes a saved program and its traces; envelopes stay.
func (rt *Runtime) DeleteProgram(ctx context.Context, id string) error {
	err := rt.store.DeleteProgram(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return newError(CodeNotFound, err, "no saved program %q", id)
	}
	return err
}

// Traces lists runs newest first.
func (rt *Runtime) Traces(ctx context.Context, f store.RunFilter) (store.RunPage, error) {
	page, err := rt.store.Runs(ctx, f)
	if err != nil {
		return page, err
	}
	for i := range page.Runs {
		page.Runs[i].Program, page.Runs[i].Input = nil, nil
	}
	return page, nil
}

// Unfinished lists runs left running (interrupted) or suspended.
func (rt *Runtime) Unfinished(ctx context.Context) ([]store.Run, error) {
	return rt.store.Unfinished(ctx)
}

// TraceView is a page of a trace in its TRACE projection: references
// hashed, erased ones tombstoned.
type TraceView struct {
	*kernel.Trace
	ProgramID   string `json:"program_id,omitempty"`
	ProgramHash string `json:"program_hash"`
	PolicyHash  string `json:"policy_hash"`
	// TotalSteps is the number of step records; Steps holds
	// [Offset, Offset+len(Steps)).
	TotalSteps int `json:"total_steps"`
	Offset     int `json:"offset"`
	// NextOffset continues the paging; absent on the last page.
	NextOffset *int `json:"next_offset,omitempty"`
}

// Trace returns a trace, paging its steps (limit <= 0 means 50).
func (rt *Runtime) Trace(ctx context.Context, id string, offset, limit int) (*TraceView, error) {
	exec, err := rt.loadRun(ctx, id)
	if err != nil {
		return nil, err
	}
	_, _, tr, err := rt.restore(ctx, exec)
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 50
	}
	if offset < 0 {
		offset = 0
	}
	v := &TraceView{Trace: tr, ProgramID: exec.ProgramID, ProgramHash: exec.ProgramHash, PolicyHash: exec.PolicyHash, TotalSteps: len(tr.Steps), Offset: offset}
	if tr.Status == "" {
		tr.Status = kernel.Status(exec.Status)
	}
	opts := projection.Options{Refs: rt.vault}
	tr.FinalOutput = projection.Project(tr.FinalOutput, projection.Trace, opts)
	end := min(offset+limit, len(tr.Steps))
	if offset > len(tr.Steps) {
		offset, end = len(tr.Steps), len(tr.Steps)
	}
	page := append([]kernel.StepRecord(nil), tr.Steps[offset:end]...)
	for i := range page {
		page[i].Output = projection.Project(page[i].Output, projection.Trace, opts)
		page[i].Log = projectText(page[i].Log, opts)
		for j := range page[i].SubSteps {
			sub := &page[i].SubSteps[j]
			sub.Output = projection.Project(sub.Output, projection.Trace, opts)
			sub.Log = projectText(sub.Log, opts)
		}
	}
	tr.Steps = page
	if end < v.TotalSteps {
		n := end
		v.NextOffset = &n
	}
	if len(tr.StateSnapshots) > 0 {
		tr.StateSnapshots = tr.StateSnapshots[offset:end]
	}
	return v, nil
}

// Replay re-executes a stored trace from its recorded results and reports
// whether it is exactly what the program does.
func (rt *Runtime) Replay(ctx context.Context, id string) (*kernel.ReplayReport, error) {
	// One read transaction for the run and its steps: half the
	// transactions of run then restore, and the two cannot disagree.
	exec, steps, err := rt.store.RunTrace(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, newError(CodeNotFound, err, "no trace %q", id)
	}
	if err != nil {
		return nil, err
	}
	prog, input, tr, err := rt.restoreSteps(exec, steps)
	if err != nil {
		return nil, err
	}
	return kernel.Replay(ctx, prog, input, tr)
}

// restoreSteps is restore with the steps already read.
func (rt *Runtime) restoreSteps(exec store.Run, steps []store.Step) (*kernel.Program, map[string]any, *kernel.Trace, error) {
	prog, err := rt.program(exec)
	if err != nil {
		return nil, nil, nil, err
	}
	var input map[string]any
	if len(exec.Input) > 0 {
		if err := kernel.DecodeInput(exec.Input, &input); err != nil {
			return nil, nil, nil, undecodable(exec.ID, "its input", err)
		}
	}
	tr := &kernel.Trace{TraceID: exec.ID, ProgramName: exec.ProgramName, Status: kernel.StatusRunning, StartedAt: exec.CreatedAt}
	if len(exec.Header) > 0 {
		var hdr kernel.Trace
		if err := kernel.DecodeTrace(exec.Header, &hdr); err != nil {
			return nil, nil, nil, undecodable(exec.ID, "its header", err)
		}
		tr.StartedAt, tr.InitialStateHash = hdr.StartedAt, hdr.InitialStateHash
		tr.Status, tr.Error, tr.FinishedAt, tr.DurationMS = hdr.Status, hdr.Error, hdr.FinishedAt, hdr.DurationMS
		tr.StateRoot, tr.SuspendedStepID, tr.StepMetrics, tr.Usage, tr.FinalOutput = hdr.StateRoot, hdr.SuspendedStepID, hdr.StepMetrics, hdr.Usage, hdr.FinalOutput
	}
	tr.Steps = make([]kernel.StepRecord, len(steps))
	tr.StateSnapshots = make([]kernel.Snapshot, len(steps))
	for i, s := range steps {
		if err := kernel.DecodeStepRecord(s.Data, &tr.Steps[i]); err != nil {
			return nil, nil, nil, undecodable(exec.ID, fmt.Sprintf("step record %d", s.Index), err)
		}
		tr.StateSnapshots[i] = kernel.Snapshot{Index: tr.Steps[i].Index, Hash: tr.Steps[i].StateHash}
	}
	if exec.Status == kernel.StatusRunning {
		// The record of a run still running is as of its first step (the
		// persister leaves it alone until the status changes).
		tr.Tally()
	}
	return prog, input, tr, nil
}

// undecodable reports a stored record of trace id that cannot be decoded
// (written by an older release, or damaged), naming the record.
func undecodable(id, record string, err error) *Error {
	e := newError(CodeRecordUndecodable, err, "trace %s: %s cannot be decoded: %s", id, record, jsonlimit.Excerpt(err.Error(), 300))
	e.Details = map[string]any{"trace_id": id, "record": record}
	return e
}

func projectText(s string, opts projection.Options) string {
	if s == "" {
		return s
	}
	out, _ := projection.Project(s, projection.Trace, opts).(string)
	return out
}
