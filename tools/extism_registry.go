package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nanovm/nano-vm-mcp/internal/jsonlimit"
	"github.com/nanovm/nano-vm-mcp/internal/toolrecord"
	"github.com/nanovm/nano-vm-mcp/kernel"
	"github.com/nanovm/nano-vm-mcp/tools/internal/wasmbin"
)

// maxPluginTools bounds the tools one plugin may describe.
const maxPluginTools = 64

// PluginTool is one tool a plugin describes (an MCP Tool).
type PluginTool struct {
	Name         string          `json:"name"`
	Description  string          `json:"description,omitempty"`
	InputSchema  json.RawMessage `json:"inputSchema,omitempty"`
	OutputSchema json.RawMessage `json:"outputSchema,omitempty"`
}

// IsPlugin reports whether wasm is an Extism plugin, one that imports
// from extism:host/env: what RegisterPlugin registers. It reads the module
// structurally under the host's module ceilings and answers false for
// anything it cannot read (registration then says why).
func (r *Registry) IsPlugin(wasm []byte) bool {
	if !bytes.Contains(wasm, []byte(extismEnvModule)) || int64(len(wasm)) > r.host.limits.ModuleBytes {
		return false
	}
	pm, err := wasmbin.Parse(wasm, r.host.limits.parseLimits())
	if err != nil {
		return false
	}
	for _, im := range pm.Imports {
		if im.Module == extismEnvModule {
			return true
		}
	}
	return false
}

// RegisterPlugin registers an Extism plugin in one of hyper-mcp's shapes as
// one tool per tool it describes: it admits the module under m (gate A on
// m's grant, as RegisterAs does), runs its describe or list_tools export
// once under m's limits, and registers each described tool under its own
// name, with its description and input schema and the rest of m (grants,
// allowed hosts, config, limits). Every entry shares the module's hash. A
// described name must be a valid tool name. The records come back in the
// order the plugin listed them; a failure part way names the tools already
// registered.
func (r *Registry) RegisterPlugin(ctx context.Context, src toolrecord.Source, m Manifest, wasm []byte) ([]toolrecord.Record, error) {
	return r.RegisterPluginFrom(ctx, src, nil, m, wasm)
}

