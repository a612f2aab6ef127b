package primary

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nanovm/nano-vm-mcp/internal/jsonlines"
)

// envelope is what the forwarder reads of a JSON-RPC message: enough to
// pair a response with its request and to decide whether a request is safe
// to send twice. Params and result stay raw and are decoded only when
// needed.
type envelope struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params span            `json:"params"`
	Result span            `json:"result"`
	Error  span            `json:"error"`
}

// span is a raw JSON value kept as a slice of the message it was decoded
// from, not a copy: a message's params can be most of its 32 MiB, and the
// line it points into is never reused (each line is a buffer of its own).
type span []byte

func (s *span) UnmarshalJSON(b []byte) error {
	*s = b
	return nil
}

// parseEnvelope decodes one line. A line that is not a JSON object is an
// error; the forwarder passes such lines through untouched, for the
// server to answer with a parse error.
func parseEnvelope(line []byte) (envelope, error) {
	if t := bytes.TrimSpace(line); len(t) == 0 || t[0] != '{' {
		return envelope{}, errors.New("parse json-rpc message: not a JSON object")
	}
	var e envelope
	if err := json.Unmarshal(line, &e); err != nil {
		return envelope{}, fmt.Errorf("parse json-rpc message: %w", err)
	}
	if bytes.Equal(bytes.TrimSpace(e.ID), []byte("null")) {
		e.ID = nil
	}
	return e, nil
}

// idKey is a map key for a JSON-RPC id: its JSON text, compacted, so that
// 7 and "7" stay distinct and whitespace does not matter.
func idKey(id json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, id); err != nil {
		return string(id)
	}
	return b.String()
}

// isRequest reports a message that expects a response.
func (e envelope) isRequest() bool { return e.Method != "" && len(e.ID) > 0 }

// isResponse reports a response (result or error) to a request.
func (e envelope) isResponse() bool {
	return e.Method == "" && len(e.ID) > 0 && (len(e.Result) > 0 || len(e.Error) > 0)
}

// JSON-RPC error codes this package answers with.
const (
	codeInternal       = -32603
	codeParse          = jsonlines.CodeParse
	codeInvalidRequest = jsonlines.CodeInvalidRequest
	// codePrimaryLost is in the implementation-defined server range: the
	// request's outcome is unknown because the process serving it died.
	codePrimaryLost = -32001
)

func errorLine(id json.RawMessage, code int, msg string, data any) []byte {
	return jsonlines.ErrorLine(id, code, msg, data)
}

// withID returns line with its id replaced, for re-sending a request under
// an id the client never used, so its response can be recognised and
// swallowed.
func withID(line []byte, id string) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return nil, fmt.Errorf("resend: %w", err)
	}
	if m == nil {
		return nil, errors.New("resend: not a JSON object")
	}
	// encoding/json matches keys case-insensitively, so an "ID" would
	// otherwise compete with the id written here.
	for k := range m {
		if strings.EqualFold(k, "id") {
			delete(m, k)
		}
	}
	raw, _ := json.Marshal(id)
	m["id"] = raw
	return json.Marshal(m)
}

// retryPolicy says which requests a forwarder may send again to a new
// primary after the old one died with them unanswered.
type retryPolicy struct {
	// safeTools are tools whose annotations say readOnlyHint or
	// idempotentHint, learned from tools/list responses.
	safeTools map[string]bool
}

// safeMethods change nothing, or change nothing more when repeated.
var safeMethods = map[string]bool{
	"ping": true, "tools/list": true, "resources/list": true, "resources/read": true,
	"resources/templates/list": true, "prompts/list": true, "prompts/get": true,
	"completion/complete": true, "logging/setLevel": true,
}

// retryable reports whether e may be sent again. A tools/call is when its
// tool is read-only or idempotent, or when it carries an idempotency_key
// (in its arguments, or for a registered tool in _meta):
// the key makes the runtime run the program at most once, and a repeat of
// an interrupted run continues it from its last durable step — exactly the
// recovery the dead primary's client needs.
func (p retryPolicy) retryable(e envelope) bool {
	if safeMethods[e.Method] {
		return true
	}
	if e.Method != "tools/call" {
		return false
	}
	var params struct {
		Name      string `json:"name"`
		Arguments struct {
			IdempotencyKey any `json:"idempotency_key"`
		} `json:"arguments"`
		// A registered tool called directly carries its key in _meta
		// (mcpserver.MetaIdempotencyKey): its arguments are the tool's.
		Meta struct {
			IdempotencyKey any `json:"nanovm/idempotency_key"`
		} `json:"_meta"`
	}
	if json.Unmarshal(e.Params, &params) != nil {
		return false
	}
	// Only run_program reads idempotency_key among its arguments; a
	// registered tool's argument of that name is its own, and says
	// nothing about repeating it.
	if k, ok := params.Arguments.IdempotencyKey.(string); ok && k != "" && params.Name == "run_program" {
		return true
	}
	if k, ok := params.Meta.IdempotencyKey.(string); ok && k != "" {
		return true
	}
	return p.safeTools[params.Name]
}

// learnTools records the safe tools of a tools/list result.
func (p retryPolicy) learnTools(result json.RawMessage) {
	var r struct {
		Tools []struct {
			Name        string `json:"name"`
			Annotations struct {
				ReadOnly   *bool `json:"readOnlyHint"`
				Idempotent *bool `json:"idempotentHint"`
			} `json:"annotations"`
		} `json:"tools"`
	}
	if json.Unmarshal(result, &r) != nil {
		return
	}
	for _, t := range r.Tools {
		a := t.Annotations
		p.safeTools[t.Name] = (a.ReadOnly != nil && *a.ReadOnly) || (a.Idempotent != nil && *a.Idempotent)
	}
}
