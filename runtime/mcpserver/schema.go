package mcpserver

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/mark3labs/mcp-go/mcp"
)

// toolDef is one MCP tool: what a model reads (name, title, description,
// schemas, annotations) and its handler. Schemas are written by hand as
// maps, not generated from Go types, so they carry a description per
// field and encode deterministically for the snapshots.
type toolDef struct {
	name, title, description string
	input, output            map[string]any
	// The four hints, each stated explicitly for every tool.
	readOnly, destructive, idempotent, openWorld bool
	handler                                      toolHandler
}

// toolHandler is a tool's handler and its arguments' type.
type toolHandler struct {
	// args is a pointer to the zero value of the handler's argument
	// struct: the meta-test checks the input schema names exactly its
	// fields.
	args any
	call func(s *Server, ctx context.Context, req mcp.CallToolRequest) (any, error)
}

// withArgs is the handler h given the call's arguments decoded (see
// decodeArgs) into an A, so a tool's argument struct is named once, by
// its handler, for both the decoding and the schema check.
func withArgs[A any](h func(s *Server, ctx context.Context, req mcp.CallToolRequest, a A) (any, error)) toolHandler {
	return toolHandler{args: new(A), call: func(s *Server, ctx context.Context, req mcp.CallToolRequest) (any, error) {
		var a A
		if err := decodeArgs(req, &a); err != nil {
			return nil, err
		}
		return h(s, ctx, req, a)
	}}
}

// tool builds the mcp-go tool.
func (d toolDef) tool() mcp.Tool {
	in, err := json.Marshal(d.input)
	if err != nil {
		panic(fmt.Sprintf("mcpserver: tool %s: input schema: %v", d.name, err))
	}
	out, err := json.Marshal(d.output)
	if err != nil {
		panic(fmt.Sprintf("mcpserver: tool %s: output schema: %v", d.name, err))
	}
	return mcp.Tool{
		Name:            d.name,
		Title:           d.title,
		Description:     d.description,
		RawInputSchema:  in,
		RawOutputSchema: out,
		Annotations: mcp.ToolAnnotation{
			Title:           d.title,
			ReadOnlyHint:    mcp.ToBoolPtr(d.readOnly),
			DestructiveHint: mcp.ToBoolPtr(d.destructive),
			IdempotentHint:  mcp.ToBoolPtr(d.idempotent),
			OpenWorldHint:   mcp.ToBoolPtr(d.openWorld),
		},
	}
}

// maxDescription is where Claude Code truncates a tool description.
const maxDescription = 2048

// mustValidate panics on a malformed definition: a programming mistake
// that must stop the server at start-up rather than confuse a model.
func (d toolDef) mustValidate() {
	fail := func(format string, args ...any) {
		panic(fmt.Sprintf("mcpserver: tool %s: ", d.name) + fmt.Sprintf(format, args...))
	}
	if d.name == "" || d.title == "" || d.description == "" || d.handler.call == nil || d.handler.args == nil {
		fail("name, title, description, args and handler are required")
	}
	if len(d.description) >= maxDescription {
		fail("description is %d bytes, over %d", len(d.description), maxDescription)
	}
	if d.input["type"] != "object" || d.input["additionalProperties"] != false {
		fail("input schema must be a closed object")
	}
	if d.output["type"] != "object" {
		fail("output schema must be an object")
	}
	props, _ := d.input["properties"].(map[string]any)
	var names []string
	for k := range props {
		names = append(names, k)
	}
	slices.Sort(names)
	if want := argNames(d.handler.args); !slices.Equal(names, want) {
		fail("input schema properties %v differ from the decoded arguments %v", names, want)
	}
	if d.readOnly && (d.destructive || !d.idempotent) {
		fail("a read-only tool is neither destructive nor non-idempotent")
	}
}

// Schema builders: small, so each tool's schema reads like the JSON it
// produces.

func object(props map[string]any, required ...string) map[string]any {
	m := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		m["required"] = required
	}
	return m
}

// closed is an input schema: no argument beyond props.
func closed(props map[string]any, required ...string) map[string]any {
	m := object(props, required...)
	m["additionalProperties"] = false
	return m
}

func str(desc string) map[string]any { return map[string]any{"type": "string", "description": desc} }

// deprecatedArg is the schema of a string argument kept under its earlier
// name for one release beside newName.
func deprecatedArg(newName string) map[string]any {
	return map[string]any{
		"type":        "string",
		"description": fmt.Sprintf("Deprecated alias of %s, accepted for one release; give %s instead (both given must be equal).", newName, newName),
		"deprecated":  true,
	}
}

// deprecatedField is the schema of a result field of JSON type typ written
// under its earlier name for one release beside newName.
func deprecatedField(typ, newName string) map[string]any {
	return map[string]any{
		"type":        typ,
		"description": fmt.Sprintf("Deprecated: the same as %s, written for one release; read %s instead.", newName, newName),
		"deprecated":  true,
	}
}

func enum(desc string, values ...string) map[string]any {
	return map[string]any{"type": "string", "description": desc, "enum": values}
}

func integer(desc string) map[string]any {
	return map[string]any{"type": "integer", "description": desc}
}

func intRange(desc string, lo, hi, def int) map[string]any {
	return map[string]any{"type": "integer", "description": desc, "minimum": lo, "maximum": hi, "default": def}
}

func number(desc string) map[string]any { return map[string]any{"type": "number", "description": desc} }

func boolean(desc string) map[string]any {
	return map[string]any{"type": "boolean", "description": desc}
}

func anyValue(desc string) map[string]any { return map[string]any{"description": desc} }

func array(desc string, items map[string]any) map[string]any {
	return map[string]any{"type": "array", "description": desc, "items": items}
}

func objectOrString(desc string) map[string]any {
	return map[string]any{"type": []string{"object", "string"}, "description": desc}
}

func withDesc(m map[string]any, desc string) map[string]any {
	m["description"] = desc
	return m
}
