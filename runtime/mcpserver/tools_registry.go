package mcpserver

// The management tools register_tool, list_tools, get_tool and remove_tool: the tool registry.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/store"
)

type toolItem struct {
	Name         string            `json:"name"`
	Version      string            `json:"version,omitempty"`
	Description  string            `json:"description,omitempty"`
	Capabilities []string          `json:"capabilities"`
	ModuleSHA256 string            `json:"module_sha256"`
	RegisteredAt time.Time         `json:"registered_at"`
	Source       string            `json:"source"`
	Grants       map[string]string `json:"grants"`
}

func toolItemOf(r store.ToolRecord) toolItem {
	t := runtime.SummariseTool(r)
	return toolItem{
		Name: t.Name, Version: t.Version, Description: clipText(t.Description, 300),
		Capabilities: t.Capabilities, ModuleSHA256: t.ModuleSHA256, RegisteredAt: t.RegisteredAt,
		Source: t.Source, Grants: t.Grants,
	}
}

func sourceSchema() map[string]any {
	return enum(`Who registered this version: "bundled" (shipped with the server), "operator" (the tools folder or the CLI) or "upload" (a client's register_tool). The operator's policy decides an upload's powers, never its manifest alone.`, "bundled", "operator", "upload")
}

func grantsSchema(when string) map[string]any {
	m := object(map[string]any{})
	m["additionalProperties"] = enum("The authority.", "manifest", "policy", "upload-default", "upload-policy")
	return withDesc(m, `Each capability held beyond wasi:stdio, mapped to who granted it: "manifest" (an operator tool's own manifest, no policy file), "policy" (tool_capabilities), "upload-default" or "upload-policy" (the policy's uploads section). `+when)
}

func toolItemSchema() map[string]any {
	return object(map[string]any{
		"name":          str("The name programs call it by."),
		"version":       str("The manifest's version label."),
		"description":   str("What the tool does."),
		"capabilities":  array("Capabilities the manifest asks for (the policy may grant fewer).", str("A capability, e.g. nanovm:http.")),
		"module_sha256": str("SHA-256 of the WebAssembly module: the code's identity."),
		"registered_at": str("RFC 3339 time."),
		"source":        sourceSchema(),
		"grants":        grantsSchema("As granted at registration ({} for a version registered before grants were recorded); get_tool shows what the policy grants now."),
	}, "name", "capabilities", "module_sha256", "source", "grants")
}

type registerArgs struct {
	Name         string          `json:"name"`
	WasmBase64   string          `json:"wasm_base64"`
	ModuleUpload string          `json:"module_upload"`
	Manifest     json.RawMessage `json:"manifest"`
	// OCI registers from a registry instead of a module (tools_oci.go).
	OCI string `json:"oci"`
}

// registerArguments decodes register_tool's arguments without copying the
// module's base64 again: from the arguments mcp-go parsed, it takes the
// wasm_base64 string as it is and drops it from that map (so the map no
// longer holds it once the handler lets go), then decodes the small rest
// strictly. Only a request without a parsed map (an in-process caller
// giving raw JSON) goes through decodeArgs whole.
func registerArguments(req mcp.CallToolRequest, a *registerArgs) (wasmBase64 string, err error) {
	m, ok := req.Params.Arguments.(map[string]any)
	if !ok {
		if err := decodeArgs(req, a); err != nil {
			return "", err
		}
		w := a.WasmBase64
		a.WasmBase64 = ""
		return w, nil
	}
	switch v := m["wasm_base64"].(type) {
	case nil:
	case string:
		wasmBase64 = v
	default:
		return "", argError("argument \"wasm_base64\": expected a string, got %s", jsonKind(reflect.TypeOf(v)))
	}
	rest := make(map[string]any, len(m))
	for k, v := range m {
		if k != "wasm_base64" {
			rest[k] = v
		}
	}
	delete(m, "wasm_base64")
	raw, err := json.Marshal(rest)
	if err != nil {
		return "", argError("arguments: %v", err)
	}
	if err := decodeArgsJSON(raw, a); err != nil {
		return "", err
	}
	return wasmBase64, nil
}

