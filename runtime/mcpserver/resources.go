package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/store"
)

// Resource URIs.
const (
	policyURI            = "nanovm://policy"
	programTemplateURI   = "nanovm://program/{id}"
	traceTemplateURI     = "nanovm://trace/{id}"
	toolTemplateURI      = "nanovm://tool/{name}"
	resourceJSONMIMEType = "application/json"
)

// addResources registers the policy and the program, trace and tool
// templates: the same objects the read-only tools return, for clients
// that attach resources to a conversation instead of calling tools.
func (s *Server) addResources() {
	s.mcp.AddResource(mcp.NewResource(policyURI, "policy",
		mcp.WithResourceTitle("Active policy"),
		mcp.WithResourceDescription("The operator's policy snapshot every run executes under: which tools may run with which capabilities, and its hash (recorded in every audit envelope)."),
		mcp.WithMIMEType(resourceJSONMIMEType),
	), s.readPolicy)
	for _, t := range []struct {
		uri, name, title, description string
		read                          server.ResourceTemplateHandlerFunc
	}{
		{programTemplateURI, "program", "Saved program", "A saved program (see list_programs), as get_program returns it.", s.readProgram},
		{traceTemplateURI, "trace", "Run trace", "A run's trace: the header and the first page of steps; next_offset says where get_trace continues.", s.readTrace},
		{toolTemplateURI, "tool", "Sandboxed tool", "A registered tool's manifest and module hash, as get_tool returns it; {name} may be name@sha256:<hex>.", s.readTool},
	} {
		s.mcp.AddResourceTemplate(mcp.NewResourceTemplate(t.uri, t.name,
			mcp.WithTemplateTitle(t.title),
			mcp.WithTemplateDescription(t.description),
			mcp.WithTemplateMIMEType(resourceJSONMIMEType),
		), t.read)
	}
}

// policyDoc is the policy resource.
type policyDoc struct {
	Policy *runtime.Policy `json:"policy"`
	Hash   string          `json:"policy_hash"`
}

func (s *Server) readPolicy(ctx context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
	p := s.rt.Policy()
	return s.jsonContents(req.Params.URI, policyDoc{Policy: p, Hash: p.Hash()})
}

func (s *Server) readProgram(ctx context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
	return readByID(s, ctx, req, "id", "program", s.rt.Program, programDocOf)
}

// traceResource is the trace resource: the first page and how to read on.
type traceResource struct {
	*tracePage
	More string `json:"more,omitempty"`
}

func (s *Server) readTrace(ctx context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
	firstPage := func(ctx context.Context, id string) (*tracePage, error) {
		return s.tracePageOf(ctx, id, 0, defaultTraceLimit, MaxResultBytes)
	}
	return readByID(s, ctx, req, "id", "trace", firstPage, func(p *tracePage) traceResource {
		doc := traceResource{tracePage: p}
		if p.NextOffset != nil {
			doc.More = fmt.Sprintf("%d of %d steps shown; call get_trace with trace_id %q and offset %d for the rest", len(p.Steps), p.TotalSteps, p.TraceID, *p.NextOffset)
		}
		return doc
	})
}

func (s *Server) readTool(ctx context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
	return readByID(s, ctx, req, "name", "tool", s.rt.Tool, func(r store.ToolRecord) toolRecordOut { return toolRecordOf(r, true) })
}

// readByID reads the resource the template variable name (the id of a
// what, held to templateArg's limits) names: get's record as doc makes it
// a document, in JSON; get's error as resourceError reports it.
func readByID[R, D any](s *Server, ctx context.Context, req mcp.ReadResourceRequest, name, what string, get func(context.Context, string) (R, error), doc func(R) D) ([]mcp.ResourceContents, error) {
	id, err := templateArg(req, name, what)
	if err != nil {
		return nil, err
	}
	r, err := get(ctx, id)
	if err != nil {
		return nil, s.resourceError(req.Params.URI, err)
	}
	return s.jsonContents(req.Params.URI, doc(r))
}

// templateArg is a template variable's value from the matched URI.
func templateArg(req mcp.ReadResourceRequest, name, what string) (string, error) {
	var v string
	switch a := req.Params.Arguments[name].(type) {
	case string:
		v = a
	case []string:
		v = strings.Join(a, ",")
	}
	if v == "" {
		return "", fmt.Errorf("resource %s: missing {%s}", store.Clip(req.Params.URI), name)
	}
	// The same limits as the tools' id arguments (what: trace, program,
	// tool; a tool's name@sha256:<hex> pin included).
	if err := store.CheckID(what, v); err != nil {
		return "", fmt.Errorf("invalid_argument: {%s}: %s", name, strings.TrimPrefix(err.Error(), store.ErrInvalidID.Error()+": "))
	}
	return v, nil
}

// resourceError keeps a runtime.Error's message (not found, say) and hides
// anything else behind an incident id, as tool errors do.
func (s *Server) resourceError(uri string, err error) error {
	if e, ok := runtime.AsError(err); ok {
		if e.Code == runtime.CodeNotFound {
			return fmt.Errorf("%s: %w", e.Message, server.ErrResourceNotFound)
		}
		return errors.New(e.Message)
	}
	id := incidentID()
	s.log.Error("mcp resource read failed", "uri", uri, "incident", id, "err", err)
	return fmt.Errorf("reading %s failed (incident %s); the operator's log has the details", uri, id)
}

func (s *Server) jsonContents(uri string, v any) ([]mcp.ResourceContents, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, s.resourceError(uri, fmt.Errorf("encode %s: %w", uri, err))
	}
	return []mcp.ResourceContents{mcp.TextResourceContents{URI: uri, MIMEType: resourceJSONMIMEType, Text: string(b)}}, nil
}
