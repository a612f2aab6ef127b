package mcpserver

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/nanovm/nano-vm-mcp/internal/jsonlimit"
	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/store"
)

// Registered tools are MCP tools: every registered tool the policy lets
// run and the operator exposes (Options.ExposeTools) is listed in
// tools/list beside the management tools, and calling it runs it as a
// one-step governed program (runtime.CallTool). See .rationale/mcp.md
// "Why are registered tools MCP tools, and how are their names chosen?".

// MetaIdempotencyKey is the _meta key of a direct tool call's idempotency
// key: tools/call params {"name": "…", "arguments": {…}, "_meta":
// {"nanovm/idempotency_key": "order-42"}}. The arguments are the tool's
// own, so the key cannot travel among them.
const MetaIdempotencyKey = "nanovm/idempotency_key"

// MetaTraceID is the _meta key of a direct tool call's result that holds
// the run's trace_id (also in the structured content).
const MetaTraceID = "nanovm/trace_id"

// ExposedPrefix is prepended to a registered tool's name when the name is
// a management tool's: a tool registered as "get_trace" is listed as
// "tool.get_trace".
const ExposedPrefix = "tool."

// ExposeTools says which registered tools are listed as MCP tools. The
// zero value exposes all of them.
type ExposeTools struct {
	none  bool
	names map[string]bool // nil: every tool
}

// ExposeAll and ExposeNone are the two ends of ExposeTools.
var (
	ExposeAll  = ExposeTools{}
	ExposeNone = ExposeTools{none: true}
)

// mcpNameRE is what MCP (2025-11-25) allows as a tool name.
var mcpNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// ParseExposeTools reads the operator's --expose-tools value: "all" (or
// ""), "none", or a comma-separated list of registered tool names.
func ParseExposeTools(s string) (ExposeTools, error) {
	switch strings.TrimSpace(s) {
	case "", "all":
		return ExposeAll, nil
	case "none":
		return ExposeNone, nil
	}
	e := ExposeTools{names: map[string]bool{}}
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !mcpNameRE.MatchString(p) || p == "all" || p == "none" {
			return ExposeTools{}, fmt.Errorf("parse expose-tools: %q is not a tool name (want all, none, or tool names separated by commas)", jsonlimit.Excerpt(p, 100))
		}
		e.names[p] = true
	}
	if len(e.names) == 0 {
		return ExposeTools{}, fmt.Errorf("parse expose-tools: %q names no tool (want all, none, or tool names separated by commas)", jsonlimit.Excerpt(s, 100))
	}
	return e, nil
}