func registerToolDef() toolDef {
	return toolDef{
		name:  "register_tool",
		title: "Register a WebAssembly tool",
		description: `Register (or update) a tool that programs can call: a WebAssembly module (WASI preview1 command: JSON arguments on stdin, JSON result on stdout, exit 0) and its manifest.

Use it to add a capability a program needs that no listed tool has. An uploaded tool holds only what the operator's policy grants uploads: by default wasi:stdio and nanovm:log, no files, network, secrets or state. Its manifest may ask for less than its grant, never more: a capability, allowed host or mount outside it is refused (capability_denied, naming the field). The module's imports are checked against the capabilities granted; a module importing anything else is rejected, naming the import. A tool the operator installed (source "bundled" or "operator") cannot be replaced by an upload unless the policy allows that name. Registering a new module under an upload's name makes it the current version; earlier versions stay for the audit. The same module registered twice changes nothing. A module larger than a few MB goes in chunks: upload_module, then module_upload here instead of wasm_base64.

Or from an OCI registry the operator's policy allows (oci.registries): {"oci":"oci://HOST/REPO:TAG"} or "…@sha256:<hex>", instead of wasm_base64. The artifact's signature is checked against the operator's trusted keys and identities; where the policy requires one, an unsigned or wrongly signed artifact is refused, saying why. An artifact carrying our manifest uses it; for one without (a Wasm artifact, a hyper-mcp plugin image) give name and, optionally, manifest. Registry credentials are the operator's, never sent by a client.

Example: {"name":"greet","wasm_base64":"AGFzbQEAAAA…","manifest":{"description":"Says hello","input_schema":{"type":"object","properties":{"who":{"type":"string"}}},"capabilities":["nanovm:log"]}}
Example: {"oci":"oci://ghcr.io/acme/greet:1.0"}`,
		input: closed(map[string]any{
			"name":          str("The tool's name, [a-z][a-z0-9_.-]{0,63}; must match manifest.name when that is set. Required with wasm_base64 or module_upload."),
			"wasm_base64":   str("The .wasm module, standard base64. Give this, module_upload or oci."),
			"module_upload": str("Instead of wasm_base64: the upload_id of a finished upload_module upload, for a module too large for one message."),
			"manifest":      objectOrString("The manifest: description, input_schema, output_schema, capabilities, allowed_hosts, limits, isolation (object, or a JSON string). Required with wasm_base64 or module_upload; with oci only for an artifact that carries none."),
			"oci":           str("An OCI reference, oci://HOST/REPO:TAG or oci://HOST/REPO@sha256:<hex>, to register from a registry the policy allows, instead of wasm_base64."),
		}),
		output:   withDesc(registeredSchema(), "The registered version."),
		readOnly: false, destructive: false, idempotent: true, openWorld: false,
		handler: toolHandler{args: &registerArgs{}, call: (*Server).registerTool},
	}
}

type toolRecordOut struct {
	runtime.ToolSummary
	// Manifest is the whole manifest; only get_tool sets it.
	Manifest          any  `json:"manifest,omitempty"`
	ManifestTruncated bool `json:"manifest_truncated,omitempty"`
	// Provenance is where the module came from (an OCI artifact by
	// digest and its verified signer); absent for a file or bytes.
	Provenance *store.ToolProvenance `json:"provenance,omitempty"`
}

func toolRecordOf(r store.ToolRecord, withManifest bool) toolRecordOut {
	out := toolRecordOut{ToolSummary: runtime.SummariseTool(r), Provenance: r.Provenance}
	out.Description = clipText(out.Description, 1_000)
	if withManifest {
		out.Manifest, out.ManifestTruncated = clip(json.RawMessage(r.Manifest), maxProgramBytes)
	}
	return out
}

func toolRecordSchema() map[string]any {
	return object(map[string]any{
		"name":               str("The name programs call it by."),
		"version":            str("The manifest's version label."),
		"description":        str("What the tool does."),
		"capabilities":       array("Capabilities the manifest asks for.", str("A capability.")),
		"module_sha256":      str("SHA-256 of the module."),
		"manifest_sha256":    str("SHA-256 of the manifest's canonical JSON."),
		"registered_at":      str("RFC 3339 time."),
		"source":             sourceSchema(),
		"grants":             grantsSchema("get_tool: what the policy grants now; register_tool: what was granted."),
		"manifest":           withDesc(object(map[string]any{}), "The whole manifest (get_tool only)."),
		"manifest_truncated": boolean("True when manifest holds a preview."),
		"ref":                str(`"name@sha256:<hex>": use as a step's tool to pin this exact module.`),
		"provenance": object(map[string]any{
			"origin":    str(`"oci": pulled from a registry.`),
			"ref":       str("The artifact by digest, oci://HOST/REPO@sha256:<hex>."),
			"requested": str("The reference as named."),
			"layout":    str(`"nanovm", "wasm" (CNCF Wasm artifact) or "image" (plugin.wasm in a tar layer).`),
			"signer":    str("Who signed the artifact, verified at registration; absent when unsigned."),
			"signer_id": str("The policy's id of that key or identity."),
		}),
	}, "name", "capabilities", "module_sha256", "manifest_sha256", "source", "grants", "ref")
}

// registered is register_tool's answer: the version registered and, for
// an Extism plugin that describes several tools, the refs of the others
// it registered with the same module.
type registered struct {
	toolRecordOut
	AlsoRegistered []string `json:"also_registered,omitempty"`
}

