package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

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
	// written is set once this run has rewritten the run record, or
	// once it was recorded with the header the first commit would write
	// (recorded).
	written bool
	// runRecord is the run record's stored bytes as the run was
	// recorded with, until the first commit's envelope commits to them
	// (store.StepCommit.RunRecord).
	runRecord store.StoredRun
	// outside caches actsOutside by step id (pipelined runs only).
	outside map[string]bool
	// pipeline is Config.PipelinePureSteps.
	pipeline bool
	// lease fences every commit on a shared database (nil on a bbolt
	// file): a replica that lost it commits nothing more.
	lease *store.Lease
	// inputSHA256 and programSHA256 hash the execution's stored input and
	// program, for the first step's envelope.
	inputSHA256, programSHA256 string
	// bufs holds the buffers reused for every step record and every
	// envelope's payload (the store copies both before its commit call
	// returns), from recordBufs.
	bufs *runBufs
	// env is reused for every step's envelope draft (the store copies it).
	env store.Envelope
	// commitCtx is the run's context without its cancellation, made at
	// the first commit: a step that ran is recorded even if the caller
	// gave up waiting.
	commitCtx context.Context
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
	p := &persister{rt: rt, prog: prog, progress: progress, total: len(prog.Steps), pipeline: rt.cfg.PipelinePureSteps}
	p.bufs, _ = recordBufs.Get().(*runBufs)
	if p.bufs == nil {
		p.bufs = new(runBufs)
	}
	if len(exec.Input) > 0 {
		p.inputSHA256 = store.RecordSHA256(exec.Input)
	}
	if len(exec.Program) > 0 {
		p.programSHA256 = programSHA256(exec.Program, prog)
	}
	exec.Input, exec.Program = nil, nil
	p.exec = exec
	return p
}

// recorded takes the run as the store recorded it (exec, and the record's
// stored bytes when the store tells them: store.RunRecordStore). A run
// recorded with its header (Runtime.start) then keeps that record through
// its first step, whose envelope commits to those bytes instead of a
// rewrite.
func (p *persister) recorded(exec store.Run, stored store.StoredRun) {
	exec.Input, exec.Program = nil, nil
	p.exec = exec
	if stored.Bytes() != nil && len(exec.Header) > 0 {
		p.written, p.runRecord = true, stored
	}
}

// programHashes remembers store.RecordSHA256 of each validated program's
// stored bytes, by program: every run of a cached program would hash the
// same bytes again. Bounded as the parse cache is.
var programHashes struct {
	sync.Mutex
	m map[*kernel.Program]programHash
}

type programHash struct {
	raw  []byte
	hash string
}

// programSHA256 is store.RecordSHA256(raw), from programHashes when raw
// is what prog was last stored as.
func programSHA256(raw []byte, prog *kernel.Program) string {
	programHashes.Lock()
	h, ok := programHashes.m[prog]
	programHashes.Unlock()
	if ok && bytes.Equal(h.raw, raw) {
		return h.hash
	}
	sum := store.RecordSHA256(raw)
	programHashes.Lock()
	if programHashes.m == nil || len(programHashes.m) >= maxCachedPrograms {
		programHashes.m = make(map[*kernel.Program]programHash)
	}
	programHashes.m[prog] = programHash{raw: bytes.Clone(raw), hash: sum}
	programHashes.Unlock()
	return sum
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
	// The store copies the record, so one buffer serves every step of the
	// run.
	if p.bufs == nil {
		p.bufs = new(runBufs) // released (settle), yet a step came
	}
	data, err := kernel.AppendStepRecord(p.bufs.record[:0], rec)
	if err != nil {
		return &unstorableError{fmt.Errorf("encode step %d: %w", rec.Index, err)}
	}
	p.bufs.record = data
	// The run record is rewritten by the first commit of this run
	// (its header carries the run's start and initial state hash), unless
	// the run was recorded with that header already (recorded), and by
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
	payload, err := appendPayload(p.bufs.payload[:0], rec, p.rt.vault, ev.OutputJSON)
	if err != nil {
		return &unstorableError{fmt.Errorf("envelope of step %d: %w", rec.Index, err)}
	}
	p.bufs.payload = payload
	// The store copies the envelope before the commit call returns, so
	// one serves every step of the run.
	p.env = store.Envelope{
		Kind: store.EnvelopeKindStep, TraceID: p.exec.ID, StepIndex: rec.Index, StepID: rec.StepID,
		PolicyHash: p.exec.PolicyHash, StateHash: rec.StateHash, Payload: payload,
	}
	env := &p.env
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
	if p.commitCtx == nil {
		p.commitCtx = context.WithoutCancel(ctx)
	}
	sc := store.StepCommit{Run: p.exec, KeepRun: keep, Index: rec.Index, Step: data, Envelope: env, Lease: p.lease}
	if keep {
		// The first commit of a run recorded with its header commits to
		// that record as stored (verify holds a run's record to an
		// envelope once a step is committed).
		sc.RunRecord = p.runRecord
	}
	p.runRecord = store.StoredRun{}
	p.written = true
	p.ended = ""
	if ev.Status != kernel.StatusRunning {
		p.ended = ev.Status
	}
	if !p.pipeline {
		// Unpipelined, the step is durable before the kernel goes on, and
		// nothing is pending (every earlier commit was waited for): the
		// synchronous call lets a lone writer commit on this goroutine,
		// with no hand-off and no PendingCommit to make and reap.
		if _, err := p.rt.store.CommitStep(p.commitCtx, sc); err != nil {
			p.failed = fmt.Errorf("commit step %d: %w", rec.Index, err)
			return p.failed
		}
		p.durable(rec.Index, rec.StepID, rec.Status)
		return nil
	}
	pc := p.rt.store.StartCommitStep(p.commitCtx, sc)
	p.pending = append(p.pending, pendingStep{commit: pc, index: rec.Index, stepID: rec.StepID, status: rec.Status})
	return p.reap(false)
}

