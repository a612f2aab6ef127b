package runtime

import (
	"context"
	"errors"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/runtime/internal/executor"
	"github.com/nanovm/nano-vm-mcp/runtime/telemetry"
	"github.com/nanovm/nano-vm-mcp/store"
	"github.com/nanovm/nano-vm-mcp/tools"
)

// tracerName is the instrumentation scope of the runtime's spans.
const tracerName = "github.com/nanovm/nano-vm-mcp/runtime"

// Metrics returns the runtime's metrics (Config.Metrics, or its own).
func (rt *Runtime) Metrics() *telemetry.Metrics { return rt.metrics }

// registerMetrics adds what /metrics reads from the host and the store.
func (rt *Runtime) registerMetrics() {
	rt.metrics.Register(telemetry.Sources{
		Sandbox: func() telemetry.SandboxStats {
			s := rt.host.Stats()
			return telemetry.SandboxStats{Instantiations: s.Instantiations, Resets: s.Resets, PoolHits: s.PoolHits,
				AdmissionWaits: s.PoolWaits, AdmissionRefusals: s.BudgetRefusals, CallWaits: s.CallWaits, SessionCallWaits: s.SessionCallWaits, MemoryInUse: s.MemoryInUse}
		},
		AuditChainLength: func(ctx context.Context) (uint64, error) {
			seq, _, err := rt.store.Head(ctx)
			return seq, err
		},
	})
}

// runTrace is one run's spans: the run's own and the step in progress.
// The kernel calls the observer from the run's goroutine only, before a
// step's tool and llm calls start and after they all returned, so step
// is read by those calls without a lock.
type runTrace struct {
	tracer trace.Tracer
	ctx    context.Context // carries the run's span
	run    trace.Span
	step   trace.Span // nil between steps
	stepAt int        // the index of step
}

// traceRun starts a run's span, a child of the span in ctx (the MCP
// request's, whose parent may be the client's traceparent). kind is
// "start", "continue" or "resume". nil when tracing is off.
func (rt *Runtime) traceRun(ctx context.Context, exec store.Run, kind string) *runTrace {
	if rt.tracer == nil {
		return nil
	}
	ctx, span := rt.tracer.Start(ctx, "invoke_workflow "+exec.ProgramName, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(
			telemetry.KeyGenAIOperationName.String("invoke_workflow"),
			telemetry.KeyTraceID.String(exec.ID),
			telemetry.KeyProgramName.String(exec.ProgramName),
			attribute.String("nanovm.run.kind", kind),
		))
	return &runTrace{tracer: rt.tracer, ctx: ctx, run: span}
}

// startStep opens the span of the step about to run.
func (t *runTrace) startStep(rec *kernel.StepRecord) {
	if t == nil {
		return
	}
	t.endOpenStep("interrupted")
	_, t.step = t.tracer.Start(t.ctx, "step "+rec.StepID, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(
			telemetry.KeyStepID.String(rec.StepID),
			telemetry.KeyStepIndex.Int(rec.Index),
			telemetry.KeyStepType.String(string(rec.Type)),
		))
	t.stepAt = rec.Index
}

// endStep closes the span of a recorded step; a record with no open span
// (a resume's) gets one spanning its recorded times.
func (t *runTrace) endStep(rec *kernel.StepRecord) {
	if t == nil {
		return
	}
	span, synth := t.step, false
	if span == nil || t.stepAt != rec.Index {
		t.endOpenStep("interrupted")
		synth = true
		_, span = t.tracer.Start(t.ctx, "step "+rec.StepID, trace.WithTimestamp(rec.StartedAt),
			trace.WithAttributes(
				telemetry.KeyStepID.String(rec.StepID),
				telemetry.KeyStepIndex.Int(rec.Index),
				telemetry.KeyStepType.String(string(rec.Type)),
			))
	}
	t.step = nil
	span.SetAttributes(telemetry.KeyStepStatus.String(string(rec.Status)), attribute.String("nanovm.step.kind", string(rec.Kind)))
	if rec.Retries > 0 {
		span.SetAttributes(attribute.Int("nanovm.step.retries", rec.Retries))
	}
	if rec.Status == kernel.StepFailed {
		span.SetStatus(codes.Error, rec.Error)
	}
	if synth && !rec.FinishedAt.IsZero() {
		span.End(trace.WithTimestamp(rec.FinishedAt))
		return
	}
	span.End()
}

// endOpenStep closes a step span the run left open (interrupted).
func (t *runTrace) endOpenStep(status string) {
	if t.step == nil {
		return
	}
	t.step.SetAttributes(telemetry.KeyStepStatus.String(status))
	t.step.End()
	t.step = nil
}

// parent is ctx (the call's deadline and values) with the current step's
// span, or the run's, as the parent of a tool or llm call's span.
func (t *runTrace) parent(ctx context.Context) context.Context {
	if t.step != nil {
		return trace.ContextWithSpan(ctx, t.step)
	}
	return trace.ContextWithSpan(ctx, t.run)
}