// registeredOf is the answer for the versions one registration stored:
// the first, and the refs of the others.
func registeredOf(recs []store.ToolRecord) registered {
	out := registered{toolRecordOut: toolRecordOf(recs[0], false)}
	for _, r := range recs[1:] {
		out.AlsoRegistered = append(out.AlsoRegistered, toolRecordOf(r, false).Ref)
	}
	return out
}

func registeredSchema() map[string]any {
	m := toolRecordSchema()
	m["properties"].(map[string]any)["also_registered"] = array("An Extism plugin describing several tools registers each under its own name: the refs of the tools registered besides this one.", str(`"name@sha256:<hex>"`))
	return m
}

func (s *Server) registerTool(ctx context.Context, req mcp.CallToolRequest) (any, error) {
	var a registerArgs
	wasmBase64, err := registerArguments(req, &a)
	if err != nil {
		return nil, err
	}
	if a.OCI != "" {
		if wasmBase64 != "" || a.ModuleUpload != "" {
			return nil, argError("give \"oci\" or a module (\"wasm_base64\", \"module_upload\"), not both")
		}
		return s.registerToolOCI(ctx, a)
	}
	if err := requireString("name", a.Name); err != nil {
		return nil, err
	}
	switch {
	case wasmBase64 != "" && a.ModuleUpload != "":
		return nil, argError("arguments \"wasm_base64\" and \"module_upload\" are both given; give the module one way only")
	case wasmBase64 == "" && a.ModuleUpload == "":
		return nil, argError("argument \"wasm_base64\" (the module in base64) or \"module_upload\" (an upload_module upload_id) is required")
	}
	manifest, err := objectMap("manifest", a.Manifest)
	if err != nil {
		return nil, err
	}
	if manifest == nil {
		return nil, argError("argument \"manifest\" is required")
	}
	switch n := manifest["name"].(type) {
	case nil:
		manifest["name"] = a.Name
	case string:
		if n != a.Name {
			return nil, argError("argument \"name\" is %q but manifest.name is %q; they must match", a.Name, n)
		}
	default:
		return nil, argError("manifest.name must be a string")
	}
	mj, err := json.Marshal(manifest)
	if err != nil {
		return nil, argError("argument \"manifest\": %v", err)
	}
	var wasm []byte
	release := func(bool) {}
	if wasmBase64 != "" {
		wasm, err = decodeBase64(wasmBase64)
		wasmBase64 = ""
		if err != nil {
			return nil, argError("argument \"wasm_base64\": %v", err)
		}
	} else if wasm, _, release, err = s.uploads.take(sessionOf(ctx), a.ModuleUpload); err != nil {
		return nil, err
	}
	recs, err := s.rt.RegisterTools(ctx, mj, wasm)
	wasm = nil
	release(err == nil)
	if err != nil {
		return nil, err
	}
	return registeredOf(recs), nil
}

// decodeBase64 accepts standard base64, padded or not, with or without
// line breaks; and the URL-safe alphabet, which some encoders default to.
//
// The module is decoded into one buffer, sized for the longest possible
// result and reused by every encoding tried, so a 20 MB module costs
// 20 MB here and no more; the encoding that fits the text is tried first.
func decodeBase64(s string) ([]byte, error) {
	// strings.Map returns s itself when nothing is dropped.
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, s)
	encs := []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding}
	if strings.ContainsAny(s, "-_") {
		encs[0], encs[1], encs[2], encs[3] = encs[2], encs[3], encs[0], encs[1]
	}
	if len(s)%4 != 0 {
		encs[0], encs[1] = encs[1], encs[0]
	}
	// The unpadded length bound is never below the padded one.
	dst := make([]byte, base64.RawStdEncoding.DecodedLen(len(s)))
	var firstErr error
	for _, enc := range encs {
		n, err := decodePieces(enc, dst, s)
		if err == nil {
			return dst[:n:n], nil
		}
		if firstErr == nil || enc == base64.StdEncoding {
			firstErr = err
		}
	}
	return nil, firstErr
}

// decodePieces decodes s into dst a piece at a time, so the text is
// never copied whole into a []byte; padding is accepted only at the end,
// as a decode of the whole text would.
func decodePieces(enc *base64.Encoding, dst []byte, s string) (int, error) {
	const piece = 64 << 10 // a multiple of 4: pieces end on whole quanta
	buf := make([]byte, min(piece, len(s)))
	n := 0
	for i := 0; i < len(s); i += piece {
		k := copy(buf, s[i:min(i+piece, len(s))])
		if i+k < len(s) {
			if at := bytes.IndexByte(buf[:k], '='); at >= 0 {
				return n, base64.CorruptInputError(i + at)
			}
		}
		m, err := enc.Decode(dst[n:], buf[:k])
		n += m
		if err != nil {
			var ce base64.CorruptInputError
			if errors.As(err, &ce) {
				return n, base64.CorruptInputError(int64(i) + int64(ce))
			}
			return n, err
		}
	}
	return n, nil
}

