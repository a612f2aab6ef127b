package kernel

import (
	"context"
	"time"
)

// ToolExecutor runs one tool call on behalf of a tool step. The kernel never
// knows how a tool is implemented; the gateway supplies an executor that
// checks policy and runs a sandboxed WebAssembly module.
//
// Execute must honour ctx: when ctx is done the call must return promptly.
// A returned error is a tool failure handled by the step's on_error policy.
type ToolExecutor interface {
	Execute(ctx context.Context, call ToolCall) (ToolResult, error)
}

// ToolCall is one invocation of a tool by a step.
type ToolCall struct {
	// TraceID is the trace id of the run making the call.
	TraceID string
	// StepID is the id of the step; a sub-step of a parallel step is named
	// "parent/sub".
	StepID string
	// StepIndex is the position of the step in the trace (0-based).
	StepIndex int
	// Attempt counts from 1; retries increment it.
	Attempt int
	// Tool is the tool name as written in the program, possibly pinned as
	// "name@sha256:<hex>".
	Tool string
	// Args are the step's args after $ref resolution.
	Args map[string]any
	// Timeout is the step's timeout_seconds, or zero when the step sets none
	// (the executor then applies its own default).
	Timeout time.Duration
	// State is the variable context the step sees. It is shared: the
	// executor must treat it as read-only. The gateway projects it for the
	// tool (TOOL projection) before the tool sees any of it.
	State map[string]any
}

// ToolResult is what a tool returned.
type ToolResult struct {
	// Output is the tool's result decoded from JSON (nil, bool, float64,
	// string, []any or map[string]any). The string "PENDING" or an object
	// {"status":"PENDING"} suspends the run.
	Output any
	// Log is what the tool wrote to its log (stderr), already size-capped.
	Log string
	// Provenance names the exact code that ran, for the audit trail.
	Provenance *ToolProvenance
}

// ToolProvenance identifies the module and manifest a tool call ran, who
// registered that version and who granted each capability it held.
type ToolProvenance struct {
	ModuleSHA256   string `json:"module_sha256"`
	ManifestSHA256 string `json:"manifest_sha256"`
	// Source is who registered the version: "bundled", "operator" or
	// "upload". Empty in records written before sources existed.
	Source string `json:"source,omitempty"`
	// Grants maps each capability the call held to the authority that
	// granted it: "manifest" (an operator tool under the default policy),
	// "policy", "upload-default" or "upload-policy". wasi:stdio, which
	// every tool holds, is not listed.
	Grants map[string]string `json:"grants,omitempty"`
	// Origin is where the module came from when not a file or an upload
	// of bytes: an OCI artifact by digest (oci://HOST/REPO@sha256:…).
	// Empty otherwise and in records written before it existed.
	Origin string `json:"origin,omitempty"`
	// Signer is who signed that artifact, as verified when the version
	// was registered ("key <id> (sha256:…)", "certificate <id> (issuer
	// …, subject …)"); empty when unsigned.
	Signer string `json:"signer,omitempty"`
}

// LLMClient completes a prompt for an llm step.
//
// Complete must honour ctx. A returned error is a step failure handled by the
// step's on_error policy.
type LLMClient interface {
	Complete(ctx context.Context, req LLMRequest) (LLMResponse, error)
}

// LLMRequest is one prompt for an llm step. System and Prompt were built
// from the LLM projection of state only.
type LLMRequest struct {
	TraceID        string
	StepID         string
	StepIndex      int
	Attempt        int
	System         string
	Prompt         string
	AllowedOutputs []string
	Timeout        time.Duration
}

// LLMResponse is a model's answer.
type LLMResponse struct {
	Text  string
	Usage Usage
}

// Clock is the kernel's only source of time. Tests inject a manual clock so
// that retries, backoff and timeouts never sleep for real.
type Clock interface {
	// Now returns the current time; it is recorded only in wall-clock
	// trace fields, never used for a decision.
	Now() time.Time
	// Sleep waits d or until ctx is done, returning ctx.Err() in that case.
	Sleep(ctx context.Context, d time.Duration) error
	// WithTimeout returns a context that is cancelled after d.
	WithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc)
}

// IDSource makes trace ids. The default makes random UUIDv4 strings.
type IDSource interface {
	NewID() string
}

// Observer receives step events as a run proceeds. The gateway uses it to
// persist each step, append audit envelopes and send progress.
//
// StepStarted is called before a step runs; returning an error stops the
// run before the step does anything (an observer that makes steps durable
// asynchronously waits here, before a step that acts outside the sandbox,
// and reports an earlier step it could not make durable).
//
// StepFinished is called synchronously after a step has finished and before
// the next one starts; returning an error stops the run, leaving it
// resumable from the last step the observer accepted.
type Observer interface {
	StepStarted(ctx context.Context, ev StepEvent) error
	StepFinished(ctx context.Context, ev StepEvent) error
}