// String is the value ParseExposeTools reads back.
func (e ExposeTools) String() string {
	switch {
	case e.none:
		return "none"
	case e.names == nil:
		return "all"
	}
	names := make([]string, 0, len(e.names))
	for n := range e.names {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

func (e ExposeTools) allows(name string) bool {
	if e.none {
		return false
	}
	return e.names == nil || e.names[name]
}

// exposedTool is one registered tool as listed.
type exposedTool struct {
	name  string // registered name
	stamp string // what the listing depends on: module, manifest, source
}

// managementNames are the names of the management tools, listed or not
// (register_tool stays reserved when uploads are off).
func managementNames() map[string]bool {
	out := map[string]bool{}
	for _, d := range (&Server{}).toolDefs() {
		out[d.name] = true
	}
	return out
}

// exposedNames maps each registered name to the name it is listed under:
// its own, or ExposedPrefix+name when its own is a management tool's; a
// name that is not a valid MCP tool name, or whose prefixed form is
// itself registered, is not listed (""). Registered names win over
// prefixed ones.
func exposedNames(registered []string, mgmt map[string]bool) map[string]string {
	taken := map[string]bool{}
	for _, n := range registered {
		taken[n] = true
	}
	out := make(map[string]string, len(registered))
	for _, n := range registered {
		name := n
		if mgmt[n] {
			name = ExposedPrefix + n
			if taken[name] {
				name = ""
			}
		}
		if !mcpNameRE.MatchString(name) {
			name = ""
		}
		out[n] = name
	}
	return out
}

// syncExposed makes the listed registered tools what the registry, the
// policy and the operator's choice say now. mcp-go sends
// notifications/tools/list_changed to every initialized session (stdio,
// HTTP, and every process forwarding to this primary) when the set
// changes; nothing is sent when it did not.
func (s *Server) syncExposed(ctx context.Context) {
	s.exposedMu.Lock()
	defer s.exposedMu.Unlock()
	if s.opts.ExposeTools.none {
		return
	}
	recs, err := s.rt.Tools(ctx)
	if err != nil {
		s.log.Error("list registered tools for tools/list", "err", err)
		return
	}
	names := make([]string, 0, len(recs))
	for _, r := range recs {
		names = append(names, r.Name)
	}
	listed := exposedNames(names, s.mgmt)
	want := map[string]exposedTool{}
	var add []server.ServerTool
	for _, rec := range recs {
		mcpName := listed[rec.Name]
		if mcpName == "" {
			if s.opts.ExposeTools.allows(rec.Name) {
				s.log.Warn("registered tool not listed in tools/list: its name and "+ExposedPrefix+"<name> are both taken", "tool", rec.Name)
			}
			continue
		}
		if !s.opts.ExposeTools.allows(rec.Name) || !s.rt.ToolRunnable(rec.Name, rec.EffectiveSource()) {
			continue
		}
		e := exposedTool{name: rec.Name, stamp: rec.ModuleSHA256 + "/" + rec.ManifestSHA256 + "/" + string(rec.EffectiveSource())}
		want[mcpName] = e
		if s.exposed[mcpName] == e {
			continue
		}
		t, err := exposedMCPTool(mcpName, rec)
		if err != nil {
			s.log.Warn("registered tool not listed in tools/list", "tool", rec.Name, "err", err)
			delete(want, mcpName)
			continue
		}
		add = append(add, server.ServerTool{Tool: t, Handler: s.callExposed(mcpName, rec.Name)})
	}
	var drop []string
	for n := range s.exposed {
		if _, ok := want[n]; !ok {
			drop = append(drop, n)
		}
	}
	sort.Strings(drop)
	if len(drop) > 0 {
		s.mcp.DeleteTools(drop...)
	}
	if len(add) > 0 {
		s.mcp.AddTools(add...)
	}
	s.exposed = want
}

// exposedManifest is what the listing reads of a manifest.
type exposedManifest struct {
	Description  string          `json:"description"`
	Version      string          `json:"version"`
	InputSchema  json.RawMessage `json:"input_schema"`
	OutputSchema json.RawMessage `json:"output_schema"`
	Capabilities []string        `json:"capabilities"`
}

// exposedMCPTool is a registered tool's listing.
func exposedMCPTool(mcpName string, rec store.ToolRecord) (mcp.Tool, error) {
	var m exposedManifest
	if err := json.Unmarshal(rec.Manifest, &m); err != nil {
		return mcp.Tool{}, fmt.Errorf("list tool %q: decode its manifest: %w", rec.Name, err)
	}
	in, err := json.Marshal(exposedInputSchema(m.InputSchema))
	if err != nil {
		return mcp.Tool{}, fmt.Errorf("list tool %q: input schema: %w", rec.Name, err)
	}
	out, err := json.Marshal(exposedOutputSchema(m.OutputSchema))
	if err != nil {
		return mcp.Tool{}, fmt.Errorf("list tool %q: output schema: %w", rec.Name, err)
	}
	network := false
	if rec.Grants != nil {
		_, network = rec.Grants["nanovm:http"]
	} else {
		network = slices.Contains(m.Capabilities, "nanovm:http")
	}
	return mcp.Tool{
		Name:            mcpName,
		Description:     exposedDescription(rec.Name, m.Description),
		RawInputSchema:  in,
		RawOutputSchema: out,
		Annotations: mcp.ToolAnnotation{
			// What a tool does is its own: nothing here says it is safe
			// to repeat or harmless, so the hints are MCP's defaults,
			// stated; open-world only when it may reach the network.
			ReadOnlyHint:    mcp.ToBoolPtr(false),
			DestructiveHint: mcp.ToBoolPtr(true),
			IdempotentHint:  mcp.ToBoolPtr(false),
			OpenWorldHint:   mcp.ToBoolPtr(network),
		},
	}, nil
}

// exposedDescription is the manifest's description, clipped under
// Claude Code's 2 KB, or a generic one when the manifest has none.
func exposedDescription(name, desc string) string {
	desc = strings.TrimSpace(desc)
	if desc == "" {
		desc = fmt.Sprintf("Registered tool %q, run in the WebAssembly sandbox as a one-step governed program (policy, audit envelope, trace).", name)
	}
	if len(desc) >= maxDescription {
		desc = clipText(desc, maxDescription-64)
	}
	return desc
}

// exposedInputSchema is the manifest's input schema when it describes an
// object (a schema without a type is given type object, which the tool
// ABI requires anyway), else an open object: MCP requires an object
// schema, and the sandbox checks the manifest's schema at every call.
func exposedInputSchema(raw json.RawMessage) map[string]any {
	open := map[string]any{"type": "object"}
	var m map[string]any
	if len(raw) == 0 || json.Unmarshal(raw, &m) != nil || m == nil {
		return open
	}
	switch t := m["type"].(type) {
	case nil:
		m["type"] = "object"
		return m
	case string:
		if t == "object" {
			return m
		}
	}
	return open
}

// clippedSchema describes the stand-in of an output too large to return.
func clippedSchema() map[string]any {
	return object(map[string]any{
		"truncated": boolean("Always true: the output was too large and this is a preview."),
		"bytes":     integer("Size of the whole output's JSON."),
		"preview":   str("The start of the output's JSON."),
	}, "truncated", "bytes", "preview")
}

// exposedOutputSchema wraps the manifest's output schema: MCP requires an
// object, and the result carries the trace_id beside the tool's output,
// so the output is always under "output" whatever its type. A manifest
// schema whose $refs point anywhere but its own $defs (or definitions)
// cannot be moved under "output" intact, and is described as any value.
func exposedOutputSchema(raw json.RawMessage) map[string]any {
	output := anyValue("The tool's output (secret references hashed); a large output is a {truncated, bytes, preview} object.")
	var defs map[string]any
	if ms, ok := movableSchema(raw); ok {
		for _, k := range []string{"$defs", "definitions"} {
			if d, ok := ms[k]; ok {
				if defs == nil {
					defs = map[string]any{}
				}
				defs[k] = d
				delete(ms, k)
			}
		}
		output = map[string]any{
			"description": "The tool's output, as its manifest's output_schema says (secret references hashed); a large output is a {truncated, bytes, preview} object instead.",
			"anyOf":       []any{ms, clippedSchema()},
		}
	}
	sch := object(map[string]any{
		"output":            output,
		"trace_id":          str("The run's id: get_trace shows the step, verify_audit checks its envelope."),
		"status":            enum("How the call ended.", string(kernel.StatusSuccess), string(kernel.StatusSuspended)),
		"output_truncated":  boolean("True when output is a preview of a large value."),
		"stored_outcome":    boolean("True when the idempotency key returned an earlier call's stored outcome; nothing ran again."),
		"idempotent_replay": deprecatedField("boolean", "stored_outcome"),
		"suspended_step_id": str("Set when the tool answered PENDING: resume_program with trace_id continues it."),
		"next":              str("What to do next, when there is something to do."),
	}, "trace_id", "status")
	for k, v := range defs {
		sch[k] = v
	}
	return sch
}

// movableSchema decodes a manifest's output schema and reports whether
// it can sit under "output": an object schema whose every $ref is to its
// own $defs or definitions (hoisted to the root), without $schema or $id
// (dropped: they belong to a root).
func movableSchema(raw json.RawMessage) (map[string]any, bool) {
	var m map[string]any
	if len(raw) == 0 || json.Unmarshal(raw, &m) != nil || m == nil {
		return nil, false
	}
	delete(m, "$schema")
	delete(m, "$id")
	ok := true
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if k == "$ref" || k == "$dynamicRef" {
					ref, _ := e.(string)
					if !strings.HasPrefix(ref, "#/$defs/") && !strings.HasPrefix(ref, "#/definitions/") {
						ok = false
					}
				}
				if k == "$id" || k == "$anchor" || k == "$dynamicAnchor" {
					ok = false
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(m)
	return m, ok
}

// exposedResult is a direct call's structured content.
type exposedResult struct {
	Output          any           `json:"output,omitempty"`
	TraceID         string        `json:"trace_id"`
	Status          kernel.Status `json:"status"`
	OutputTruncated bool          `json:"output_truncated,omitempty"`
	StoredOutcome   bool          `json:"stored_outcome,omitempty"`
	// IdempotentReplay repeats StoredOutcome under its earlier name.
	// Deprecated: written for one release.
	IdempotentReplay bool   `json:"idempotent_replay,omitempty"`
	SuspendedStepID  string `json:"suspended_step_id,omitempty"`
	Next             string `json:"next,omitempty"`
}

// callExposed is the handler of registered tool name, listed as mcpName.
func (s *Server) callExposed(mcpName, name string) server.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		res, err := s.runExposed(ctx, name, req)
		if err != nil {
			return s.errorResult(mcpName, err), nil
		}
		return res, nil
	}
}

func (s *Server) runExposed(ctx context.Context, name string, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	raw, err := rawArguments(req)
	if err != nil {
		return nil, err
	}
	args, err := objectMap("arguments", raw)
	if err != nil {
		return nil, err
	}
	var key string
	if req.Params.Meta != nil {
		if v, ok := req.Params.Meta.AdditionalFields[MetaIdempotencyKey]; ok && v != nil {
			k, isString := v.(string)
			if !isString {
				return nil, argError("_meta %q: want a string, got %T", MetaIdempotencyKey, v)
			}
			if err := store.CheckIdempotencyKey(k); err != nil {
				return nil, argError("_meta %q: %v", MetaIdempotencyKey, err)
			}
			key = k
		}
	}
	res, err := s.startRun(ctx, req, func(ctx context.Context, progress func(runtime.Progress)) (*runtime.RunResult, error) {
		return s.rt.CallTool(ctx, runtime.ToolCall{Tool: name, Args: args, IdempotencyKey: key, Progress: progress})
	})
	if err != nil {
		return nil, err
	}
	return s.exposedResult(res)
}

// exposedResult turns a direct call's run into its MCP result.
func (s *Server) exposedResult(res *runtime.RunResult) (*mcp.CallToolResult, error) {
	switch res.Status {
	case kernel.StatusSuccess, kernel.StatusSuspended:
	default:
		msg := res.Error
		if msg == "" {
			msg = "the call ended with status " + string(res.Status)
		}
		return nil, &runtime.Error{
			Code:    "tool_failed",
			Message: clipText(msg, maxErrorBytes) + " (get_trace with this trace_id shows the step)",
			Details: map[string]any{"trace_id": res.TraceID, "status": res.Status},
		}
	}
	out := exposedResult{TraceID: res.TraceID, Status: res.Status, StoredOutcome: res.StoredOutcome, IdempotentReplay: res.StoredOutcome}
	if res.Status == kernel.StatusSuspended {
		out.SuspendedStepID = clipText(res.SuspendedStepID, maxIDBytes)
		out.Next = fmt.Sprintf("The tool answered PENDING: call resume_program with trace_id %q and the awaited event as payload when it arrives.", res.TraceID)
	} else {
		out.Output, out.OutputTruncated = clip(res.FinalOutput, MaxResultBytes-2_000)
	}
	text, err := json.Marshal(out)
	if err == nil && len(text) > MaxResultBytes {
		// Text that escapes to several times its size: clip harder.
		out.Output, out.OutputTruncated = clip(res.FinalOutput, (MaxResultBytes-2_000)/8)
		text, err = json.Marshal(out)
	}
	if err != nil {
		return nil, fmt.Errorf("encode result: %w", err)
	}
	if out.OutputTruncated {
		out.Next = "output is a preview of a large value: `nano-vm-mcp trace show " + res.TraceID + "` prints it whole, and get_trace shows the step."
		if text, err = json.Marshal(out); err != nil {
			return nil, fmt.Errorf("encode result: %w", err)
		}
	}
	r := mcp.NewToolResultStructured(json.RawMessage(text), string(text))
	r.Meta = &mcp.Meta{AdditionalFields: map[string]any{MetaTraceID: res.TraceID}}
	return r, nil
}