// durable counts a step found durable and reports it as progress.
func (p *persister) durable(index int, stepID string, status kernel.StepStatus) {
	p.done++
	if p.progress != nil {
		p.progress(Progress{TraceID: p.exec.ID, Index: index, StepID: stepID, Status: status, Done: p.done, Total: p.total})
	}
}

// flush waits until every commit started is durable or has failed.
func (p *persister) flush() error { return p.reap(true) }

// recordBufs keeps the persisters' buffers between runs (*runBufs): a
// run encodes every step record into one and every envelope payload into
// the other, which the store copies.
var recordBufs sync.Pool

// runBufs are a run's encoding buffers.
type runBufs struct{ record, payload []byte }

// maxPooledBuf bounds the buffers recordBufs keeps (a run with a huge
// record should not pin its buffer forever).
const maxPooledBuf = 64 << 10

// release returns the buffers once no step record is encoded any more
// (settle).
func (p *persister) release() {
	b := p.bufs
	if b == nil {
		return
	}
	p.bufs = nil
	if cap(b.record) > maxPooledBuf {
		b.record = nil
	}
	if cap(b.payload) > maxPooledBuf {
		b.payload = nil
	}
	b.record, b.payload = b.record[:0], b.payload[:0]
	recordBufs.Put(b)
}

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
		if len(p.pending) == 1 {
			// Keep the slice's room for the next commit: unpipelined,
			// every step would otherwise grow a new one.
			p.pending[0] = pendingStep{}
			p.pending = p.pending[:0]
		} else {
			p.pending = p.pending[1:]
		}
		p.durable(ps.index, ps.stepID, ps.status)
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
	if p.outside == nil {
		p.outside = map[string]bool{}
	}
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
//
// It writes the canonical object directly, its members in RFC 8785 order
// (output, resumed_by, status, sub_steps, tool_grants, tool_origin,
// tool_signer, tool_source: all
// ASCII, so byte order), instead of building a map for canonical.Marshal
// to sort; TestEnvelopePayloadCanonical holds the two to the same bytes.
//
// outputJSON, when not nil, is the canonical JSON of rec.Output
// (kernel.StepEvent.OutputJSON): an output the projection leaves alone is
// then not encoded again.
func envelopePayload(rec *kernel.StepRecord, refs projection.Refs, outputJSON []byte) (json.RawMessage, error) {
	return encodePooled(func(b []byte) ([]byte, error) { return appendPayload(b, rec, refs, outputJSON) })
}

// appendStr appends s as canonical.Append does, without boxing it: a
// string that is not UTF-8 is left to Append, for its error.
func appendStr(b []byte, s string) ([]byte, error) {
	if utf8.ValidString(s) {
		return canonical.AppendString(b, s), nil
	}
	return canonical.Append(b, s)
}

