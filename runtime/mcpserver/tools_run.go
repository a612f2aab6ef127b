package mcpserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/store"
)

// Size budgets inside MaxResultBytes.
const (
	maxFinalOutputBytes = 16_000
	maxStepBytes        = 8_000
	maxLogBytes         = 2_000
	maxProgramBytes     = 30_000
	// maxErrorBytes bounds a run's error text in an answer; maxIDBytes an
	// id or name a client chose; maxWarnings the warnings listed.
	maxErrorBytes = 4_000
	maxIDBytes    = 1_000
	maxWarnings   = 20
)

// Codes this package adds to runtime's.
const (
	codeInterrupted  = "interrupted"
	codeCancelled    = "cancelled"
	codeShuttingDown = "shutting_down"
)

// statusEnum is a string schema whose values are the kernel's run
// statuses (kernel.Statuses), so the schemas cannot drift from the kernel.
func statusEnum(desc string) map[string]any {
	return enum(desc, strs(kernel.Statuses())...)
}

// strs converts a list of typed strings for enum.
func strs[S ~string](l []S) []string {
	out := make([]string, len(l))
	for i, v := range l {
		out[i] = string(v)
	}
	return out
}

// runOutput is run_program's and resume_program's result: a summary, never
// the trace (get_trace pages through that).
type runOutput struct {
	TraceID              string        `json:"trace_id"`
	ProgramID            string        `json:"program_id,omitempty"`
	ProgramName          string        `json:"program_name"`
	Status               kernel.Status `json:"status"`
	Steps                int           `json:"steps"`
	Cost                 float64       `json:"cost"`
	FinalOutput          any           `json:"final_output"`
	FinalOutputTruncated bool          `json:"final_output_truncated,omitempty"`
	Error                string        `json:"error,omitempty"`
	SuspendedStepID      string        `json:"suspended_step_id,omitempty"`
	// StoredOutcome is true when an idempotency key returned the stored
	// outcome of an earlier run.
	StoredOutcome bool `json:"stored_outcome,omitempty"`
	// IdempotentReplay repeats StoredOutcome under its earlier name.
	// Deprecated: written for one release.
	IdempotentReplay bool     `json:"idempotent_replay,omitempty"`
	Warnings         []string `json:"warnings,omitempty"`
	// Next tells the model what it can do with this result.
	Next string `json:"next"`
}

func runOutputSchema() map[string]any {
	return object(map[string]any{
		"trace_id":               str("The run's id: pass it to get_trace, resume_program and verify_audit."),
		"program_id":             str("The saved program's id, when the program was saved or run by id."),
		"program_name":           str("The program's name."),
		"status":                 statusEnum("How the run ended, or suspended for now."),
		"steps":                  integer("Step records in the trace."),
		"cost":                   number("LLM cost in USD."),
		"final_output":           anyValue("Output of the last successful step (secret references hashed)."),
		"final_output_truncated": boolean("True when final_output was too large and holds a preview."),
		"error":                  str("Why the run failed, when it did."),
		"suspended_step_id":      str("The step waiting for resume_program."),
		"stored_outcome":         boolean("True when the idempotency_key returned an earlier run's stored outcome; nothing ran again."),
		"idempotent_replay":      deprecatedField("boolean", "stored_outcome"),
		"warnings":               array("Program validation warnings: a $reference that matches no input key, step id or output_key (passed on as literal text), an unreachable step, … Pass strict to refuse such a program instead.", str("A warning, naming the step.")),
		"next":                   str("What to do next."),
	}, "trace_id", "program_name", "status", "steps", "cost", "final_output", "next")
}

// summariseJSON is summarise's result as the JSON the answer carries:
// the encoding summarise measured, so the answer is not encoded twice.
func summariseJSON(res *runtime.RunResult) any {
	out, b := summarise(res)
	if b != nil {
		return encoded(b)
	}
	return out
}

// encoded is an answer already encoded by json.Marshal: handle sends
// these bytes as they are.
type encoded []byte

