package mcpserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/store"
)

// toolDefs lists every tool, in the order tools/list shows them.
func (s *Server) toolDefs() []toolDef {
	return []toolDef{
		runProgramDef(), resumeProgramDef(), getTraceDef(), listTracesDef(),
		listProgramsDef(), getProgramDef(), deleteProgramDef(),
		registerToolDef(), listToolsDef(), getToolDef(), removeToolDef(),
		putSecretDef(), eraseSecretDef(), verifyAuditDef(),
	}
}

// ---- programs ----

type listProgramsArgs struct {
	Limit *int `json:"limit"`
}

type programItem struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Hash      string    `json:"hash"`
	CreatedAt time.Time `json:"created_at"`
}

type programList struct {
	Programs []programItem `json:"programs"`
}

func listProgramsDef() toolDef {
	return toolDef{
		name:  "list_programs",
		title: "List saved programs",
		description: `List saved programs (saved with run_program's save_as), newest first: id, name, hash, created_at — not their steps (get_program has those).

Use it to find a program_id to run again with run_program {"program_id": …} or to inspect. limit defaults to 50, at most 100. Read-only.

Example: {"limit":10}`,
		input: closed(map[string]any{
			"limit": intRange("Programs to return.", 1, 100, 50),
		}),
		output: object(map[string]any{
			"programs": array("Saved programs, newest first.", object(map[string]any{
				"id":         str("The program's id."),
				"name":       str("The program's name."),
				"hash":       str("Canonical SHA-256 of the program."),
				"created_at": str("RFC 3339 time."),
			}, "id", "name")),
		}, "programs"),
		readOnly: true, destructive: false, idempotent: true, openWorld: false,
		args:    &listProgramsArgs{},
		handler: (*Server).listPrograms,
	}
}

