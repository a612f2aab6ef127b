// Package executor adapts the tool registry to kernel.ToolExecutor. It is
// the only part of tools that imports kernel, so the sandbox builds and
// tests on its own.
package executor

import (
	"context"
	"maps"

	"github.com/nanovm/nano-vm-mcp/internal/toolrecord"
	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/tools"
)

// ToolID names the version a call runs, for the projection to decide what
// it may see.
type ToolID struct {
	// Name is the bare tool name (a pin "@sha256:…" removed).
	Name string
	// Source is who registered the version: an upload never sees what the
	// policy grants an operator tool of the same name.
	Source toolrecord.Source
	// ModuleSHA256 is the module's hash.
	ModuleSHA256 string
	// SignerID is the policy id of the key or identity that signed the
	// version's OCI artifact, "" when none did.
	SignerID string
}

// ProjectFunc returns the part of state a tool may see: the TOOL
// projection. state is the kernel's full variable map, shared and
// read-only; the returned map is only read (encoded as JSON for
// nanovm.state_get), so it may share values with state.
type ProjectFunc func(tool ToolID, state map[string]any) map[string]any

// Option configures an Executor.
type Option func(*Executor)

// WithProjection makes p decide what state each tool call sees. Without
// it the executor forwards no state at all: a tool holding nanovm:state
// reads {}.
func WithProjection(p ProjectFunc) Option {
	return func(e *Executor) { e.project = p }
}

// CallInfo is what a call ran with beyond what kernel.ToolResult carries,
// for the caller's spans: filled by Execute when the call's context holds
// one (WithCallInfo), left alone otherwise.
type CallInfo struct {
	// Name is the tool's bare name; Source who registered the version.
	Name   string
	Source toolrecord.Source
	// Capabilities are the capabilities the call held, sorted.
	Capabilities []string
	// MemoryBytes is the instance's peak linear memory
	// (tools.CallResult.MemoryBytes).
	MemoryBytes uint64
}

type callInfoKey struct{}

// WithCallInfo returns ctx carrying info, which Execute fills.
func WithCallInfo(ctx context.Context, info *CallInfo) context.Context {
	return context.WithValue(ctx, callInfoKey{}, info)
}

// Executor runs kernel tool calls as sandboxed WebAssembly calls.
type Executor struct {
	reg     *tools.Registry
	project ProjectFunc // nil: tools see no state
}

// New returns an Executor over reg. With no options, tools see no state.
func New(reg *tools.Registry, opts ...Option) *Executor {
	e := &Executor{reg: reg}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Execute implements kernel.ToolExecutor. The output is returned as the
// guest wrote it, so "PENDING" and {"status":"PENDING"} reach the kernel
// unchanged; a guest {"error": ...}, a non-zero exit or a sandbox limit is
// the returned error, with whatever log the guest wrote still in the
// result. call.State is the kernel's full variable map and is never
// forwarded as is: the tool sees only what the projection returns.
func (e *Executor) Execute(ctx context.Context, call kernel.ToolCall) (kernel.ToolResult, error) {
	req := tools.CallRequest{
		TraceID: call.TraceID,
		Args:    call.Args,
		Timeout: call.Timeout,
	}
	t, err := e.reg.Resolve(ctx, call.Tool)
	if err != nil {
		return kernel.ToolResult{}, err
	}
	if e.project != nil {
		id := ToolID{Name: t.Manifest.Name, Source: t.Source, ModuleSHA256: t.Record.ModuleSHA256}
		if p := t.Record.Provenance; p != nil {
			id.SignerID = p.SignerID
		}
		req.State = e.project(id, call.State)
	}
	res, err := t.Call(ctx, req)
	if info, ok := ctx.Value(callInfoKey{}).(*CallInfo); ok {
		info.Name, info.Source, info.MemoryBytes = t.Manifest.Name, t.Source, res.MemoryBytes
		info.Capabilities = make([]string, len(t.Granted))
		for i, c := range t.Granted {
			info.Capabilities[i] = string(c)
		}
	}
	out := kernel.ToolResult{Output: res.Output, Log: res.Log}
	if res.ModuleSHA256 != "" {
		out.Provenance = &kernel.ToolProvenance{ModuleSHA256: res.ModuleSHA256, ManifestSHA256: res.ManifestSHA256, Source: string(res.Source)}
		if len(res.Grants) > 0 {
			out.Provenance.Grants = maps.Clone(res.Grants)
		}
		if p := res.Provenance; p != nil {
			out.Provenance.Origin, out.Provenance.Signer = p.Ref, p.Signer
		}
	}
	if err != nil {
		out.Output = nil
		return out, err
	}
	return out, nil
}

var _ kernel.ToolExecutor = (*Executor)(nil)
