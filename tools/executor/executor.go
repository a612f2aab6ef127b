// Package executor adapts the tool registry to kernel.ToolExecutor. It is
// the only part of tools that imports kernel, so the sandbox builds and
// tests on its own.
package executor

import (
	"context"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/tools"
)

// Executor runs kernel tool calls as sandboxed WebAssembly calls.
type Executor struct {
	reg *tools.Registry
}

// New returns an Executor over reg.
func New(reg *tools.Registry) *Executor { return &Executor{reg: reg} }

// Execute implements kernel.ToolExecutor. The output is returned as the
// guest wrote it, so "PENDING" and {"status":"PENDING"} reach the kernel
// unchanged; a guest {"error": ...}, a non-zero exit or a sandbox limit is
// the returned error, with whatever log the guest wrote still in the
// result.
func (e *Executor) Execute(ctx context.Context, call kernel.ToolCall) (kernel.ToolResult, error) {
	res, err := e.reg.Call(ctx, call.Tool, tools.CallRequest{
		ExecutionID: call.ExecutionID,
		Args:        call.Args,
		Timeout:     call.Timeout,
	})
	out := kernel.ToolResult{Output: res.Output, Log: res.Log}
	if res.ModuleSHA256 != "" {
		out.Provenance = &kernel.ToolProvenance{ModuleSHA256: res.ModuleSHA256, ManifestSHA256: res.ManifestSHA256}
	}
	if err != nil {
		out.Output = nil
		return out, err
	}
	return out, nil
}

var _ kernel.ToolExecutor = (*Executor)(nil)