func (s *Server) listPrograms(ctx context.Context, req mcp.CallToolRequest) (any, error) {
	var a listProgramsArgs
	if err := decodeArgs(req, &a); err != nil {
		return nil, err
	}
	limit, err := intArg("limit", a.Limit, 50, 1, 100)
	if err != nil {
		return nil, err
	}
	progs, err := s.rt.Programs(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := programList{Programs: []programItem{}}
	for _, p := range progs {
		out.Programs = append(out.Programs, programItem{ID: p.ID, Name: p.Name, Hash: p.Hash, CreatedAt: p.CreatedAt})
	}
	return out, nil
}

type programIDArgs struct {
	ProgramID string `json:"program_id"`
}

type programDoc struct {
	ID               string    `json:"id"`
	Name             string    `json:"name"`
	Hash             string    `json:"hash"`
	CreatedAt        time.Time `json:"created_at"`
	Program          any       `json:"program"`
	ProgramTruncated bool      `json:"program_truncated,omitempty"`
}

func getProgramDef() toolDef {
	return toolDef{
		name:  "get_program",
		title: "Read a saved program",
		description: `Read a saved program: its steps as JSON, name, hash and when it was saved.

Use it to inspect or adapt a program before running it again (run_program with program_id runs it as saved). Read-only.

Example: {"program_id":"payment_pipeline"}`,
		input: closed(map[string]any{
			"program_id": str("The saved program's id."),
		}, "program_id"),
		output: object(map[string]any{
			"id":                str("The program's id."),
			"name":              str("The program's name."),
			"hash":              str("Canonical SHA-256 of the program."),
			"created_at":        str("RFC 3339 time."),
			"program":           withDesc(object(map[string]any{}), "The program (a {truncated, bytes, preview} object if very large)."),
			"program_truncated": boolean("True when program holds a preview."),
		}, "id", "name", "hash", "program"),
		readOnly: true, destructive: false, idempotent: true, openWorld: false,
		args:    &programIDArgs{},
		handler: (*Server).getProgram,
	}
}

func (s *Server) getProgram(ctx context.Context, req mcp.CallToolRequest) (any, error) {
	var a programIDArgs
	if err := decodeArgs(req, &a); err != nil {
		return nil, err
	}
	if err := requireString("program_id", a.ProgramID); err != nil {
		return nil, err
	}
	p, err := s.rt.Program(ctx, a.ProgramID)
	if err != nil {
		return nil, err
	}
	return programDocOf(p), nil
}

func programDocOf(p store.Program) programDoc {
	d := programDoc{ID: p.ID, Name: p.Name, Hash: p.Hash, CreatedAt: p.CreatedAt}
	d.Program, d.ProgramTruncated = clip(json.RawMessage(p.Program), maxProgramBytes)
	return d
}

type deletedProgram struct {
	Deleted   bool   `json:"deleted"`
	ProgramID string `json:"program_id"`
}

func deleteProgramDef() toolDef {
	return toolDef{
		name:  "delete_program",
		title: "Delete a saved program",
		description: `Delete a saved program and its traces. Audit envelopes stay (the chain is append-only), so verify_audit still holds.

Use it only when the user wants the program gone; it cannot be undone. Deleting a program that does not exist is a not_found error.

Example: {"program_id":"payment_pipeline"}`,
		input: closed(map[string]any{
			"program_id": str("The saved program's id."),
		}, "program_id"),
		output: object(map[string]any{
			"deleted":    boolean("Always true on success."),
			"program_id": str("The deleted program's id."),
		}, "deleted", "program_id"),
		readOnly: false, destructive: true, idempotent: true, openWorld: false,
		args:    &programIDArgs{},
		handler: (*Server).deleteProgram,
	}
}

func (s *Server) deleteProgram(ctx context.Context, req mcp.CallToolRequest) (any, error) {
	var a programIDArgs
	if err := decodeArgs(req, &a); err != nil {
		return nil, err
	}
	if err := requireString("program_id", a.ProgramID); err != nil {
		return nil, err
	}
	if err := s.rt.DeleteProgram(ctx, a.ProgramID); err != nil {
		return nil, err
	}
	return deletedProgram{Deleted: true, ProgramID: a.ProgramID}, nil
}

// ---- tools ----

// manifestSummary is what a listing shows of a manifest.
type manifestSummary struct {
	Version      string   `json:"version,omitempty"`
	Description  string   `json:"description,omitempty"`
	Capabilities []string `json:"capabilities"`
}

func summariseManifest(raw json.RawMessage) manifestSummary {
	var m manifestSummary
	_ = json.Unmarshal(raw, &m) // a stored manifest was validated at registration
	if m.Capabilities == nil {
		m.Capabilities = []string{}
	}
	return m
}

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
	m := summariseManifest(r.Manifest)
	return toolItem{
		Name: r.Name, Version: m.Version, Description: clipText(m.Description, 300),
		Capabilities: m.Capabilities, ModuleSHA256: r.ModuleSHA256, RegisteredAt: r.RegisteredAt,
		Source: string(r.EffectiveSource()), Grants: grantsOf(r),
	}
}

// grantsOf is r.Grants, never nil: {} reads "nothing beyond wasi:stdio".
func grantsOf(r store.ToolRecord) map[string]string {
	if r.Grants == nil {
		return map[string]string{}
	}
	return r.Grants
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
	Name       string          `json:"name"`
	WasmBase64 string          `json:"wasm_base64"`
	Manifest   json.RawMessage `json:"manifest"`
	// OCI registers from a registry instead of wasm_base64 (tools_oci.go).
	OCI string `json:"oci"`
}