// appendPayload appends envelopePayload's bytes to b.
func appendPayload(b []byte, rec *kernel.StepRecord, refs projection.Refs, outputJSON []byte) ([]byte, error) {
	b = append(b, `{"output":`...)
	var err error
	switch out := rec.Output; {
	case !projection.TraceUnchanged(out):
		// Only a value that holds a vault reference (or is not plain
		// JSON data) is copied to project it.
		if b, err = canonical.Append(b, projection.Project(out, projection.Trace, projection.Options{Refs: refs})); err != nil {
			return b, err
		}
	case outputJSON != nil:
		b = append(b, outputJSON...)
	default:
		if b, err = canonical.Append(b, out); err != nil {
			return b, err
		}
	}
	if rec.Kind == kernel.KindResume {
		b = append(b, `,"resumed_by":`...)
		if b, err = appendStr(b, rec.Source); err != nil {
			return b, err
		}
	}
	if rec.Status != kernel.StepSuccess {
		b = append(b, `,"status":`...)
		if b, err = appendStr(b, string(rec.Status)); err != nil {
			return b, err
		}
	}
	if len(rec.SubSteps) > 0 {
		b = append(b, `,"sub_steps":`...)
		if b, err = appendSubSteps(b, rec.SubSteps); err != nil {
			return b, err
		}
	}
	if t := rec.Tool; t != nil && t.Source != "" {
		if b, err = appendToolTrust(b, ',', t); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

// appendSubSteps writes the sub_steps member's value: an object of the
// sub-steps by id, each {manifest_sha256, module_sha256, status,
// tool_*}, in canonical order, as canonical.Marshal writes the map that
// envelopePayloadMap builds. Sub-step ids repeated (no validated program
// has them) go through that map, whose last entry wins.
func appendSubSteps(b []byte, subs []kernel.SubStepRecord) ([]byte, error) {
	var buf [16]int
	order := buf[:0]
	for i := range subs {
		order = append(order, i)
	}
	slices.SortStableFunc(order, func(i, j int) int { return canonical.CompareKeys(subs[i].StepID, subs[j].StepID) })
	for k := 1; k < len(order); k++ {
		if subs[order[k]].StepID == subs[order[k-1]].StepID {
			m := make(map[string]any, len(subs))
			for _, s := range subs {
				e := map[string]any{"status": string(s.Status)}
				if s.Tool != nil {
					e["module_sha256"], e["manifest_sha256"] = s.Tool.ModuleSHA256, s.Tool.ManifestSHA256
				}
				toolTrust(e, s.Tool)
				m[s.StepID] = e
			}
			return canonical.Append(b, m)
		}
	}
	var err error
	b = append(b, '{')
	for k, i := range order {
		s := &subs[i]
		if k > 0 {
			b = append(b, ',')
		}
		if b, err = appendStr(b, s.StepID); err != nil {
			return b, err
		}
		b = append(b, ':', '{')
		if s.Tool != nil {
			b = append(b, `"manifest_sha256":`...)
			if b, err = appendStr(b, s.Tool.ManifestSHA256); err != nil {
				return b, err
			}
			b = append(b, `,"module_sha256":`...)
			if b, err = appendStr(b, s.Tool.ModuleSHA256); err != nil {
				return b, err
			}
			b = append(b, ',')
		}
		b = append(b, `"status":`...)
		if b, err = appendStr(b, string(s.Status)); err != nil {
			return b, err
		}
		if t := s.Tool; t != nil && t.Source != "" {
			if b, err = appendToolTrust(b, ',', t); err != nil {
				return b, err
			}
		}
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

// appendToolTrust writes toolTrust's members (tool_grants, tool_origin,
// tool_signer, tool_source: canonical order), each after sep, of a tool
// with a source.
func appendToolTrust(b []byte, sep byte, t *kernel.ToolProvenance) ([]byte, error) {
	b = append(b, sep)
	b = append(b, `"tool_grants":`...)
	// A map[string]string encodes as grantsValue's copy does, nil as {}.
	b, err := canonical.Append(b, t.Grants)
	if err != nil {
		return b, err
	}
	if t.Origin != "" {
		b = append(b, `,"tool_origin":`...)
		if b, err = appendStr(b, t.Origin); err != nil {
			return b, err
		}
	}
	if t.Signer != "" {
		b = append(b, `,"tool_signer":`...)
		if b, err = appendStr(b, t.Signer); err != nil {
			return b, err
		}
	}
	b = append(b, `,"tool_source":`...)
	return appendStr(b, t.Source)
}

// envelopePayloadMap is the payload as a map, what envelopePayload writes
// directly: kept for the test that holds the two together.
func envelopePayloadMap(rec *kernel.StepRecord, refs projection.Refs) (json.RawMessage, error) {
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
	p["tool_grants"] = grantsValue(t.Grants)
	// Added only when set, so an envelope of a file or byte upload tool
	// hashes as before.
	if t.Origin != "" {
		p["tool_origin"] = t.Origin
	}
	if t.Signer != "" {
		p["tool_signer"] = t.Signer
	}
}

// grantsValue is a tool's grants as canonical.Append takes them.
func grantsValue(g map[string]string) map[string]any {
	grants := make(map[string]any, len(g))
	for c, a := range g {
		grants[c] = a
	}
	return grants
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
	b, _ := appendHeader(&h)
	return b
}

func replaceAll(s, old, new string) string {
	if old == "" {
		return s
	}
	return strings.ReplaceAll(s, old, new)
}