// RegisterPluginFrom is RegisterPlugin for a module whose provenance (an
// OCI artifact and its verified signer) each version record keeps.
func (r *Registry) RegisterPluginFrom(ctx context.Context, src toolrecord.Source, prov *toolrecord.Provenance, m Manifest, wasm []byte) ([]toolrecord.Record, error) {
	fail := func(err error) ([]toolrecord.Record, error) {
		return nil, fmt.Errorf("register plugin %q: %w", m.Name, err)
	}
	if err := m.Validate(); err != nil {
		return fail(err)
	}
	if err := r.host.opts.Ceilings.check(&m); err != nil {
		return fail(err)
	}
	g, err := r.grant(GrantRequest{Name: m.Name, ModuleSHA256: sha256Hex(wasm), Source: src, Manifest: &m, Provenance: prov})
	if err != nil {
		return fail(err)
	}
	if err := g.within(&m); err != nil {
		return fail(err)
	}
	granted, auth := g.effective(&m)
	cm, err := r.host.load(ctx, wasm, func(cm *compiledModule) error {
		if cm.extism == "" {
			return detail(ErrInvalidModule, "not an Extism plugin: it imports nothing from %s", extismEnvModule)
		}
		return r.admit(&m, cm, granted)
	})
	if err != nil {
		return fail(err)
	}
	t, err := r.host.prepare(ctx, toolrecord.Record{Name: m.Name, ModuleSHA256: cm.sha256}, m, cm, granted)
	if err != nil {
		return fail(err)
	}
	t.Source, t.Authority = src, auth
	described, err := t.describe(ctx)
	if err != nil {
		return fail(err)
	}
	var manifests []Manifest
	for _, d := range described {
		mi := m
		mi.Name, mi.Description, mi.InputSchema, mi.OutputSchema = d.Name, d.Description, d.InputSchema, d.OutputSchema
		if err := mi.Validate(); err != nil {
			return fail(fmt.Errorf("described tool %q: %w", d.Name, err))
		}
		manifests = append(manifests, mi)
	}
	var recs []toolrecord.Record
	for _, mi := range manifests {
		rec, err := r.RegisterFrom(ctx, src, prov, mi, wasm)
		if err != nil {
			var done []string
			for _, r := range recs {
				done = append(done, r.Name)
			}
			return nil, fmt.Errorf("register plugin %q: tool %q (registered before it: %v): %w", m.Name, mi.Name, done, err)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// describe runs the plugin's describe (v1) or list_tools (v2) export and
// reads its ListToolsResult.
func (t *Tool) describe(ctx context.Context) ([]PluginTool, error) {
	shape := t.mod.extism
	var input []byte
	if shape == ExtismV2 {
		input = []byte(`{"context":{"id":"describe","_meta":{}}}`)
	}
	out, _, err := t.invokePlugin(ctx, "", 0, nil, shape.listExport(), input)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", shape.listExport(), err)
	}
	var list struct {
		Tools []PluginTool `json:"tools"`
	}
	if err := jsonlimit.Check(out); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", shape.listExport(), ErrInvalidOutput, err)
	}
	if err := json.Unmarshal(out, &list); err != nil {
		return nil, fmt.Errorf("%s: %w: not a ListToolsResult: %v; %s", shape.listExport(), ErrInvalidOutput, err, outputExcerpt(out, -1))
	}
	switch {
	case len(list.Tools) == 0:
		return nil, fmt.Errorf("%s: %w: the plugin describes no tool", shape.listExport(), ErrInvalidOutput)
	case len(list.Tools) > maxPluginTools:
		return nil, fmt.Errorf("%s: %w: the plugin describes %d tools, at most %d are taken", shape.listExport(), ErrInvalidOutput, len(list.Tools), maxPluginTools)
	}
	seen := map[string]bool{}
	for _, d := range list.Tools {
		if !nameRE.MatchString(d.Name) {
			return nil, fmt.Errorf("%s: %w: tool name %q must match %s", shape.listExport(), ErrInvalidManifest, d.Name, nameRE)
		}
		if seen[d.Name] {
			return nil, fmt.Errorf("%s: %w: tool %q described twice", shape.listExport(), ErrInvalidManifest, d.Name)
		}
		seen[d.Name] = true
	}
	return list.Tools, nil
}

// pluginInput is the input of a plugin's call export for one call of the
// tool named name.
func pluginInput(shape ExtismShape, name, traceID string, args map[string]any) ([]byte, error) {
	req := map[string]any{"name": name, "arguments": args}
	if shape == ExtismV2 {
		return json.Marshal(map[string]any{"request": req, "context": map[string]any{"id": traceID, "_meta": map[string]any{}}})
	}
	return json.Marshal(map[string]any{"params": req})
}

// callToolResult is the part of an MCP CallToolResult a call reads.
type callToolResult struct {
	Content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
	StructuredContent json.RawMessage `json:"structuredContent"`
	IsError           bool            `json:"isError"`
}

// callPlugin is Call for a plugin: the arguments go to the call export
// under the tool's name; the result is the CallToolResult's
// structuredContent when it has one, else the whole CallToolResult; an
// isError result fails the call with its text.
func (t *Tool) callPlugin(ctx context.Context, req CallRequest) (CallResult, error) {
	name := t.Manifest.Name
	res := CallResult{ModuleSHA256: t.Record.ModuleSHA256, ManifestSHA256: t.Record.ManifestSHA256, Source: t.Source, Grants: t.Authority, Provenance: t.Record.Provenance}
	args := req.Args
	if args == nil {
		args = map[string]any{}
	}
	enc, err := json.Marshal(args)
	if err != nil {
		return res, fmt.Errorf("tool %q: encode args: %w: %w", name, ErrInvalidArgs, err)
	}
	if t.input != nil && (t.inputQuick == nil || !t.inputQuick.accepts(args)) {
		if err := validateValue(t.input, args, enc); err != nil {
			return res, fmt.Errorf("tool %q: %w: %w", name, ErrInvalidArgs, clipErr(err))
		}
	}
	input, err := pluginInput(t.mod.extism, name, req.TraceID, args)
	if err != nil {
		return res, fmt.Errorf("tool %q: encode args: %w: %w", name, ErrInvalidArgs, err)
	}
	out, log, err := t.invokePlugin(ctx, req.TraceID, req.Timeout, args, t.mod.extism.callExport(), input)
	res.Log = log
	if err != nil {
		return res, err
	}
	var ctr callToolResult
	if err := jsonlimit.Check(out); err != nil {
		return res, fmt.Errorf("tool %q: %w: %w", name, ErrInvalidOutput, err)
	}
	if err := json.Unmarshal(out, &ctr); err != nil {
		return res, fmt.Errorf("tool %q: %w: the plugin's output is not a CallToolResult: %v; %s", name, ErrInvalidOutput, err, outputExcerpt(out, -1))
	}
	if ctr.IsError {
		var texts []string
		for _, c := range ctr.Content {
			if c.Type == "text" {
				texts = append(texts, c.Text)
			}
		}
		return res, fmt.Errorf("tool %q: %w", name, detail(ErrToolFailed, "%s", jsonlimit.Excerpt(strings.Join(texts, "\n"), maxErrorExcerpt)))
	}
	raw := out
	if len(ctr.StructuredContent) > 0 && string(ctr.StructuredContent) != "null" {
		raw = ctr.StructuredContent
	}
	v, err := decodeOutput(raw)
	if err != nil {
		return res, fmt.Errorf("tool %q: %w", name, err)
	}
	if t.output != nil && !kernel.IsPending(v) && (t.outputQuick == nil || !t.outputQuick.accepts(v)) {
		if err := validateValue(t.output, v, raw); err != nil {
			return res, fmt.Errorf("tool %q: %w: %w", name, ErrInvalidOutput, clipErr(err))
		}
	}
	res.Output = v
	return res, nil
}

// invokePlugin runs one export of t with input under t's limits (as Call
// does: the timeout, the memory ceiling and budget, the output and log
// caps) and returns the plugin's output and log, both scrubbed of
// resolved secrets.
func (t *Tool) invokePlugin(ctx context.Context, traceID string, timeoutOverride time.Duration, args map[string]any, fn string, input []byte) ([]byte, string, error) {
	name := t.Manifest.Name
	timeout := t.lim.timeout
	if timeoutOverride > 0 {
		timeout = min(timeoutOverride, t.host.opts.Ceilings.CallTimeout)
	}
	dl := newDeadline(ctx, timeout)
	defer releaseDeadline(dl)
	tctx := context.Context(dl)
	st := &callState{tool: t, traceID: traceID, dl: dl, memLimit: t.lim.memory - min(t.mod.tableBytes, t.lim.memory)}
	defer st.detach() // before the release: no late fail cancels a later call
	// A plugin's WASI stdout is a log, not its result (that is output_set).
	st.stdout = capWriter{max: t.lim.stderr, state: st}
	st.stderr = capWriter{max: t.lim.stderr, state: st}
	if t.caps[CapSecrets] {
		st.argRefs = argRefs(args)
	}
	st.ctx = callCtx{Context: tctx, st: st}
	share, err := t.host.enterCall(&st.ctx)
	if err != nil {
		return nil, "", fmt.Errorf("tool %q: %w", name, err)
	}
	out, runErr := t.runExtism(&st.ctx, st, fn, input)
	t.host.leaveCall(share)
	logb := append(append([]byte(nil), st.stdout.bytes()...), st.stderr.bytes()...)
	logb = st.scrub(logb)
	log := string(logb)
	if st.stderr.truncated || st.stdout.truncated {
		log += "\n[log truncated]"
	}
	log = st.withAttempts(log)
	if errors.Is(runErr, ErrToolFailed) && st.failed() == nil {
		return nil, log, fmt.Errorf("tool %q: %w", name, runErr)
	}
	if errors.Is(runErr, ErrInvalidModule) && st.failed() == nil {
		return nil, log, fmt.Errorf("tool %q: %w", name, runErr)
	}
	if err := t.classify(ctx, tctx, st, runErr, timeout, logb); err != nil {
		return nil, log, err
	}
	return st.scrub(out), log, nil
}