func registerToolDef() toolDef {
	return toolDef{
		name:  "register_tool",
		title: "Register a WebAssembly tool",
		description: `Register (or update) a tool that programs can call: a WebAssembly module (WASI preview1 command: JSON arguments on stdin, JSON result on stdout, exit 0) and its manifest.

Use it to add a capability a program needs that no listed tool has. An uploaded tool holds only what the operator's policy grants uploads: by default wasi:stdio and nanovm:log, no files, network, secrets or state. Its manifest may ask for less than its grant, never more: a capability, allowed host or mount outside it is refused (capability_denied, naming the field). The module's imports are checked against the capabilities granted; a module importing anything else is rejected, naming the import. A tool the operator installed (source "bundled" or "operator") cannot be replaced by an upload unless the policy allows that name. Registering a new module under an upload's name makes it the current version; earlier versions stay for the audit. The same module registered twice changes nothing.

Or from an OCI registry the operator's policy allows (oci.registries): {"oci":"oci://HOST/REPO:TAG"} or "…@sha256:<hex>", instead of wasm_base64. The artifact's signature is checked against the operator's trusted keys and identities; where the policy requires one, an unsigned or wrongly signed artifact is refused, saying why. An artifact carrying our manifest uses it; for one without (a Wasm artifact, a hyper-mcp plugin image) give name and, optionally, manifest. Registry credentials are the operator's, never sent by a client.

Example: {"name":"greet","wasm_base64":"AGFzbQEAAAA…","manifest":{"description":"Says hello","input_schema":{"type":"object","properties":{"who":{"type":"string"}}},"capabilities":["nanovm:log"]}}
Example: {"oci":"oci://ghcr.io/acme/greet:1.0"}`,
		input: closed(map[string]any{
			"name":        str("The tool's name, [a-z][a-z0-9_.-]{0,63}; must match manifest.name when that is set. Required with wasm_base64."),
			"wasm_base64": str("The .wasm module, standard base64. Required unless oci is given."),
			"manifest":    objectOrString("The manifest: description, input_schema, output_schema, capabilities, allowed_hosts, limits, isolation (object, or a JSON string). Required with wasm_base64; with oci only for an artifact that carries none."),
			"oci":         str("An OCI reference, oci://HOST/REPO:TAG or oci://HOST/REPO@sha256:<hex>, to register from a registry the policy allows, instead of wasm_base64."),
		}),
		output:   withDesc(registeredSchema(), "The registered version."),
		readOnly: false, destructive: false, idempotent: true, openWorld: false,
		args:    &registerArgs{},
		handler: (*Server).registerTool,
	}
}

type toolRecordOut struct {
	Name           string    `json:"name"`
	Version        string    `json:"version,omitempty"`
	Description    string    `json:"description,omitempty"`
	Capabilities   []string  `json:"capabilities"`
	ModuleSHA256   string    `json:"module_sha256"`
	ManifestSHA256 string    `json:"manifest_sha256"`
	RegisteredAt   time.Time `json:"registered_at"`
	// Source and Grants say who registered the version and who granted
	// each capability it holds.
	Source string            `json:"source"`
	Grants map[string]string `json:"grants"`
	// Manifest is the whole manifest; only get_tool sets it.
	Manifest          any  `json:"manifest,omitempty"`
	ManifestTruncated bool `json:"manifest_truncated,omitempty"`
	// Ref pins this exact version in a program's "tool" field.
	Ref string `json:"ref"`
	// Provenance is where the module came from (an OCI artifact by
	// digest and its verified signer); absent for a file or bytes.
	Provenance *store.ToolProvenance `json:"provenance,omitempty"`
}

func toolRecordOf(r store.ToolRecord, withManifest bool) toolRecordOut {
	m := summariseManifest(r.Manifest)
	out := toolRecordOut{
		Name: r.Name, Version: m.Version, Description: clipText(m.Description, 1_000), Capabilities: m.Capabilities,
		ModuleSHA256: r.ModuleSHA256, ManifestSHA256: r.ManifestSHA256, RegisteredAt: r.RegisteredAt,
		Source: string(r.EffectiveSource()), Grants: grantsOf(r),
		Ref: r.Name + "@sha256:" + r.ModuleSHA256, Provenance: r.Provenance,
	}
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

func registeredSchema() map[string]any {
	m := toolRecordSchema()
	m["properties"].(map[string]any)["also_registered"] = array("An Extism plugin describing several tools registers each under its own name: the refs of the tools registered besides this one.", str(`"name@sha256:<hex>"`))
	return m
}

func (s *Server) registerTool(ctx context.Context, req mcp.CallToolRequest) (any, error) {
	var a registerArgs
	if err := decodeArgs(req, &a); err != nil {
		return nil, err
	}
	if a.OCI != "" {
		return s.registerToolOCI(ctx, a)
	}
	if err := requireString("name", a.Name); err != nil {
		return nil, err
	}
	if err := requireString("wasm_base64", a.WasmBase64); err != nil {
		return nil, err
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
	wasm, err := decodeBase64(a.WasmBase64)
	if err != nil {
		return nil, argError("argument \"wasm_base64\": %v", err)
	}
	mj, err := json.Marshal(manifest)
	if err != nil {
		return nil, argError("argument \"manifest\": %v", err)
	}
	recs, err := s.rt.RegisterTools(ctx, mj, wasm)
	if err != nil {
		return nil, err
	}
	out := registered{toolRecordOut: toolRecordOf(recs[0], false)}
	for _, r := range recs[1:] {
		out.AlsoRegistered = append(out.AlsoRegistered, toolRecordOf(r, false).Ref)
	}
	return out, nil
}

// decodeBase64 accepts standard base64, padded or not, with or without
// line breaks; and the URL-safe alphabet, which some encoders default to.
func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, s)
	var firstErr error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		b, err := enc.DecodeString(s)
		if err == nil {
			return b, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
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
		args:    &listToolsArgs{},
		handler: (*Server).listTools,
	}
}

