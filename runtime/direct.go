package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"

	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/store"
)

// DirectProgramPrefix starts the name of the one-step program CallTool
// runs: "tool:<name>".
const DirectProgramPrefix = "tool:"

// DirectStepID is the id of CallTool's one step.
const DirectStepID = "call"

// ToolCall asks to call one registered tool directly.
type ToolCall struct {
	// Tool is the registered name (or a pinned "name@sha256:<hex>").
	Tool string
	// Args are the tool's arguments, passed to it as they are; nil means
	// {}.
	Args map[string]any
	// IdempotencyKey, when set, makes the call happen at most once per
	// key, as RunRequest.IdempotencyKey.
	IdempotencyKey string
	// Progress, when set, is called after the durable step.
	Progress func(Progress)
}

// plainKeyRE is an argument name a $reference can name as it is: one
// reference segment without dots.
var plainKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// CallTool calls one tool as a one-step governed program,
//
//	{"name": "tool:<name>", "steps": [{"id": "call", "type": "tool", "tool": <name>, "args": {…}}]}
//
// through RunProgram: the same policy check, sandbox, step record,
// envelope, trace and idempotency as any run. The arguments travel as the
// run's input and the step's args are $references to them, so no argument
// value is ever read as a $reference of its own; an argument whose name a
// reference cannot spell (a dot, a space, a leading digit) is carried
// under a generated input key "arg_<n>". The tool's output is the run's
// final output; a tool that fails leaves a failed run (Status "failed",
// Error its message), not an error.
func (rt *Runtime) CallTool(ctx context.Context, c ToolCall) (*RunResult, error) {
	prog, input, err := directProgram(c.Tool, c.Args)
	if err != nil {
		return nil, err
	}
	return rt.RunProgram(ctx, RunRequest{Program: prog, Input: input, IdempotencyKey: c.IdempotencyKey, Progress: c.Progress})
}

// directProgram builds CallTool's program and input.
func directProgram(tool string, args map[string]any) (json.RawMessage, map[string]any, error) {
	if tool == "" {
		return nil, nil, newError(CodeInvalidArgument, nil, "call a tool: no tool named")
	}
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	input := make(map[string]any, len(args))
	stepArgs := make(map[string]any, len(args))
	var odd []string
	for _, k := range keys {
		if plainKeyRE.MatchString(k) {
			input[k] = args[k]
			stepArgs[k] = "$" + k
		} else {
			odd = append(odd, k)
		}
	}
	n := 0
	for _, k := range odd {
		var ik string
		for {
			ik = "arg_" + strconv.Itoa(n)
			n++
			if _, taken := input[ik]; !taken {
				break
			}
		}
		input[ik] = args[k]
		stepArgs[k] = "$" + ik
	}
	step := map[string]any{"id": DirectStepID, "type": string(kernel.StepTool), "tool": tool, "is_terminal": true}
	if len(stepArgs) > 0 {
		step["args"] = stepArgs
	}
	prog, err := json.Marshal(map[string]any{"name": DirectProgramPrefix + tool, "steps": []any{step}})
	if err != nil {
		return nil, nil, fmt.Errorf("call tool %q: build its program: %w", tool, err)
	}
	return prog, input, nil
}

// ToolRunnable reports whether the policy lets a tool of this name,
// registered by src, run: the check RunProgram makes before a run starts
// (the registry still decides each call by the exact version's source).
func (rt *Runtime) ToolRunnable(name string, src store.ToolSource) bool {
	prog := &kernel.Program{Steps: []kernel.Step{{ID: DirectStepID, Type: kernel.StepTool, Tool: name}}}
	return rt.policy.Check(prog, func(string) store.ToolSource { return src }) == nil
}

// OnToolsChanged registers f, called after every tool registration or
// removal made through this runtime (RegisterTool, RegisterToolLocal,
// RemoveTool, RemoveToolLocal), once the change is stored, on the
// caller's goroutine. The tools a runtime registers while it opens (the
// bundled set, the tools folder) call nothing: they are there before
// anyone listens. Register listeners before serving.
func (rt *Runtime) OnToolsChanged(f func()) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.toolsChanged = append(rt.toolsChanged, f)
}

func (rt *Runtime) notifyToolsChanged() {
	rt.mu.Lock()
	fs := rt.toolsChanged
	rt.mu.Unlock()
	for _, f := range fs {
		f()
	}
}