type listToolsArgs struct {
	Limit  *int   `json:"limit"`
	Cursor string `json:"cursor"`
}

type toolList struct {
	Tools      []toolItem `json:"tools"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

func listToolsDef() toolDef {
	return toolDef{
		name:  "list_tools",
		title: "List the sandboxed tools",
		description: `List the WebAssembly tools programs can call (a step's "tool" field), by name: version, description, capabilities and module hash.

Use it before writing a program, to know which tools exist and what they do; get_tool shows a tool's full manifest with its input schema. Pages: limit (default 100, at most 200); pass next_cursor as cursor for more. Read-only.

Example: {}`,
		input: closed(map[string]any{
			"limit":  intRange("Tools per page.", 1, 200, 100),
			"cursor": str("next_cursor from the previous page."),
		}),
		output: object(map[string]any{
			"tools":       array("Tools by name.", toolItemSchema()),
			"next_cursor": str("Pass as cursor for the next page; absent on the last page."),
		}, "tools"),
		readOnly: true, destructive: false, idempotent: true, openWorld: false,
		handler: withArgs((*Server).listTools),
	}
}

func (s *Server) listTools(ctx context.Context, req mcp.CallToolRequest, a listToolsArgs) (any, error) {
	limit, err := intArg("limit", a.Limit, 100, 1, 200)
	if err != nil {
		return nil, err
	}
	recs, err := s.rt.Tools(ctx)
	if err != nil {
		return nil, err
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Name < recs[j].Name })
	out := toolList{Tools: []toolItem{}}
	for _, r := range recs {
		// The cursor is the last name of the previous page: stable while
		// tools come and go.
		if a.Cursor != "" && r.Name <= a.Cursor {
			continue
		}
		if len(out.Tools) == limit {
			out.NextCursor = out.Tools[limit-1].Name
			break
		}
		out.Tools = append(out.Tools, toolItemOf(r))
	}
	return out, nil
}

type toolNameArgs struct {
	Name string `json:"name"`
}

func getToolDef() toolDef {
	return toolDef{
		name:  "get_tool",
		title: "Read a tool's manifest",
		description: `Read one tool: its whole manifest (description, input_schema a step's args must satisfy, output_schema, capabilities, allowed_hosts, limits), module hash and the pinned ref.

Use it to learn a tool's arguments before writing its step. name may be "name" (the current version) or "name@sha256:<hex>" (a pinned version). Read-only.

Example: {"name":"validate_amount"}`,
		input: closed(map[string]any{
			"name": str(`"name" or "name@sha256:<hex>".`),
		}, "name"),
		output:   toolRecordSchema(),
		readOnly: true, destructive: false, idempotent: true, openWorld: false,
		handler: withArgs((*Server).getTool),
	}
}

func (s *Server) getTool(ctx context.Context, req mcp.CallToolRequest, a toolNameArgs) (any, error) {
	if err := requireString("name", a.Name); err != nil {
		return nil, err
	}
	rec, err := s.rt.Tool(ctx, a.Name)
	if err != nil {
		return nil, err
	}
	return toolRecordOf(rec, true), nil
}

type removedTool struct {
	Removed bool   `json:"removed"`
	Name    string `json:"name"`
}

func removeToolDef() toolDef {
	return toolDef{
		name:  "remove_tool",
		title: "Remove a tool",
		description: `Unregister a tool name: programs can no longer call it (runs using it fail validation). Its module versions stay stored for the audit, so past traces still verify and replay.

Use it only when the user wants the tool gone. Only uploaded tools can be removed here: a bundled or operator tool is refused (capability_denied; the operator removes it). Removing an unknown name is a not_found error.

Example: {"name":"greet"}`,
		input: closed(map[string]any{
			"name": str("The tool's name."),
		}, "name"),
		output: object(map[string]any{
			"removed": boolean("Always true on success."),
			"name":    str("The removed tool's name."),
		}, "removed", "name"),
		readOnly: false, destructive: true, idempotent: true, openWorld: false,
		handler: withArgs((*Server).removeTool),
	}
}

func (s *Server) removeTool(ctx context.Context, req mcp.CallToolRequest, a toolNameArgs) (any, error) {
	if err := requireString("name", a.Name); err != nil {
		return nil, err
	}
	if err := s.rt.RemoveTool(ctx, a.Name); err != nil {
		return nil, err
	}
	return removedTool{Removed: true, Name: a.Name}, nil
}