func (s *Server) listTools(ctx context.Context, req mcp.CallToolRequest) (any, error) {
	var a listToolsArgs
	if err := decodeArgs(req, &a); err != nil {
		return nil, err
	}
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
		args:    &toolNameArgs{},
		handler: (*Server).getTool,
	}
}

func (s *Server) getTool(ctx context.Context, req mcp.CallToolRequest) (any, error) {
	var a toolNameArgs
	if err := decodeArgs(req, &a); err != nil {
		return nil, err
	}
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
		args:    &toolNameArgs{},
		handler: (*Server).removeTool,
	}
}

func (s *Server) removeTool(ctx context.Context, req mcp.CallToolRequest) (any, error) {
	var a toolNameArgs
	if err := decodeArgs(req, &a); err != nil {
		return nil, err
	}
	if err := requireString("name", a.Name); err != nil {
		return nil, err
	}
	if err := s.rt.RemoveTool(ctx, a.Name); err != nil {
		return nil, err
	}
	return removedTool{Removed: true, Name: a.Name}, nil
}

// ---- secrets ----

type putSecretArgs struct {
	ID    string `json:"id"`
	Value string `json:"value"`
}

type secretRef struct {
	ID  string `json:"id"`
	Ref string `json:"ref"`
}

func putSecretDef() toolDef {
	return toolDef{
		name:  "put_secret",
		title: "Store a secret",
		description: `Store a secret (API key, card token, password) encrypted at rest and get its reference vault://secret/<id>.

Use the reference, never the value, in a program's input or args: a tool granted nanovm:secrets resolves it inside its sandbox only, and the value never reaches state, traces, envelopes or logs (a tool output echoing it is scrubbed). Storing again under the same id replaces the value; an erased id cannot be reused.

Example: {"id":"stripe-key","value":"sk_live_…"} → {"ref":"vault://secret/stripe-key"}`,
		input: closed(map[string]any{
			"id":    str("The secret's id: letters, digits, '-', '_', '.'."),
			"value": str("The secret value; never echoed back."),
		}, "id", "value"),
		output: object(map[string]any{
			"id":  str("The secret's id."),
			"ref": str("vault://secret/<id>: pass this in input or args."),
		}, "id", "ref"),
		readOnly: false, destructive: true, idempotent: true, openWorld: false,
		args:    &putSecretArgs{},
		handler: (*Server).putSecret,
	}
}

func (s *Server) putSecret(ctx context.Context, req mcp.CallToolRequest) (any, error) {
	var a putSecretArgs
	if err := decodeArgs(req, &a); err != nil {
		return nil, err
	}
	if err := requireString("id", a.ID); err != nil {
		return nil, err
	}
	if a.Value == "" {
		return nil, argError("argument \"value\" is required")
	}
	ref, err := s.rt.PutSecret(ctx, a.ID, a.Value)
	if err != nil {
		return nil, err
	}
	return secretRef{ID: a.ID, Ref: ref}, nil
}