// finishRun counts how the run ended and closes its spans.
func (rt *Runtime) finishRun(t *runTrace, res *RunResult, err error) {
	status := "interrupted"
	if err == nil && res != nil {
		status = string(res.Status)
	}
	rt.metrics.Run(status)
	if t == nil {
		return
	}
	t.endOpenStep("interrupted")
	t.run.SetAttributes(telemetry.KeyRunStatus.String(status))
	if res != nil {
		t.run.SetAttributes(telemetry.KeyRunSteps.Int(res.Steps))
	}
	switch {
	case err != nil:
		t.run.RecordError(err)
		t.run.SetStatus(codes.Error, err.Error())
	case res != nil && res.Status == kernel.StatusFailed:
		t.run.SetAttributes(telemetry.KeyErrorType.String(string(res.Status)))
		t.run.SetStatus(codes.Error, res.Error)
	}
	t.run.End()
}

// tracedTools gives every tool call of one run a span, a child of its
// step's: the tool's name, the module hash and capabilities it ran with,
// its memory and how it ended.
type tracedTools struct {
	inner kernel.ToolExecutor
	t     *runTrace
}

func (tt *tracedTools) Execute(ctx context.Context, call kernel.ToolCall) (kernel.ToolResult, error) {
	name, _, _ := strings.Cut(call.Tool, "@")
	ctx, span := tt.t.tracer.Start(tt.t.parent(ctx), "execute_tool "+name, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(
			telemetry.KeyGenAIOperationName.String(telemetry.OperationExecuteTool),
			telemetry.KeyGenAIToolName.String(name),
			telemetry.KeyStepID.String(call.StepID),
			telemetry.KeyAttempt.Int(call.Attempt),
		))
	defer span.End()
	var info executor.CallInfo
	res, err := tt.inner.Execute(executor.WithCallInfo(ctx, &info), call)
	if p := res.Provenance; p != nil {
		span.SetAttributes(telemetry.KeyToolModuleSHA256.String(p.ModuleSHA256), telemetry.KeyToolManifestSHA256.String(p.ManifestSHA256),
			telemetry.KeyToolSource.String(p.Source))
	}
	if info.Name != "" {
		span.SetAttributes(telemetry.KeyToolCapabilities.StringSlice(info.Capabilities), telemetry.KeyToolMemoryBytes.Int64(int64(info.MemoryBytes)))
	}
	if err != nil {
		span.SetAttributes(telemetry.KeyErrorType.String(callErrorType(err)))
		span.SetStatus(codes.Error, err.Error())
	}
	return res, err
}

// tracedLLM gives every llm call of one run a client span following the
// gen_ai conventions; the provider's HTTP request carries its context
// (runtime/llm injects traceparent).
type tracedLLM struct {
	inner           kernel.LLMClient
	t               *runTrace
	provider, model string
}

func (tl *tracedLLM) Complete(ctx context.Context, req kernel.LLMRequest) (kernel.LLMResponse, error) {
	ctx, span := tl.t.tracer.Start(tl.t.parent(ctx), telemetry.OperationChat+" "+tl.model, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			telemetry.KeyGenAIOperationName.String(telemetry.OperationChat),
			telemetry.KeyGenAIProviderName.String(tl.provider),
			telemetry.KeyGenAISystem.String(tl.provider),
			telemetry.KeyGenAIRequestModel.String(tl.model),
			telemetry.KeyStepID.String(req.StepID),
			telemetry.KeyAttempt.Int(req.Attempt),
		))
	defer span.End()
	resp, err := tl.inner.Complete(ctx, req)
	if err != nil {
		span.SetAttributes(telemetry.KeyErrorType.String(callErrorType(err)))
		span.SetStatus(codes.Error, err.Error())
		return resp, err
	}
	span.SetAttributes(telemetry.KeyGenAIUsageInput.Int(resp.Usage.PromptTokens), telemetry.KeyGenAIUsageOutput.Int(resp.Usage.CompletionTokens))
	return resp, nil
}

// callErrorTypes are the error.type of a call failed with each sentinel,
// checked in this order.
var callErrorTypes = []struct {
	err error
	typ string
}{
	{context.DeadlineExceeded, "timeout"},
	{tools.ErrTimeout, "timeout"},
	{tools.ErrMemoryLimit, "memory_limit"},
	{tools.ErrBudget, "memory_budget"},
	{tools.ErrOutputLimit, "output_limit"},
	{tools.ErrInvalidArgs, "invalid_args"},
	{tools.ErrInvalidOutput, "invalid_output"},
	{tools.ErrToolFailed, "tool_failed"},
	{tools.ErrTrap, "trap"},
}

// callErrorType is a low-cardinality error.type for a failed call.
func callErrorType(err error) string {
	for _, c := range callErrorTypes {
		if errors.Is(err, c.err) {
			return c.typ
		}
	}
	var d *DeniedError
	var exit *tools.ExitError
	switch {
	case errors.As(err, &exit):
		return "exit"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &d):
		return "capability_denied"
	default:
		return "_OTHER"
	}
}

// splitModel splits "provider/model" (NANO_VM_MCP_LLM_MODEL) for the
// gen_ai attributes.
func splitModel(s string) (provider, model string) {
	provider, model, ok := strings.Cut(s, "/")
	if !ok {
		return "", s
	}
	return provider, model
}

// observeStep records a step's duration in the metrics.
func (rt *Runtime) observeStep(rec *kernel.StepRecord) {
	rt.metrics.Step(string(rec.Type), string(rec.Status), time.Duration(rec.DurationMS*float64(time.Millisecond)))
}

// abandon closes the spans of a run refused before it did anything.
func (t *runTrace) abandon(err error) {
	if t == nil {
		return
	}
	t.endOpenStep("interrupted")
	t.run.SetStatus(codes.Error, err.Error())
	t.run.End()
}