// summarise builds a run's answer, and returns its JSON encoding too when
// it has it (nil otherwise).
func summarise(res *runtime.RunResult) (runOutput, []byte) {
	out := runOutput{
		TraceID: res.TraceID, ProgramID: res.ProgramID, ProgramName: res.ProgramName, Status: res.Status,
		Steps: res.Steps, Cost: res.Cost, Error: res.Error, SuspendedStepID: res.SuspendedStepID,
		StoredOutcome: res.StoredOutcome, IdempotentReplay: res.StoredOutcome, Warnings: res.Warnings,
	}
	out.FinalOutput, out.FinalOutputTruncated = clip(res.FinalOutput, maxFinalOutputBytes)
	// Everything else a client or a guest wrote is clipped too, so the
	// answer, and its trace_id, always fits in MaxResultBytes.
	out.ProgramID = clipText(out.ProgramID, maxIDBytes)
	out.ProgramName = clipText(out.ProgramName, maxIDBytes)
	out.SuspendedStepID = clipText(out.SuspendedStepID, maxIDBytes)
	out.Error = clipText(out.Error, maxErrorBytes)
	if len(res.Warnings) > 0 {
		out.Warnings = make([]string, 0, min(len(res.Warnings), maxWarnings+1))
		for _, w := range res.Warnings[:min(len(res.Warnings), maxWarnings)] {
			out.Warnings = append(out.Warnings, clipText(w, maxErrorBytes/8))
		}
		if n := len(res.Warnings) - maxWarnings; n > 0 {
			out.Warnings = append(out.Warnings, fmt.Sprintf("…and %d more warnings", n))
		}
	}
	switch res.Status {
	case kernel.StatusSuccess:
		out.Next = "Done. get_trace shows each step; verify_audit checks this run's audit envelopes."
	case kernel.StatusSuspended:
		out.Next = fmt.Sprintf("Step %q is waiting for an external event: call resume_program with this trace_id and the event as payload when it arrives.", res.SuspendedStepID)
	default:
		out.Next = "get_trace with this trace_id shows which step failed and why; fix the program or input and run again."
	}
	if res.StoredOutcome {
		out.Next = "This is the stored outcome of an earlier run with the same idempotency_key; nothing ran again. " + out.Next
	}
	const preview = " final_output is a preview of a large value: get_trace shows the last step's output, and `nano-vm-mcp trace show` prints it whole."
	b, err := json.Marshal(out)
	if err == nil && len(b) <= MaxResultBytes-2_000 {
		if !out.FinalOutputTruncated {
			return out, b
		}
		out.Next += preview
		return out, nil
	}
	// Text that escapes to several times its size: clip harder.
	out.FinalOutput, out.FinalOutputTruncated = clip(res.FinalOutput, maxFinalOutputBytes/8)
	out.Error = clipText(res.Error, maxErrorBytes/8)
	out.ProgramID, out.ProgramName = clipText(out.ProgramID, 100), clipText(out.ProgramName, 100)
	out.SuspendedStepID, out.Warnings = clipText(out.SuspendedStepID, 100), nil
	if out.FinalOutputTruncated {
		out.Next += preview
	}
	return out, nil
}