type secretIDArgs struct {
	ID string `json:"id"`
}

type erased struct {
	Erased       bool   `json:"erased"`
	ID           string `json:"id"`
	EnvelopeSeq  uint64 `json:"envelope_seq"`
	EnvelopeHash string `json:"envelope_hash"`
}

func eraseSecretDef() toolDef {
	return toolDef{
		name:  "erase_secret",
		title: "Erase a secret (GDPR)",
		description: `Erase a secret for good (right to erasure): the value is destroyed, the reference tombstoned. Traces and envelopes then show [REDACTED_TOMBSTONE] where it appeared, tools can no longer resolve it, the erasure is itself appended to the audit chain, and verify_audit still holds.

Use it when the user asks to forget a secret or personal data stored with put_secret. It cannot be undone, the id cannot be reused, and erasing it again is refused (tombstoned).

Example: {"id":"card-4242"}`,
		input: closed(map[string]any{
			"id": str("The secret's id (the <id> in vault://secret/<id>)."),
		}, "id"),
		output: object(map[string]any{
			"erased":        boolean("Always true on success."),
			"id":            str("The erased secret's id."),
			"envelope_seq":  integer("Sequence number of the erasure's audit envelope."),
			"envelope_hash": str("Hash of that envelope."),
		}, "erased", "id", "envelope_seq", "envelope_hash"),
		readOnly: false, destructive: true, idempotent: false, openWorld: false,
		args:    &secretIDArgs{},
		handler: (*Server).eraseSecret,
	}
}

func (s *Server) eraseSecret(ctx context.Context, req mcp.CallToolRequest) (any, error) {
	var a secretIDArgs
	if err := decodeArgs(req, &a); err != nil {
		return nil, err
	}
	if err := requireString("id", a.ID); err != nil {
		return nil, err
	}
	env, err := s.rt.EraseSecret(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	return erased{Erased: true, ID: a.ID, EnvelopeSeq: env.Seq, EnvelopeHash: env.Hash}, nil
}

// ---- audit ----

type verifyArgs struct {
	ExecutionID string `json:"execution_id"`
	// Checkpoint is a signed checkpoint note (audit checkpoint's output).
	Checkpoint string `json:"checkpoint"`
}

type verifyOut struct {
	store.VerifyReport
	// Scope says what was checked: "chain", "execution <id>" or "chain
	// and checkpoint".
	Scope string `json:"scope"`
	// Checkpoint is what a checkpoint check found; OK above is then false
	// unless both the chain and the checkpoint hold.
	Checkpoint *runtime.CheckpointCheck `json:"checkpoint,omitempty"`
	// Tools, for one run, says which code ran each tool step, from its
	// verified envelopes (tools_oci.go).
	Tools []stepTool `json:"tools,omitempty"`
}

func verifyAuditDef() toolDef {
	return toolDef{
		name:  "verify_audit",
		title: "Verify the audit chain",
		description: `Verify the tamper-evident audit chain: every step left an envelope (policy hash, state hash, projected output, module hash, and the SHA-256 of the step record, execution record, input and program it stored) linked by SHA-256 to the one before. Reports ok, how many envelopes were checked, the first broken link (modified, deleted or reordered envelope) if any, and every stored record that no longer matches its envelope (changed, missing, or covered by none), by execution, step and record.

Use it after a run to prove what happened, or to check the whole store. With execution_id, checks that run's envelopes and their links; without, the whole chain, returning its head (seq and hash) to publish elsewhere. Read-only.

With checkpoint (a signed checkpoint note, as "nano-vm-mcp audit checkpoint" writes), also proves the chain extends it: signed by a verifier key the operator configured on the server (a key sent by a client would prove nothing, so none is accepted), naming this chain, with the checkpoint's hash at its seq. A chain rewritten wholesale since the checkpoint verifies on its own but fails this, naming the seq.

Example: {"execution_id":"7f0c…"}`,
		input: closed(map[string]any{
			"execution_id": str("A run's trace_id; omit to verify the whole chain."),
			"checkpoint":   str("A signed checkpoint note's full text; checks the whole chain against it (omit execution_id)."),
		}),
		output: object(map[string]any{
			"ok":        boolean("True when every checked link holds (and, with checkpoint, the chain extends it)."),
			"checked":   integer("Envelopes checked."),
			"head_seq":  integer("Last envelope's seq (whole-chain checks)."),
			"head_hash": str("Last envelope's hash (whole-chain checks)."),
			"broken": object(map[string]any{
				"seq":     integer("Where the chain breaks."),
				"problem": str("What kind of break."),
				"reason":  str("What is wrong."),
			}),
			"scope":           str(`"chain", "execution <id>" or "chain and checkpoint".`),
			"records_checked": integer("Stored records (steps, execution records, inputs, programs) re-hashed against their envelopes."),
			"records":         array("Records that do not match their envelopes (at most 100); any makes ok false.", recordProblemSchema()),
			"records_omitted": integer("Record problems beyond those listed."),
			"tools":           array("With execution_id: the code each tool step ran, as its envelope (checked above) records it.", stepToolSchema()),
			"notes":           array("Runs whose records no envelope covers for a known reason (legacy, not covered yet); they do not make ok false.", recordProblemSchema()),
			"checkpoint": object(map[string]any{
				"ok":        boolean("True when the chain extends the checkpoint."),
				"origin":    str("The chain the checkpoint names."),
				"size":      integer("The checkpoint's head seq."),
				"hash":      str("The checkpoint's head hash (hex)."),
				"signed_by": str("The trusted key that signed it."),
				"problem":   str("untrusted key, bad signature, wrong origin, malformed, truncated, hash mismatch or chain broken."),
				"seq":       integer("Where the chain diverges from the checkpoint."),
				"reason":    str("What is wrong."),
			}),
		}, "ok", "checked", "scope"),
		readOnly: true, destructive: false, idempotent: true, openWorld: false,
		args:    &verifyArgs{},
		handler: (*Server).verifyAudit,
	}
}

// recordProblemSchema describes a store.RecordProblem.
func recordProblemSchema() map[string]any {
	return object(map[string]any{
		"execution_id": str("The run the record belongs to."),
		"record":       str(`"step", "execution", "input" or "program".`),
		"step_index":   integer("The step's index, for a step record."),
		"seq":          integer("The envelope that commits to the record; absent when none does."),
		"problem":      str(`"record changed", "record missing", "record not covered", "legacy, records not covered" or "not covered yet".`),
		"reason":       str("What is wrong."),
	}, "execution_id", "record", "problem", "reason")
}

func (s *Server) verifyAudit(ctx context.Context, req mcp.CallToolRequest) (any, error) {
	var a verifyArgs
	if err := decodeArgs(req, &a); err != nil {
		return nil, err
	}
	if a.Checkpoint != "" {
		if a.ExecutionID != "" {
			return nil, argError("verify_audit: a checkpoint covers the whole chain: omit execution_id")
		}
		crep, err := s.rt.VerifyCheckpoint(ctx, []byte(a.Checkpoint))
		if err != nil {
			return nil, err
		}
		out := verifyOut{VerifyReport: crep.Chain, Scope: "chain and checkpoint", Checkpoint: &crep.Checkpoint}
		out.OK = crep.OK()
		return out, nil
	}
	rep, err := s.rt.VerifyAudit(ctx, a.ExecutionID)
	if err != nil {
		return nil, err
	}
	scope := "chain"
	if a.ExecutionID != "" {
		scope = "execution " + a.ExecutionID
		// An unknown id would verify vacuously; say so instead. (A
		// deleted program's runs keep their envelopes, so this asks only
		// when there are none.)
		if rep.Checked == 0 {
			if _, err := s.rt.Trace(ctx, a.ExecutionID, 0, 1); err != nil {
				return nil, err
			}
		}
	}
	out := verifyOut{VerifyReport: rep, Scope: scope}
	if a.ExecutionID != "" {
		if out.Tools, err = s.stepTools(ctx, a.ExecutionID); err != nil {
			return nil, err
		}
	}
	return out, nil
}