// runError maps what RunProgram, Resume and ContinueInterrupted return
// besides a result: an interrupted run is left resumable, and the model is
// told how to continue it.
func runError(res *runtime.RunResult, err error) error {
	if _, ok := runtime.AsError(err); ok {
		return err
	}
	if e := diskFullError(res, err); e != nil {
		return e
	}
	if res != nil {
		return &runtime.Error{
			Code: codeInterrupted,
			Message: fmt.Sprintf("the run was interrupted after %d step(s) (the request was cancelled or the server is stopping) and is left resumable: call resume_program with trace_id %q and no payload to continue it from its last durable step",
				res.Steps, res.TraceID),
			Details: map[string]any{"trace_id": res.TraceID, "steps": res.Steps},
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &runtime.Error{Code: codeCancelled, Message: "the request was cancelled before the run produced a result"}
	}
	return err
}

type runArgs struct {
	Program        json.RawMessage `json:"program"`
	ProgramID      string          `json:"program_id"`
	Input          json.RawMessage `json:"input"`
	IdempotencyKey string          `json:"idempotency_key"`
	SaveAs         string          `json:"save_as"`
	Strict         bool            `json:"strict"`
}

const runDescription = `Run a program: a small deterministic state machine of tool, llm, condition and parallel steps, executed in a WebAssembly sandbox under the operator's policy. Every successful step is persisted with a hash-chained audit envelope before the next starts.

Use it to execute a multi-step workflow reliably (e.g. validate → reserve → capture → receipt) instead of calling tools one by one. Give the program inline (object, or a JSON string) or program_id of a saved one; input fills the $refs. Returns a summary (status, step count, final output, trace_id) — call get_trace for the steps.

A $reference that matches no input key, step id or output_key is passed on as literal text and listed in warnings; strict refuses the program instead. Not idempotent unless you pass idempotency_key: with a key the program runs at most once, a repeat returns the stored outcome (stored_outcome true; its deprecated name idempotent_replay is written too for one release), and reusing the key with a different program or input is an error. A run that suspends (a tool answered PENDING) waits for resume_program. Invalid programs are refused before anything runs, with every problem named. Tools may reach the network (nanovm:http), so this acts on the outside world.

Example: {"program":{"name":"pay","steps":[{"id":"validate","type":"tool","tool":"validate_amount","args":{"amount":"$amount"}},{"id":"receipt","type":"tool","tool":"send_receipt","args":{"order_id":"$order_id"},"is_terminal":true}]},"input":{"amount":125.5,"order_id":"order-abc-123"},"idempotency_key":"order-abc-123"}`

func runProgramDef() toolDef {
	return toolDef{
		name:        "run_program",
		title:       "Run a program",
		description: runDescription,
		input: closed(map[string]any{
			"program":         objectOrString(`The program: {"name","steps":[...]} as an object or a JSON string. Give this or program_id.`),
			"program_id":      str("Id of a saved program to run instead of program."),
			"input":           objectOrString("The run's input: the data $refs read (object, or a JSON string holding one). Default {}."),
			"idempotency_key": str("Run at most once per key; a repeat returns the stored outcome."),
			"save_as":         str("Save the program under this id before running it (get_program, run by program_id later)."),
			"strict":          boolean("Refuse the program, before anything runs, when it has validation warnings (such as a $reference that matches no input key, step id or output_key, which would otherwise be passed on as literal text), instead of running it and listing them in warnings. Default false."),
		}),
		output:      runOutputSchema(),
		readOnly:    false,
		destructive: true,
		idempotent:  false,
		openWorld:   true,
		handler:     withArgs((*Server).runProgram),
	}
}

func (s *Server) runProgram(ctx context.Context, req mcp.CallToolRequest, a runArgs) (any, error) {
	prog, err := objectArg("program", a.Program)
	if err != nil {
		return nil, err
	}
	input, err := objectMap("input", a.Input)
	if err != nil {
		return nil, err
	}
	if prog == nil && a.ProgramID == "" {
		return nil, argError("give program (the program as an object or JSON string) or program_id (a saved program)")
	}
	res, err := s.startRun(ctx, req, func(ctx context.Context, progress func(runtime.Progress)) (*runtime.RunResult, error) {
		return s.rt.RunProgram(ctx, runtime.RunRequest{
			Program: prog, ProgramID: a.ProgramID, Input: input,
			IdempotencyKey: a.IdempotencyKey, SaveAs: a.SaveAs, Strict: a.Strict,
			Progress: progress,
		})
	})
	if err != nil {
		return nil, err
	}
	return summariseJSON(res), nil
}

// startRun calls run under the server's run context (refused while it
// shuts down) with req's progress notifications, and maps what it
// returns besides a result with runError.
func (s *Server) startRun(ctx context.Context, req mcp.CallToolRequest, run func(ctx context.Context, progress func(runtime.Progress)) (*runtime.RunResult, error)) (*runtime.RunResult, error) {
	ctx, cancel, err := s.runContext(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	progress, flush := s.progressFunc(ctx, req)
	defer flush()
	res, err := run(ctx, progress)
	if err != nil {
		return nil, runError(res, err)
	}
	return res, nil
}

type resumeArgs struct {
	TraceID string          `json:"trace_id"`
	Payload json.RawMessage `json:"payload"`
	Source  string          `json:"source"`
}

const resumeDescription = `Continue a run that is waiting or was interrupted, in the same trace.

A suspended run (status "suspended": a tool answered PENDING, e.g. a payment poll) continues after its waiting step with payload as the awaited event; the program reads it as $__webhook__ (e.g. a condition "$__webhook__.payment_status == 'SUCCESS'"), and source as $__webhook_source__. A run interrupted by a cancelled request or a restart (status "running", not in progress) continues from its last durable step without re-running completed steps; give no payload then. Resuming the same suspension twice is an error. Tools may reach the network, so this acts on the outside world.

Returns the same summary as run_program.

Example: {"trace_id":"7f0c…","payload":{"payment_status":"SUCCESS"},"source":"WEBHOOK"}`

func resumeProgramDef() toolDef {
	return toolDef{
		name:        "resume_program",
		title:       "Resume a suspended or interrupted run",
		description: resumeDescription,
		input: closed(map[string]any{
			"trace_id": str("The run to continue (run_program's trace_id)."),
			"payload":  anyValue("The event that ends the wait (any JSON); only for a suspended run."),
			"source":   enum("Where the event came from; default OPERATOR.", string(kernel.SourceWebhook), string(kernel.SourceOperator), string(kernel.SourceTimer)),
		}, "trace_id"),
		output:      runOutputSchema(),
		readOnly:    false,
		destructive: true,
		idempotent:  false,
		openWorld:   true,
		handler:     withArgs((*Server).resumeProgram),
	}
}

func (s *Server) resumeProgram(ctx context.Context, req mcp.CallToolRequest, a resumeArgs) (any, error) {
	if err := requireString("trace_id", a.TraceID); err != nil {
		return nil, err
	}
	payload, err := anyArg(a.Payload)
	if err != nil {
		return nil, argError("argument \"payload\": %v", err)
	}
	source := a.Source
	switch source {
	case "":
		source = string(kernel.SourceOperator)
	case string(kernel.SourceWebhook), string(kernel.SourceOperator), string(kernel.SourceTimer):
	default:
		return nil, argError("argument \"source\": %s is not one of WEBHOOK, OPERATOR, TIMER", store.Clip(source))
	}
	res, err := s.startRun(ctx, req, func(ctx context.Context, progress func(runtime.Progress)) (*runtime.RunResult, error) {
		res, err := s.rt.Resume(ctx, a.TraceID, payload, source, progress)
		if e, ok := runtime.AsError(err); !ok || e.Code != runtime.CodeNotSuspended {
			return res, err
		}
		// Not suspended: it may be interrupted, which continues without
		// an event.
		tv, terr := s.rt.Trace(ctx, a.TraceID, 0, 1)
		if terr != nil || tv.Status != kernel.StatusRunning {
			return nil, err
		}
		if payload != nil {
			return nil, argError("run %s was interrupted, not suspended: it continues without an event, so call resume_program again without payload", a.TraceID)
		}
		return s.rt.ContinueInterrupted(ctx, a.TraceID, progress)
	})
	if err != nil {
		return nil, err
	}
	return summariseJSON(res), nil
}

// tracePage is get_trace's result: the trace header and one page of steps.
type tracePage struct {
	runtime.TraceHeader
	FinalOutput          any                 `json:"final_output"`
	FinalOutputTruncated bool                `json:"final_output_truncated,omitempty"`
	Steps                []kernel.StepRecord `json:"steps"`
}

type traceArgs struct {
	TraceID string `json:"trace_id"`
	Offset  *int   `json:"offset"`
	Limit   *int   `json:"limit"`
}

const (
	defaultTraceLimit = 20
	maxTraceLimit     = 100
)

// tracePageOf reads one page of a trace and fits it in budget bytes:
// large step outputs and logs are clipped, and steps are dropped from the
// end of the page (next_offset then continues there) until it fits.
func (s *Server) tracePageOf(ctx context.Context, id string, offset, limit, budget int) (*tracePage, error) {
	tv, err := s.rt.Trace(ctx, id, offset, limit)
	if err != nil {
		return nil, err
	}
	p := &tracePage{TraceHeader: tv.Header(), Steps: tv.Steps}
	p.FinalOutput, p.FinalOutputTruncated = clip(tv.FinalOutput, maxFinalOutputBytes/2)
	p.ProgramID, p.ProgramName = clipText(p.ProgramID, maxIDBytes), clipText(p.ProgramName, maxIDBytes)
	p.Error, p.SuspendedStepID = clipText(p.Error, maxErrorBytes), clipText(p.SuspendedStepID, maxIDBytes)
	for i := range p.Steps {
		clipStep(&p.Steps[i])
	}
	for {
		b, err := json.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("encode trace %s: %w", id, err)
		}
		if len(b) <= budget || len(p.Steps) <= 1 {
			return p, nil
		}
		keep := len(p.Steps) / 2
		p.Steps = p.Steps[:keep]
		next := p.Offset + keep
		p.NextOffset = &next
	}
}

func clipStep(r *kernel.StepRecord) {
	r.Log = clipText(r.Log, maxLogBytes)
	r.Output, _ = clip(r.Output, maxStepBytes)
	r.Error = clipText(r.Error, maxErrorBytes/2)
	r.StepID, r.Next = clipText(r.StepID, maxIDBytes/4), clipText(r.Next, maxIDBytes/4)
	if r.RawOutput != nil {
		raw := clipText(*r.RawOutput, maxLogBytes)
		r.RawOutput = &raw
	}
	for j := range r.SubSteps {
		sub := &r.SubSteps[j]
		sub.Log = clipText(sub.Log, maxLogBytes/4)
		sub.Output, _ = clip(sub.Output, maxStepBytes/4)
		sub.Error = clipText(sub.Error, maxErrorBytes/8)
		sub.StepID = clipText(sub.StepID, maxIDBytes/8)
		if sub.RawOutput != nil {
			raw := clipText(*sub.RawOutput, maxLogBytes/4)
			sub.RawOutput = &raw
		}
	}
}

func stepSchema() map[string]any {
	return object(map[string]any{
		"index":       integer("Position in the trace, from 0."),
		"step_id":     str("The step's id in the program."),
		"type":        enum("Step type.", "tool", "llm", "condition", "parallel"),
		"kind":        str(`"resume" for the record of a resume event; absent for a step.`),
		"status":      enum("Step status.", strs(kernel.StepStatuses())...),
		"output":      anyValue("What the step produced (secret references hashed; a large output is a {truncated, bytes, preview} object)."),
		"error":       str("Why the step failed."),
		"retries":     integer("Attempts after the first."),
		"state_hash":  str("SHA-256 of the canonical state after this step."),
		"next":        str("The step the run went to next."),
		"log":         str("What a tool wrote to its log."),
		"started_at":  str("RFC 3339 time."),
		"finished_at": str("RFC 3339 time."),
		"duration_ms": number("Wall-clock duration."),
	}, "index", "step_id", "status")
}

const traceDescription = `Read a run's trace: status, final output, error, and one page of step records (each step's output, error, retries, state hash, duration, tool module hash).

Use it after run_program to see what each step did, why a run failed, or where a suspended run waits. Long traces come in pages: offset (default 0) and limit (default 20, at most 100); next_offset is present while more steps follow — call again with offset=next_offset. Large outputs are clipped to a preview. Secret references appear hashed, erased ones as [REDACTED_TOMBSTONE]. Read-only.

Example: {"trace_id":"7f0c…","offset":0,"limit":20}`

func getTraceDef() toolDef {
	return toolDef{
		name:        "get_trace",
		title:       "Read a run's trace",
		description: traceDescription,
		input: closed(map[string]any{
			"trace_id": str("The run's id (run_program's trace_id)."),
			"offset":   intRange("First step record to return.", 0, 1<<30, 0),
			"limit":    intRange("Step records per page.", 1, maxTraceLimit, defaultTraceLimit),
		}, "trace_id"),
		output: object(map[string]any{
			"trace_id":               str("The run's id."),
			"program_id":             str("The saved program's id, if any."),
			"program_name":           str("The program's name."),
			"program_hash":           str("Canonical SHA-256 of the program run."),
			"policy_hash":            str("Hash of the policy the run started under."),
			"status":                 statusEnum("The run's status."),
			"error":                  str("Why the run failed."),
			"suspended_step_id":      str("The step waiting for resume_program."),
			"final_output":           anyValue("Output of the last successful step."),
			"final_output_truncated": boolean("True when final_output holds a preview."),
			"step_metrics":           object(map[string]any{"llm_calls": integer(""), "tool_calls": integer(""), "condition_evals": integer(""), "retries_total": integer("")}),
			"usage":                  object(map[string]any{"prompt_tokens": integer(""), "completion_tokens": integer(""), "total_tokens": integer(""), "cost_usd": number("")}),
			"initial_state_hash":     str("State hash before the first step."),
			"state_root":             str("Merkle root over the state hashes."),
			"started_at":             str("RFC 3339 time."),
			"finished_at":            str("RFC 3339 time."),
			"duration_ms":            number("Wall-clock duration."),
			"total_steps":            integer("Step records in the whole trace."),
			"offset":                 integer("Index of the first record in steps."),
			"next_offset":            integer("Pass as offset to read the next page; absent on the last page."),
			"steps":                  array("This page's step records.", stepSchema()),
		}, "trace_id", "status", "total_steps", "offset", "steps"),
		readOnly:    true,
		destructive: false,
		idempotent:  true,
		openWorld:   false,
		handler:     withArgs((*Server).getTrace),
	}
}

func (s *Server) getTrace(ctx context.Context, req mcp.CallToolRequest, a traceArgs) (any, error) {
	if err := requireString("trace_id", a.TraceID); err != nil {
		return nil, err
	}
	offset, err := intArg("offset", a.Offset, 0, 0, 1<<30)
	if err != nil {
		return nil, err
	}
	limit, err := intArg("limit", a.Limit, defaultTraceLimit, 1, maxTraceLimit)
	if err != nil {
		return nil, err
	}
	return s.tracePageOf(ctx, a.TraceID, offset, limit, MaxResultBytes-2_000)
}

type listTracesArgs struct {
	ProgramID string `json:"program_id"`
	Status    string `json:"status"`
	Limit     *int   `json:"limit"`
	Cursor    string `json:"cursor"`
}

type traceList struct {
	Traces     []runtime.RunSummary `json:"traces"`
	NextCursor string               `json:"next_cursor,omitempty"`
	// Skipped are stored runs that could not be read back.
	Skipped []skippedTrace `json:"skipped,omitempty"`
}

// skippedTrace is a stored run whose record could not be decoded.
type skippedTrace struct {
	TraceID string `json:"trace_id"`
	Error   string `json:"error"`
}

const listTracesDescription = `List runs (traces), newest first, optionally only one program's or only those with a status.

Use it to find a run's trace_id, see what is still suspended (status "suspended") or interrupted (status "running" with no request in progress), or review recent activity. Pages: limit (default 20, at most 100); pass next_cursor as cursor for the next page. Read-only.

Example: {"status":"suspended","limit":10}`

func listTracesDef() toolDef {
	return toolDef{
		name:        "list_traces",
		title:       "List runs",
		description: listTracesDescription,
		input: closed(map[string]any{
			"program_id": str("Only runs of this saved program."),
			"status":     statusEnum("Only runs with this status."),
			"limit":      intRange("Runs per page.", 1, 100, 20),
			"cursor":     str("next_cursor from the previous page."),
		}),
		output: object(map[string]any{
			"traces": array("Runs, newest first.", object(map[string]any{
				"trace_id":        str("The run's id."),
				"program_id":      str("The saved program's id, if any."),
				"program_name":    str("The program's name."),
				"status":          statusEnum("The run's status."),
				"idempotency_key": str("The key the run was started with."),
				"created_at":      str("RFC 3339 time."),
				"updated_at":      str("RFC 3339 time."),
			}, "trace_id", "status")),
			"next_cursor": str("Pass as cursor for the next page; absent on the last page."),
			"skipped": array("Stored runs in this page's range whose record could not be read back (written by an older release, or damaged); the listing goes on past them, and get_trace names what is wrong.", object(map[string]any{
				"trace_id": str("The run's id."),
				"error":    str("Why its record could not be decoded."),
			}, "trace_id", "error")),
		}, "traces"),
		readOnly:    true,
		destructive: false,
		idempotent:  true,
		openWorld:   false,
		handler:     withArgs((*Server).listTraces),
	}
}

func (s *Server) listTraces(ctx context.Context, req mcp.CallToolRequest, a listTracesArgs) (any, error) {
	limit, err := intArg("limit", a.Limit, 20, 1, 100)
	if err != nil {
		return nil, err
	}
	if a.Status != "" && !kernel.Status(a.Status).Valid() {
		return nil, argError("argument \"status\": %s is not one of %v", store.Clip(a.Status), kernel.Statuses())
	}
	if a.Cursor != "" {
		// The store reports a bad cursor as a plain error; it is the
		// caller's to fix, so check its shape (base64url of a time key)
		// here.
		if b, err := base64.RawURLEncoding.DecodeString(a.Cursor); err != nil || len(b) < 8 {
			return nil, argError("argument \"cursor\": not a cursor this server issued; start again without one")
		}
	}
	page, err := s.rt.Traces(ctx, store.RunFilter{ProgramID: a.ProgramID, Status: kernel.Status(a.Status), Limit: limit, Cursor: a.Cursor})
	if err != nil {
		return nil, err
	}
	out := traceList{Traces: []runtime.RunSummary{}, NextCursor: page.NextCursor}
	for _, sk := range page.Skipped {
		out.Skipped = append(out.Skipped, skippedTrace{TraceID: clipText(sk.ID, maxIDBytes), Error: clipText(sk.Error, maxErrorBytes/4)})
	}
	// Names and keys are the clients': clipped, harder when a full page of
	// long ones would not fit.
	for _, n := range []int{maxIDBytes / 4, 40} {
		out.Traces = out.Traces[:0]
		clip := func(s string) string { return clipText(s, n) }
		for _, e := range page.Runs {
			out.Traces = append(out.Traces, runtime.SummariseRun(e, clip))
		}
		if b, err := json.Marshal(out); err == nil && len(b) <= MaxResultBytes {
			break
		}
	}
	return out, nil
}
